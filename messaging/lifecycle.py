"""The message state machine: the only place a message's status changes after it is accepted.

Each change is one conditional UPDATE (`WHERE status IN <allowed sources>`), so two workers, a
late DSN and a retry can race without a status ever moving backwards, and the timeline event is
written in the same transaction as the change. Events that do not change the status (deferred,
opened, clicked, unsubscribed) go through `message_event_record`.

Listeners (webhooks) are told about every recorded event inside the same transaction, so what they
write (webhook deliveries) commits with the event or not at all: no event is lost between a commit
and a publish. Listeners defer their own I/O (enqueues) to `transaction.on_commit`.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from messaging import queries
from messaging.models import AttemptState, DeliveryAttempt, EventType, Message, MessageEvent, MessageStatus
from pufferpost import metrics

S = MessageStatus

# target status -> the statuses it may be reached from
ALLOWED_SOURCES: dict[str, tuple[str, ...]] = {
    S.QUEUED: (S.ACCEPTED,),
    S.SENT: (S.QUEUED,),
    S.DELIVERED: (S.SENT, S.QUEUED),
    # A DSN can arrive after the receiving MX said 250 (asynchronous bounce).
    S.BOUNCED: (S.QUEUED, S.SENT, S.DELIVERED),
    S.COMPLAINED: (S.SENT, S.DELIVERED),
    S.SUPPRESSED: (S.ACCEPTED, S.QUEUED),
    S.ERRORED: (S.ACCEPTED, S.QUEUED),
}

_listeners: list[Callable[[list[str]], None]] = []
_wants: dict[Callable, Callable[[list[MessageEvent]], bool]] = {}


def on_events_recorded(
    listener: Callable[[list[str]], None], *, wants: Callable[[list[MessageEvent]], bool] | None = None
) -> Callable[[list[str]], None]:
    """Register `listener(event_ids)`, called inside the recording transaction for every batch of events.

    `wants(events)`, if given, sees the recorded event objects first; the
    listener is skipped when it answers False, so a listener can avoid a query it knows is useless.
    """
    _listeners.append(listener)
    if wants is not None:
        _wants[listener] = wants
    return listener


def _notify(events: list[MessageEvent]) -> None:
    if not events:
        return
    # Counted now, not on commit: the send path's commit callbacks stay one, and a rolled-back
    # event is rare enough not to matter for a rate.
    for event_type, count in Counter(event.type for event in events).items():
        metrics.MESSAGE_EVENTS.labels(event_type).inc(count)
    event_ids = [event.pk for event in events]
    for listener in _listeners:
        wants = _wants.get(listener)
        if wants is None or wants(events):
            listener(list(event_ids))


def _not_before(occurred_at: datetime, accepted_at: datetime) -> datetime:
    """A reported time (a DSN's whole-second Date, a skewed clock) never puts an event before the
    message was accepted; the timeline then orders ties by recorded_at."""
    return max(occurred_at, accepted_at)


def _reported_floor(message_id: str, accepted_at: datetime | None) -> datetime | None:
    """The earliest a reported event may sort: after everything already on the message's timeline.

    A report (DSN, complaint) is always about what came before it; its whole-second `Date` must not
    put a relay's bounce before the `delivered` that the same relay answered a moment earlier (seen
    with a real Postfix as the MX, which bounces within the same second). A report that arrives
    while the delivery that caused it is still in flight (the worker has the relay's 250 but has
    not written it yet) sorts at its arrival, which is after that 250."""
    latest = MessageEvent.objects.filter(message_id=message_id).aggregate(latest=Max("occurred_at"))["latest"]
    if DeliveryAttempt.objects.filter(message_id=message_id, state=AttemptState.IN_FLIGHT).exists():
        latest = timezone.now()
    candidates = [t for t in (latest, accepted_at) if t is not None]
    return max(candidates) if candidates else None


@transaction.atomic
def message_transition(
    *,
    message_id: str,
    to_status: str,
    occurred_at: datetime | None = None,
    detail: dict | None = None,
    event_type: str | None = None,
    **fields,
) -> bool:
    """Move one message to `to_status` if its current status allows it, recording the event.

    Returns False (and writes nothing) when the message is missing or already past that point,
    which makes every caller idempotent. Extra `fields` (e.g. `subject`, `last_response`) are
    written in the same UPDATE.
    """
    now = timezone.now()
    changed = Message.objects.filter(pk=message_id, status__in=ALLOWED_SOURCES[to_status]).update(
        status=to_status, updated_at=now, **fields
    )
    if not changed:
        return False
    workspace_id, accepted_at = Message.objects.filter(pk=message_id).values_list("workspace_id", "created_at").get()
    floor = accepted_at if occurred_at is None else _reported_floor(message_id, accepted_at)
    event = MessageEvent.objects.create(
        message_id=message_id,
        workspace_id=workspace_id,
        type=event_type or to_status,
        occurred_at=_not_before(occurred_at or now, floor),
        detail=detail or {},
    )
    _notify([event])
    return True


@transaction.atomic
def message_event_record(
    *, message: Message, type: str, occurred_at: datetime | None = None, detail: dict | None = None
) -> MessageEvent:
    """Record an event that does not change the status (deferred, opened, clicked, unsubscribed)."""
    if type not in EventType.values:
        raise ValueError(f"unknown event type {type!r}")
    accepted_at = message.__dict__.get("created_at")  # loaded by every caller that passes a time of its own
    floor = _reported_floor(message.pk, accepted_at) if occurred_at is not None else accepted_at
    occurred_at = occurred_at or timezone.now()
    event = MessageEvent.objects.create(
        message=message,
        workspace_id=message.workspace_id,
        type=type,
        occurred_at=_not_before(occurred_at, floor) if floor else occurred_at,
        detail=detail or {},
    )
    _notify([event])
    return event


@transaction.atomic(savepoint=False)  # the send path is already in its transaction: no savepoint pair
def message_events_bulk_record(events: Iterable[MessageEvent]) -> list[MessageEvent]:
    """Insert many prepared events at once (the send path's `accepted` events) and notify listeners."""
    created = MessageEvent.objects.bulk_create(list(events))
    _notify(created)
    return created


@transaction.atomic
def messages_transition_bulk(
    *,
    message_ids: Iterable[str],
    to_status: str,
    occurred_at: datetime | dict[str, datetime] | None = None,
    details: dict[str, dict] | None = None,
    event_type: str | None = None,
    **fields,
) -> list[str]:
    """`message_transition` for many messages at once: one conditional UPDATE … RETURNING and one
    bulk INSERT of events, listeners notified once. Same allowed sources, same events.

    `details` maps a message id to its event's detail; `occurred_at` is one time for all or a map
    by message id (missing ids: now). Returns the ids that moved (the others were
    missing or already past that point). `fields` are plain values written in the same UPDATE.
    """
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        return []
    now = timezone.now()
    assignments = {"status": to_status, "updated_at": now, **fields}
    moved = queries.messages_update_returning(
        message_ids=ids, from_statuses=ALLOWED_SOURCES[to_status], assignments=assignments
    )
    details = details or {}
    events = MessageEvent.objects.bulk_create(
        [
            MessageEvent(
                message_id=message_id,
                workspace_id=workspace_id,
                type=event_type or to_status,
                occurred_at=(occurred_at.get(message_id) if isinstance(occurred_at, dict) else occurred_at) or now,
                detail=details.get(message_id) or {},
            )
            for message_id, workspace_id in moved
        ]
    )
    _notify(events)
    return [message_id for message_id, _ in moved]
