from celery import shared_task

from messaging.delivery import services


@shared_task(name="messaging.delivery.tasks.deliver_messages", acks_late=True, reject_on_worker_lost=True)
def deliver_messages(message_ids: list[str]) -> None:
    """Deliver a group of accepted messages (the send API enqueues one group per request)."""
    services.deliver_messages(message_ids=message_ids)


@shared_task(name="messaging.delivery.tasks.deliver_due_messages", acks_late=True, reject_on_worker_lost=True)
def deliver_due_messages(message_ids: list[str]) -> None:
    """Retry queued messages whose retry (or a dead worker's lease) is due; others are skipped."""
    services.deliver_due_messages(message_ids=message_ids)


@shared_task(name="messaging.delivery.tasks.sweep_deliveries")
def sweep_deliveries() -> dict:
    """Beat: re-enqueue due retries and expired claims; settle attempts a dead worker left in flight."""
    return services.delivery_sweep()
