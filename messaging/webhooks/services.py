"""Webhook services: endpoints, turning events into deliveries, and attempting deliveries.

Publishing writes one `WebhookDelivery` per (endpoint, event) with the exact JSON body, then
enqueues one task for the new rows after commit. Attempting claims a delivery with a conditional
UPDATE, POSTs it through `pufferpost.http` (the SSRF-safe outbound module), records the attempt
and schedules the next one with exponential backoff and jitter for a little over 24 hours.
A beat task re-enqueues whatever is due, so a lost task only delays a delivery.
"""

import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from messaging import observability
from messaging.models import EventType, MessageEvent
from messaging.presenters import message_summary
from messaging.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from messaging.webhooks.tasks import deliver_webhooks as deliver_webhooks_task
from pufferpost import events, http
from pufferpost.formats import utc_timestamp
from pufferpost.ids import new_id
from pufferpost.models import Workspace

logger = logging.getLogger(__name__)

# Platform events that are not about one message, and the payload key their subject goes under.
PLATFORM_EVENT_SUBJECTS = {
    events.DOMAIN_VERIFICATION_LOST: "domain",
    events.DOMAIN_DKIM_ROTATION_STARTED: "domain",
    events.DOMAIN_DKIM_ROTATION_COMPLETED: "domain",
    events.SENDER_PAUSED: "sender",
}
EVENT_TYPES = (*EventType.values, *PLATFORM_EVENT_SUBJECTS)

# Seconds to wait after the 1st, 2nd, ... failed attempt. Eleven attempts span ~31.7 hours
# (at least 28.5 with the jitter), so "retried for at least 24 hours" holds; then `failed`.
RETRY_DELAYS = (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800, 28800)
JITTER = 0.1
USER_AGENT = "Webhooks/1.0"
SIGNATURE_HEADER = "PufferPost-Signature"
EXCERPT = 1024
# The sweeper leaves fresh deliveries to the task enqueued with them for this long.
SWEEP_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 1000
TASK_CHUNK = 100


@transaction.atomic
def webhook_endpoint_create(*, workspace, url: str, events: list[str]) -> WebhookEndpoint:
    """Create an endpoint with a fresh signing secret. The caller validated `url` and `events`."""
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace,
        url=url,
        events=list(dict.fromkeys(events)),
        secret=f"whsec_{secrets.token_urlsafe(32)}",
    )
    Workspace.objects.filter(pk=endpoint.workspace_id).update(
        enabled_webhook_endpoints=F("enabled_webhook_endpoints") + 1
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Disable the endpoint (its log stays), forget its secret and give up its pending deliveries."""
    now = timezone.now()
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, disabled_at__isnull=True).update(
        disabled_at=now, secret=""
    )
    if disabled:
        Workspace.objects.filter(pk=endpoint.workspace_id, enabled_webhook_endpoints__gt=0).update(
            enabled_webhook_endpoints=F("enabled_webhook_endpoints") - 1
        )
    WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="The endpoint was deleted.", updated_at=now
    )


def webhook_events_publish(*, event_ids: list[str]) -> list[int]:
    """Create the deliveries of recorded message events for every endpoint that wants them.

    Returns the ids of the pending deliveries, already enqueued (after commit). Publishing the
    same event twice creates nothing new: one delivery per (endpoint, event).
    """
    # Endpoints first, found through the events' workspaces in one query: when none of those
    # workspaces has an enabled endpoint (the common case) the events and their messages are
    # never loaded. The endpoint rows are the same either way, so is what gets published.
    endpoints = defaultdict(list)
    for endpoint in WebhookEndpoint.objects.filter(
        workspace_id__in=MessageEvent.objects.filter(pk__in=event_ids).values("workspace_id"),
        disabled_at__isnull=True,
    ):
        endpoints[endpoint.workspace_id].append(endpoint)
    if not endpoints:
        return []
    events = list(MessageEvent.objects.filter(pk__in=event_ids).select_related("message"))
    if not events:
        return []
    now = timezone.now()
    deliveries = []
    for event in events:
        wanting = [endpoint for endpoint in endpoints[event.workspace_id] if endpoint.wants(event.type)]
        if not wanting:
            continue
        payload = _json(
            {
                "id": event.pk,
                "type": event.type,
                "occurred_at": utc_timestamp(event.occurred_at),
                "recorded_at": utc_timestamp(event.recorded_at),
                # What happened, as the timeline shows it (a bounce's class, codes, diagnostic, MTAs).
                "detail": event.detail,
                "test": not event.message.livemode,
                "message": message_summary(event.message),
            }
        )
        deliveries += [
            WebhookDelivery(
                endpoint=endpoint, event_id=event.pk, event_type=event.type, payload=payload, next_attempt_at=now
            )
            for endpoint in wanting
        ]
    return _deliveries_create(deliveries)


def webhook_platform_event_publish(*, workspace, type: str, occurred_at: datetime, subject: dict) -> str:
    """Publish an event that is not about a message: `domain.verification_lost` or `sender.paused`.

    `workspace` is a Workspace or its id; `subject` is the JSON object sent under `"domain"` or
    `"sender"` (e.g. `{"id": "dom_…", "domain": "mail.acme.com", "dkim_error": "…"}`). Call it
    inside the transaction that makes the change: the deliveries commit (or roll back) with it
    and are enqueued after commit. Returns the new event's `evt_…` id.
    """
    if type not in PLATFORM_EVENT_SUBJECTS:
        raise ValueError(f"not a platform event type: {type!r}")
    event_id = new_id("evt")
    payload = _json(
        {
            "id": event_id,
            "type": type,
            "occurred_at": utc_timestamp(occurred_at),
            "recorded_at": utc_timestamp(timezone.now()),
            PLATFORM_EVENT_SUBJECTS[type]: subject,
        }
    )
    now = timezone.now()
    endpoints = WebhookEndpoint.objects.filter(
        workspace_id=getattr(workspace, "pk", workspace), disabled_at__isnull=True
    )
    _deliveries_create(
        [
            WebhookDelivery(endpoint=endpoint, event_id=event_id, event_type=type, payload=payload, next_attempt_at=now)
            for endpoint in endpoints
            if endpoint.wants(type)
        ]
    )
    return event_id


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the PufferPost-Signature header value."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_deliveries_attempt(*, delivery_ids: list[int]) -> None:
    """Attempt each due delivery of `delivery_ids`; ones another worker holds or finished are skipped."""
    for delivery_id in delivery_ids:
        try:
            webhook_delivery_attempt(delivery_id=delivery_id)
        except Exception:  # one broken row must not starve the rest; its lease expires and the sweeper retries it
            logger.exception("webhook delivery %s could not be attempted", delivery_id)


def webhook_delivery_attempt(*, delivery_id: int) -> str | None:
    """Claim one delivery, POST it once, record the attempt; returns the new status (None: not claimed)."""
    now = timezone.now()
    lease = timedelta(seconds=settings.PUFFERPOST_WEBHOOKS_TIMEOUT + 60)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + lease, updated_at=now)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint.disabled_at is not None:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="The endpoint was deleted.", updated_at=now
        )
        return DeliveryStatus.FAILED

    body = delivery.payload.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: webhook_signature(secret=endpoint.secret, timestamp=int(time.time()), body=body),
    }
    started_at = timezone.now()
    clock = time.monotonic()
    status, response_body, error, permanent = None, "", "", False
    try:
        response = http.post(
            endpoint.url,
            body=body,
            headers=headers,
            timeout=settings.PUFFERPOST_WEBHOOKS_TIMEOUT,
            allow_private=settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE,
        )
    except http.OutboundError as exc:
        error, permanent = str(exc), exc.permanent
    except Exception as exc:  # a bug or an input nobody foresaw: a failed attempt with detail, not a stuck delivery
        logger.exception("webhook delivery %s: unexpected error", delivery_id)
        error = f"unexpected error: {exc.__class__.__name__}: {exc}"
    else:
        status, response_body = response.status, _excerpt(response.body.decode("utf-8", "replace"))
        if 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
    duration_ms = int((time.monotonic() - clock) * 1000)
    return _attempt_record(
        delivery=delivery,
        started_at=started_at,
        duration_ms=duration_ms,
        status=status,
        response_body=response_body,
        error=_excerpt(error),
        permanent=permanent,
    )


def webhook_deliveries_due_enqueue(*, limit: int = SWEEP_BATCH) -> int:
    """Enqueue the pending deliveries whose time has come (the beat job); returns how many."""
    now = timezone.now()
    due = (
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
        .filter(Q(attempts=0, next_attempt_at__lte=now - SWEEP_GRACE) | Q(attempts__gt=0, next_attempt_at__lte=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    ids = list(due)
    _enqueue(ids)
    return len(ids)


def webhook_deliveries_prune(*, batch: int = 5000) -> int:
    """Delete finished deliveries (and their attempts) older than the retention; returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.PUFFERPOST_WEBHOOKS_RETENTION_DAYS)
    removed = 0
    while True:
        ids = list(
            WebhookDelivery.objects.filter(created_at__lt=cutoff)
            .exclude(status=DeliveryStatus.PENDING)
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return removed
        WebhookDelivery.objects.filter(pk__in=ids).delete()
        removed += len(ids)


def _attempt_record(*, delivery, started_at, duration_ms, status, response_body, error, permanent) -> str:
    attempts = delivery.attempts + 1
    now = timezone.now()
    if status is not None and 200 <= status < 300:
        outcome, next_attempt_at = DeliveryStatus.SUCCEEDED, None
    elif permanent or attempts > len(RETRY_DELAYS):
        outcome, next_attempt_at = DeliveryStatus.FAILED, None
    else:
        delay = RETRY_DELAYS[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        outcome, next_attempt_at = DeliveryStatus.PENDING, now + timedelta(seconds=delay)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            started_at=started_at,
            duration_ms=duration_ms,
            response_status=status,
            response_body=response_body,
            error=error,
        )
        # Conditional: a delete that gave up on the delivery meanwhile keeps it failed.
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            status=outcome,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_response_status=status,
            last_response_body=response_body,
            last_error=error,
            updated_at=now,
        )
    observability.webhook_attempt_observe(
        delivery=delivery, outcome=outcome, status=status, error=error, duration_ms=duration_ms
    )
    return outcome


def _deliveries_create(deliveries: list[WebhookDelivery]) -> list[int]:
    if not deliveries:
        return []
    WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    # ignore_conflicts leaves the pks unset; read back the pending ones (a re-publish included).
    ids = list(
        WebhookDelivery.objects.filter(
            endpoint_id__in={d.endpoint_id for d in deliveries},
            event_id__in={d.event_id for d in deliveries},
            status=DeliveryStatus.PENDING,
            attempts=0,
        ).values_list("pk", flat=True)
    )
    _enqueue(ids)
    return ids


def _enqueue(ids: list[int]) -> None:
    for start in range(0, len(ids), TASK_CHUNK):
        chunk = ids[start : start + TASK_CHUNK]
        # robust: a broker hiccup must not fail the caller's committed work; the sweeper retries.
        transaction.on_commit(lambda chunk=chunk: deliver_webhooks_task.delay(chunk), robust=True)


def _json(payload: dict) -> str:
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def _excerpt(text: str) -> str:
    # PostgreSQL text cannot hold NUL; receivers' bodies are arbitrary.
    return text.replace("\x00", "")[:EXCERPT]


def webhook_endpoints_may_want(events) -> bool:
    """The lifecycle's filter: False only when every event carries its workspace (loaded with it,
    as the send path's are) and none of those workspaces has an enabled endpoint. Then publishing
    is skipped without a query; anything else is looked up as usual."""
    return any(not MessageEvent.workspace.is_cached(e) or e.workspace.enabled_webhook_endpoints for e in events)


def webhook_recorded_events_publish(event_ids: list[str]) -> None:
    """The message lifecycle's listener: runs inside the events' transaction, so deliveries commit with them."""
    webhook_events_publish(event_ids=event_ids)


def webhook_platform_event_received(*, kind: str, workspace_id: str, occurred_at: datetime, subject: dict) -> None:
    """The `pufferpost.events` subscriber: runs inside the publisher's transaction (see MessagingConfig.ready)."""
    webhook_platform_event_publish(workspace=workspace_id, type=kind, occurred_at=occurred_at, subject=subject)
