"""The message state machine: the only place a message's status changes after it is accepted.

Each change is one conditional UPDATE (`WHERE status IN <allowed sources>`), so two workers, a
late DSN and a retry can race without a status ever moving backwards, and the timeline event is
written in the same transaction as the change. Events that do not change the status (deferred,
opened, clicked, unsubscribed) go through `message_event_record`.

Every recorded event is also counted in the hourly rollup (messaging.models.EventRollup) by
`_notify`, in the same transaction: the count commits with the event or not at all, and a write
that records no event (a retry that finds the message already moved) counts nothing.

Listeners (webhooks) are told about every recorded event inside the same transaction, so what they
write (webhook deliveries) commits with the event or not at all: no event is lost between a commit
and a publish. Listeners defer their own I/O (enqueues) to `transaction.on_commit`.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import NamedTuple

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


class _Dims(NamedTuple):
    """What the rollup counts an event of a message under."""

    workspace_id: str
    livemode: bool
    sender_id: str
    template_id: str | None
    group_id: str | None


_DIM_FIELDS = ("workspace_id", "livemode", "sender_id", "template_id", "unsubscribe_group_id")


def _dims_of(message: Message) -> _Dims | None:
    """The message's dimensions if the instance holds them all (none deferred), else None."""
    values = message.__dict__
    if any(name not in values for name in _DIM_FIELDS):
        return None
    return _Dims(*(values[name] for name in _DIM_FIELDS))


def _hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _rollup(events: list[MessageEvent], dims: dict[str, _Dims], bounce_class: str | None) -> None:
    """Count `events` into the hourly rollup: one upsert, after at most one read of the messages
    the caller did not already have in hand."""
    for event in events:
        if event.message_id not in dims:
            cached = event._state.fields_cache.get("message")
            found = _dims_of(cached) if cached is not None else None
            if found is not None:
                dims[event.message_id] = found
    missing = {event.message_id for event in events} - dims.keys()
    if missing:
        for pk, *values in Message.objects.filter(pk__in=missing).values_list("pk", *_DIM_FIELDS):
            dims[pk] = _Dims(*values)
    counts = Counter()
    for event in events:
        d = dims.get(event.message_id)
        if d is None:  # the message is gone (deleted in this transaction): nothing to count it under
            continue
        klass = ""
        if event.type == EventType.BOUNCED:
            klass = bounce_class if bounce_class is not None else (event.detail or {}).get("bounce_class") or ""
        key = (d.workspace_id, d.livemode, _hour(event.occurred_at), event.type, d.sender_id)
        counts[(*key, d.template_id or "", d.group_id or "", klass[:8])] += 1
    queries.event_rollup_add([(*key, n) for key, n in counts.items()])


def _notify(
    events: list[MessageEvent], *, dims: dict[str, _Dims] | None = None, bounce_class: str | None = None
) -> None:
    if not events:
        return
    _rollup(events, dict(dims or {}), bounce_class)
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
    accepted_at, *values = Message.objects.filter(pk=message_id).values_list("created_at", *_DIM_FIELDS).get()
    dims = _Dims(*values)
    floor = accepted_at if occurred_at is None else _reported_floor(message_id, accepted_at)
    event = MessageEvent.objects.create(
        message_id=message_id,
        workspace_id=dims.workspace_id,
        type=event_type or to_status,
        occurred_at=_not_before(occurred_at or now, floor),
        detail=detail or {},
    )
    _notify([event], dims={message_id: dims}, bounce_class=fields.get("bounce_class"))
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
    events = queries.message_events_insert(
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
    _notify(events, bounce_class=fields.get("bounce_class"))
    return [message_id for message_id, _ in moved]


@transaction.atomic
def messages_deliver_bulk(
    *,
    messages: list[Message],
    token: datetime,
    sent_at: dict[str, datetime],
    sent_details: dict[str, dict],
    delivered_at: dict[str, datetime],
    details: dict[str, dict],
) -> list[str]:
    """`queued → sent → delivered` for the messages their claim (`token`) still holds, in one UPDATE
    that also writes each instance's delivery bookkeeping (`attempts`, `next_attempt_at`, `subject`,
    `last_response`, as `messaging.queries.messages_bookkeep` does).

    The same events as `messages_transition_bulk` to `sent` and then to `delivered` (a `sent` event
    at `sent_at` with `sent_details`, a `delivered` one at `delivered_at` with `details`; missing
    ids: now), inserted together and counted and told to listeners once. Returns the ids it moved;
    the others (claimed since by another worker, or no longer `queued`) are left untouched for the
    caller's ordinary path.
    """
    if not messages:
        return []
    now = timezone.now()
    moved = queries.messages_bookkeep_transition_returning(
        messages, token=token, from_statuses=ALLOWED_SOURCES[S.SENT], to_status=S.DELIVERED, now=now
    )
    steps = ((S.SENT, sent_at, sent_details), (S.DELIVERED, delivered_at, details))
    events = queries.message_events_insert(
        [
            MessageEvent(
                message_id=message_id,
                workspace_id=workspace_id,
                type=status,
                occurred_at=times.get(message_id) or now,
                detail=step_details.get(message_id) or {},
            )
            for status, times, step_details in steps
            for message_id, workspace_id in moved
        ]
    )
    by_id = {message.pk: message for message in messages}
    dims = {pk: found for pk, _ in moved if (found := _dims_of(by_id[pk])) is not None}
    _notify(events, dims=dims)
    return [message_id for message_id, _ in moved]
