from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from pufferpost.ids import PrefixedIdField
from pufferpost.models import Workspace

__all__ = ["DeliveryStatus", "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint"]


class WebhookEndpoint(models.Model):
    """A customer URL that receives events. `events` empty means every type, new ones included.

    Deleting an endpoint sets `disabled_at` (its delivery log stays for support) and forgets the
    secret; a disabled endpoint is invisible to the API and receives nothing.
    """

    id = PrefixedIdField(prefix="whk")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    events = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    # Kept in clear: it is the HMAC key every delivery is signed with. Shown to the API once.
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["workspace", "-created_at", "-id"],
                name="webhook_endpoint_page_idx",
                condition=Q(disabled_at__isnull=True),
            ),
        ]

    def __str__(self):
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint, with its exact body (the same bytes on every attempt).

    `next_attempt_at` is when a worker may next try; a worker claims a delivery by pushing it
    into the future with a conditional UPDATE, so two workers never POST the same attempt.
    """

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=40)
    payload = models.TextField(help_text="The JSON body POSTed on every attempt.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_body = models.CharField(max_length=1024, blank=True, default="")
    last_error = models.CharField(max_length=1024, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once_per_event"),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_page_idx"),
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due_idx",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id} → {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, how long, what came back (or why nothing did)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.CharField(max_length=1024, blank=True, default="")
    error = models.CharField(max_length=1024, blank=True, default="")

    class Meta:
        ordering = ["delivery", "started_at", "id"]

    def __str__(self):
        return f"{self.delivery_id} at {self.started_at}"
