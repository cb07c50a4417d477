from celery import shared_task


@shared_task(name="messaging.tasks.sweep_outbox")
def sweep_outbox() -> int:
    """Re-enqueue accepted messages whose delivery enqueue was lost (e.g. the broker was down at commit)."""
    from messaging.services import message_outbox_sweep

    return message_outbox_sweep()


@shared_task(name="messaging.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    from messaging.services import idempotency_records_purge

    return idempotency_records_purge()


@shared_task(name="messaging.tasks.retention")
def retention() -> list[str]:
    """Create the months ahead, drop the months retention no longer keeps (messaging.partitions),
    then each workspace's rows its own shorter retention no longer keeps (messaging.retention)."""
    from messaging.partitions import ensure_partitions, purge
    from messaging.retention import workspace_retention_purge

    created = ensure_partitions()
    return created + purge().as_lines() + workspace_retention_purge().as_lines()
