from celery import shared_task

from messaging.delivery import services


@shared_task(name="messaging.delivery.tasks.deliver_messages", acks_late=True, reject_on_worker_lost=True)
def deliver_messages(message_ids: list[str]) -> None:
    """Deliver a group of accepted messages (the send API enqueues one group per request)."""
    services.deliver_messages(message_ids=message_ids)
