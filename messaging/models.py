from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from pufferpost.ids import PrefixedIdField
from pufferpost.models import Workspace
from senders.models import Sender


class MessageStatus(models.TextChoices):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"
    ERRORED = "errored"


TERMINAL_STATUSES = (
    MessageStatus.DELIVERED,
    MessageStatus.BOUNCED,
    MessageStatus.COMPLAINED,
    MessageStatus.SUPPRESSED,
    MessageStatus.ERRORED,
)


class EventType(models.TextChoices):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"
    UNSUBSCRIBED = "unsubscribed"
    ERRORED = "errored"


class UnsubscribeGroup(models.Model):
    id = PrefixedIdField(prefix="grp")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="unsubscribe_groups")
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class Unsubscribe(models.Model):
    group = models.ForeignKey(UnsubscribeGroup, on_delete=models.CASCADE, related_name="unsubscribes")
    email = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "email"], name="unsubscribe_unique_per_group")]

    def __str__(self):
        return f"{self.email} from {self.group_id}"


class SuppressionReason(models.TextChoices):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


class Suppression(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="suppressions")
    email = models.CharField(max_length=254)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    source_message = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Why: for a bounce, its class, codes, diagnostic and the MTAs (shown in the API and the admin).
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "email"], name="suppression_unique_per_workspace")]
        indexes = [models.Index(fields=["workspace", "-created_at", "-id"], name="suppression_page_idx")]

    def __str__(self):
        return f"{self.email} ({self.reason})"


class Message(models.Model):
    """One accepted send, with its rendering inputs pinned (template version, data, locale, zone)."""

    id = PrefixedIdField(prefix="msg")
    # messaging_message keeps only the indexes a read or a guarantee needs (see Meta.indexes): the
    # foreign keys' own indexes are prefixes of those, or serve deletes that never happen in the
    # API (a template, version or group is archived or kept, never deleted with its messages).
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="messages", db_index=False)
    sender = models.ForeignKey("senders.Sender", on_delete=models.PROTECT, related_name="messages", db_index=False)
    from_address = models.CharField(max_length=254)
    to = models.CharField(max_length=254)
    cc = ArrayField(models.CharField(max_length=254), default=list, blank=True)
    reply_to = models.CharField(max_length=254, null=True, blank=True)
    # Both null for a message submitted with its own content (SMTP submission; see MessageBody).
    template = models.ForeignKey(
        "templates_app.Template",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
        db_index=False,
    )
    template_version = models.ForeignKey(
        "templates_app.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
        db_index=False,
    )
    data = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tags = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    locale = models.CharField(max_length=35)
    timezone = models.CharField(max_length=64, default="UTC")
    unsubscribe_group = models.ForeignKey(
        UnsubscribeGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages", db_index=False
    )
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.ACCEPTED)
    subject = models.TextField(blank=True, default="")
    # False for a test key's send: simulated at delivery (never connects to a server), left out of
    # the quota and reputation rates, and read only by test keys.
    livemode = models.BooleanField(default=True)
    # Delivery bookkeeping (owned by messaging.delivery).
    attempts = models.PositiveIntegerField(default=0)
    # While `queued`: when the delivery sweeper may next pick the message up (a retry's due time,
    # or the end of the lease of the worker that claimed it).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The claim a worker holds (set by every claim); a worker sends only while it is unchanged.
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_response = models.TextField(blank=True, default="")
    # Why a bounced (or errored-on-expiry) message failed: hard, block, soft or expired
    # (messaging.feedback.classes). Blank for every other outcome. The block rate counts `block`.
    bounce_class = models.CharField(max_length=8, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # GET /v1/messages and its filters, newest first from the cursor on; the first also
            # serves the monthly quota count and a workspace's cascade delete.
            models.Index(fields=["workspace", "-created_at", "-id"], name="message_page_idx"),
            models.Index(fields=["workspace", "status", "-created_at", "-id"], name="message_status_page_idx"),
            models.Index(fields=["workspace", "to", "-created_at", "-id"], name="message_to_page_idx"),
            models.Index(fields=["workspace", "from_address", "-created_at", "-id"], name="message_from_page_idx"),
            # A template belongs to one workspace, so the template leads: the same list read, and
            # the PROTECT check when a template is deleted.
            models.Index(fields=["template", "-created_at", "-id"], name="message_template_page_idx"),
            # Sender auto-pause (messaging.feedback.reputation): one sender's recent messages, read
            # from the index alone; sender_id leads, so it also serves the sender's PROTECT check.
            models.Index(
                fields=["sender", "created_at"], include=["status", "bounce_class"], name="message_sender_recent_idx"
            ),
            # The outbox sweeper only ever looks at messages not yet handed to delivery.
            models.Index(
                fields=["updated_at"],
                name="message_outbox_idx",
                condition=Q(status__in=["accepted", "queued"]),
            ),
            # The delivery sweeper: queued messages whose retry or lease is due.
            models.Index(fields=["next_attempt_at"], name="message_delivery_due_idx", condition=Q(status="queued")),
        ]

    def __str__(self):
        return self.id


class MessageAttachment(models.Model):
    """Attachment bytes live apart from the message row so reads never load (or echo) them."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    position = models.PositiveSmallIntegerField()
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    content = models.BinaryField()

    class Meta:
        ordering = ["message", "position"]
        constraints = [models.UniqueConstraint(fields=["message", "position"], name="attachment_position_unique")]

    def __str__(self):
        return self.filename


class MessageBody(models.Model):
    """The subject, text and HTML of a message that came with its own content instead of a template
    (SMTP submission): what delivery sends in place of rendering a template version."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, primary_key=True, related_name="body")
    subject = models.TextField(blank=True, default="")
    text = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")

    def __str__(self):
        return f"body of {self.message_id}"


class MessageContent(models.Model):
    """What delivery built and handed to the receiving servers: the rendered subject, text and HTML
    (links and pixel as instrumented), written with the outcome and rewritten by a later try, so
    `GET /v1/messages/{id}/content` shows exactly what was sent for as long as the message is kept."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, primary_key=True, related_name="content")
    subject = models.TextField(blank=True, default="")
    text = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    built_at = models.DateTimeField()

    def __str__(self):
        return f"content of {self.message_id}"


class MessageEvent(models.Model):
    id = PrefixedIdField(prefix="evt")
    # Indexed by event_timeline_idx (which leads with it) and event_workspace_idx (migration 0014).
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events", db_index=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    type = models.CharField(max_length=16, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        # When it happened, then when we learnt it (a DSN's whole-second Date ties with delivery's events).
        ordering = ["occurred_at", "recorded_at", "id"]
        indexes = [
            models.Index(fields=["message", "occurred_at", "recorded_at", "id"], name="event_timeline_idx"),
            models.Index(fields=["workspace"], name="event_workspace_idx"),  # a workspace's deletion
        ]

    def __str__(self):
        return f"{self.type} {self.message_id}"


class AttemptState(models.TextChoices):
    IN_FLIGHT = "in_flight"  # committed just before the DATA payload; the outcome is not recorded yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent (5xx, render or build error)
    DEFERRED = "deferred"  # temporary; the message is retried
    UNKNOWN = "unknown"  # the worker died after the commit point: maybe delivered, never re-sent


class DeliveryAttempt(models.Model):
    """One try at handing a message to its receiving servers (see messaging.delivery.commit_point).

    A row is written `in_flight` just before the DATA payload (the commit point) and finished with
    the outcome; tries that end before DATA (connection refused, 4xx/5xx at RCPT) are written once,
    finished. `recipients` holds each recipient's result: {address: {outcome, code, response}}.
    """

    # Indexed by attempt_message_idx, which leads with it (migration 0014).
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="delivery_attempts", db_index=False)
    state = models.CharField(max_length=16, choices=AttemptState.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    mx_host = models.CharField(max_length=255, blank=True, default="")
    response = models.TextField(blank=True, default="")
    recipients = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["message", "started_at", "id"]
        indexes = [
            models.Index(fields=["message", "started_at"], name="attempt_message_idx"),
            models.Index(fields=["message"], name="attempt_in_flight_idx", condition=Q(state="in_flight")),
        ]

    def __str__(self):
        return f"{self.message_id} {self.state}"


class EventRollup(models.Model):
    """How many events of a type happened in one UTC hour, per workspace, mode, sender, template and
    unsubscribe group: what `GET /v1/stats` and the admin's charts read instead of the events.

    Kept by messaging.lifecycle in the transaction that records the events (one upsert that adds,
    messaging.queries.event_rollup_add), so a count exists exactly when its event does: a rolled
    back event takes its count with it, and a retried write that records no event adds nothing.
    `manage.py rollup_events` rebuilds it from the events table. Absent template or group: "".
    Bounces are split by their class (`block` is counted apart for the block rate); blank otherwise.
    Rows outlive the events they count (retention may drop those), so stats reach further back.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    livemode = models.BooleanField()
    bucket = models.DateTimeField(help_text="The start of the UTC hour the events occurred in.")
    type = models.CharField(max_length=16, choices=EventType.choices)
    sender_id = models.CharField(max_length=30)
    template_id = models.CharField(max_length=30, blank=True, default="")
    group_id = models.CharField(max_length=30, blank=True, default="")
    bounce_class = models.CharField(max_length=8, blank=True, default="")
    n = models.BigIntegerField()

    class Meta:
        constraints = [
            # The upsert's conflict target; its index, led by (workspace, livemode, bucket), serves the reads.
            models.UniqueConstraint(
                fields=[
                    "workspace",
                    "livemode",
                    "bucket",
                    "type",
                    "sender_id",
                    "template_id",
                    "group_id",
                    "bounce_class",
                ],
                name="event_rollup_key",
            )
        ]

    def __str__(self):
        return f"{self.workspace_id} {self.bucket:%Y-%m-%d %H}h {self.type}: {self.n}"


class IdempotencyRecord(models.Model):
    """One Idempotency-Key per workspace, fingerprinted against the send body; kept ≥ 24 h."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    # Live and test keys of one workspace have separate key spaces: a test run never replays live mail.
    livemode = models.BooleanField(default=True)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "livemode", "key"], name="idempotency_key_unique")]

    def __str__(self):
        return self.key


class WorkspaceReputation(Workspace):
    """The workspaces again, as the admin's "Workspace reputation" page: the bounce, complaint and
    block rates of all their senders together, and the block rate's workspace-wide pause."""

    class Meta:
        proxy = True
        verbose_name = "workspace reputation"
        verbose_name_plural = "workspace reputation"


class SenderReputation(Sender):
    """The senders again, as the admin's "Sender reputation" page: bounce, complaint and block
    rates against their workspace's thresholds (senders/ cannot read messages; messaging can)."""

    class Meta:
        proxy = True
        verbose_name = "sender reputation"
        verbose_name_plural = "sender reputation"
