from messaging.webhooks.models import DeliveryStatus, WebhookEndpoint
from pufferpost.errors import Invalid
from pufferpost.pagination import paginate


def webhook_delivery_log(*, endpoint: WebhookEndpoint, params) -> tuple[list, str | None]:
    """A newest-first page of the endpoint's deliveries, each with its attempts (two queries)."""
    status = params.get("status") or ""
    if status and status not in DeliveryStatus.values:
        raise Invalid(
            "validation_failed",
            "The request is invalid.",
            violations=[
                {
                    "field": "status",
                    "code": "invalid_choice",
                    "message": f"status must be one of {', '.join(DeliveryStatus.values)}.",
                }
            ],
        )
    deliveries = endpoint.deliveries.prefetch_related("attempt_log")
    if status:
        deliveries = deliveries.filter(status=status)
    return paginate(deliveries, params, scope=f"webhook-deliveries:{endpoint.pk}:{status}")
