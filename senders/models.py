from django.conf import settings
from django.db import models

from pufferpost.ids import PrefixedIdField
from pufferpost.models import Workspace


class SenderState(models.TextChoices):
    UNDER_REVIEW = "under_review"
    ACTIVE = "active"
    PAUSED = "paused"


class Sender(models.Model):
    """An exact from-address. Only `active` senders may send; state changes go through services."""

    id = PrefixedIdField(prefix="snd")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="senders")
    from_address = models.CharField(max_length=254)
    display_name = models.CharField(max_length=255, null=True, blank=True)
    state = models.CharField(max_length=16, choices=SenderState.choices, default=SenderState.UNDER_REVIEW)
    state_reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "from_address"], name="sender_unique_per_workspace")
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="sender_review_queue_idx")]

    def __str__(self):
        return self.from_address

    @property
    def domain_name(self) -> str:
        return self.from_address.rpartition("@")[2]


class SenderStateChange(models.Model):
    """Who moved a sender from one state to another, when, and why (staff, command or system)."""

    sender = models.ForeignKey(Sender, on_delete=models.CASCADE, related_name="state_changes")
    from_state = models.CharField(max_length=16, choices=SenderState.choices)
    to_state = models.CharField(max_length=16, choices=SenderState.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=150, help_text="Username, 'command' or 'system'.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.sender_id}: {self.from_state} → {self.to_state}"
