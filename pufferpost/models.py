import hashlib
import secrets

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from pufferpost.ids import PrefixedIdField

SCOPES = (
    "domains:read",
    "domains:manage",
    "senders:read",
    "senders:manage",
    "templates:read",
    "templates:manage",
    "messages:send",
    "messages:read",
    "suppressions:read",
    "suppressions:manage",
    "webhooks:manage",
    "workspace:read",
)
KEY_PREFIX = "key_live_"
# Test keys run every check a live send runs but their mail never leaves (messaging.delivery's
# simulator); what they create is visible only to test keys.
TEST_KEY_PREFIX = "key_test_"
KEY_PREFIXES = (KEY_PREFIX, TEST_KEY_PREFIX)


class Workspace(models.Model):
    """A customer account: everything else belongs to exactly one workspace."""

    id = PrefixedIdField(prefix="wsp")
    name = models.CharField(max_length=200)
    default_locale = models.CharField(max_length=35, default="en")
    sending_paused = models.BooleanField(default=False)
    sending_paused_reason = models.CharField(max_length=500, blank=True, default="")
    rate_limit_per_minute = models.PositiveIntegerField(
        default=600, help_text="Send requests a minute (a batch counts as one)."
    )
    monthly_quota = models.PositiveIntegerField(default=1_000_000, help_text="Messages a calendar month (UTC).")
    max_domains = models.PositiveIntegerField(
        default=100, help_text="Sending domains the workspace may have (each holds its own DKIM key)."
    )
    max_senders = models.PositiveIntegerField(default=500, help_text="Senders the workspace may register.")
    bounce_rate_threshold = models.DecimalField(max_digits=5, decimal_places=4, default="0.0500")
    complaint_rate_threshold = models.DecimalField(max_digits=5, decimal_places=4, default="0.0010")
    # Policy/reputation refusals (bounce class `block`): the recipients are fine, the sender is not.
    block_rate_threshold = models.DecimalField(max_digits=5, decimal_places=4, default="0.1000")
    reputation_min_volume = models.PositiveIntegerField(default=100)
    open_tracking = models.BooleanField(default=False)
    # Retention (messaging.partitions, README "Retention"): a month of mail goes once it ended more
    # than this many days ago for every workspace with mail in it, and nothing in it is on its way.
    message_retention_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Days messages (status, addresses, subject, data) are kept after their month ends.",
    )
    content_retention_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Days events, delivery attempts, rendered content and attachments are kept after their month ends.",
    )
    click_tracking = models.BooleanField(default=False)
    # How many enabled webhook endpoints the workspace has, kept by messaging.webhooks' services in
    # the transaction that adds or disables one. It rides along with the API key lookup, so a send
    # in a workspace without endpoints publishes its `accepted` events without any query.
    enabled_webhook_endpoints = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.id})"


class ApiKey(models.Model):
    """A bearer key. Only its SHA-256 and a short visible prefix are stored; the secret is shown once."""

    id = PrefixedIdField(prefix="key")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True, default="")
    prefix = models.CharField(max_length=20, help_text="The first characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = ArrayField(models.CharField(max_length=40), default=list)
    livemode = models.BooleanField(
        default=True, help_text="False for a test key (key_test_…): its sends are simulated, never delivered."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.workspace_id})"

    # DRF reads these on request.user; the key is the authenticated principal.
    is_authenticated = True
    is_anonymous = False

    @staticmethod
    def hash(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @staticmethod
    def generate_secret(*, livemode: bool = True) -> str:
        return (KEY_PREFIX if livemode else TEST_KEY_PREFIX) + secrets.token_urlsafe(32)

    def has_scope(self, scope: str) -> bool:
        """A `:manage` scope includes the matching `:read`."""
        if scope in self.scopes:
            return True
        resource, _, action = scope.partition(":")
        return action == "read" and f"{resource}:manage" in self.scopes
