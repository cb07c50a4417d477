from celery import shared_task


@shared_task(name="messaging.webhooks.tasks.deliver_webhooks", acks_late=True, reject_on_worker_lost=True)
def deliver_webhooks(delivery_ids: list[int]) -> None:
    """Attempt a group of deliveries (one group per publish, or per sweep chunk)."""
    from messaging.webhooks.services import webhook_deliveries_attempt

    webhook_deliveries_attempt(delivery_ids=delivery_ids)


@shared_task(name="messaging.webhooks.tasks.deliver_due_webhooks")
def deliver_due_webhooks() -> int:
    """Beat: enqueue retries that are due and fresh deliveries whose task was lost."""
    from messaging.webhooks.services import webhook_deliveries_due_enqueue

    return webhook_deliveries_due_enqueue()


@shared_task(name="messaging.webhooks.tasks.prune_webhook_deliveries")
def prune_webhook_deliveries() -> int:
    """Beat, daily: forget finished deliveries past the retention."""
    from messaging.webhooks.services import webhook_deliveries_prune

    return webhook_deliveries_prune()
