from celery import shared_task

from messaging import services

# Celery autodiscovers `<app>.tasks`; delivery tasks live in the delivery package.
from messaging.delivery.tasks import deliver_messages


@shared_task(name="messaging.tasks.sweep_outbox")
def sweep_outbox() -> int:
    """Re-enqueue accepted messages whose delivery enqueue was lost (e.g. the broker was down at commit)."""
    return services.message_outbox_sweep()


@shared_task(name="messaging.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return services.idempotency_records_purge()


__all__ = ["deliver_messages", "purge_idempotency_records", "sweep_outbox"]
