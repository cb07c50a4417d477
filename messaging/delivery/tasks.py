from celery import shared_task
from django.db import InterfaceError, OperationalError

# A database blip (failover, restart) fails a task within a second; claiming is idempotent, so
# retrying soon beats waiting for the sweepers (minutes, with production leases).
DB_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 6,
}


@shared_task(name="messaging.delivery.tasks.deliver_messages", acks_late=True, reject_on_worker_lost=True, **DB_RETRY)
def deliver_messages(message_ids: list[str]) -> None:
    """Deliver a group of accepted messages (the send API enqueues one group per request)."""
    from messaging.delivery import services

    services.deliver_messages(message_ids=message_ids)


@shared_task(
    name="messaging.delivery.tasks.deliver_due_messages", acks_late=True, reject_on_worker_lost=True, **DB_RETRY
)
def deliver_due_messages(message_ids: list[str]) -> None:
    """Retry queued messages whose retry (or a dead worker's lease) is due; others are skipped."""
    from messaging.delivery import services

    services.deliver_due_messages(message_ids=message_ids)


@shared_task(name="messaging.delivery.tasks.sweep_deliveries")
def sweep_deliveries() -> dict:
    """Beat: re-enqueue due retries and expired claims; settle attempts a dead worker left in flight."""
    from messaging.delivery import services

    return services.delivery_sweep()
