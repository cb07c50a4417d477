"""Outcomes: what happened to each message of a batch, and recording them in bulk.

Outcomes are recorded every few messages (PUFFERPOST_DELIVERY_FLUSH_EVERY / _SECONDS), each flush
a fixed number of statements in one transaction whatever the number of messages:
2xx → `sent` + `delivered`; 5xx for `to` → `bounced` + suppression; 4xx, timeouts, refused
connections → a `deferred` event, still `queued`, retried with exponential backoff and jitter
(a Celery countdown when shorter than PUFFERPOST_DELIVERY_COUNTDOWN_MAX, else only the sweeper)
until PUFFERPOST_DELIVERY_RETRY_WINDOW after acceptance, then `errored`.

A 5xx for a cc address suppresses it and is listed in the event's `recipients`, but the status
describes `to` (as messaging.feedback does for DSNs). A cc deferred while `to` settled is
recorded, not retried.
"""

import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging import observability
from messaging.delivery.tasks import deliver_due_messages as deliver_due_messages_task
from messaging.feedback.classes import enhanced_code_find, suppression_detail
from messaging.feedback.reputation import sender_reputation_evaluate
from messaging.lifecycle import message_events_bulk_record, messages_deliver_bulk, messages_transition_bulk
from messaging.models import (
    AttemptState,
    DeliveryAttempt,
    EventType,
    Message,
    MessageContent,
    MessageEvent,
    MessageStatus,
    Suppression,
    SuppressionReason,
)
from messaging.queries import attempts_finish, message_contents_upsert, messages_bookkeep
from pufferpost import smtp
from templates_app.rendering import Rendered

log = logging.getLogger(__name__)

S = MessageStatus


class Outcome(StrEnum):
    """What one delivery try did to a message. The first three are `smtp.Outcome`'s per-recipient
    results (same values, so `Outcome(smtp_result.outcome)` converts); the others never reach SMTP
    or, for `unknown`, passed the commit point with no reply read back."""

    DELIVERED = smtp.Outcome.DELIVERED.value
    BOUNCED = smtp.Outcome.BOUNCED.value
    DEFERRED = smtp.Outcome.DEFERRED.value
    ERRORED = "errored"  # cannot be sent: render or build error
    SUPPRESSED = "suppressed"  # `to` suppressed or opted out after acceptance
    UNKNOWN = "unknown"  # the payload may have reached the server; never sent again
    WAITING = "waiting"  # over its destination's shaping budget: nothing sent, re-scheduled


ATTEMPT_STATE = {
    Outcome.DELIVERED: AttemptState.SUCCEEDED,
    Outcome.BOUNCED: AttemptState.FAILED,
    Outcome.ERRORED: AttemptState.FAILED,
    Outcome.DEFERRED: AttemptState.DEFERRED,
    Outcome.UNKNOWN: AttemptState.UNKNOWN,
}


@dataclass
class Result:
    """What happened to one message in this batch, waiting to be recorded."""

    message: Message
    outcome: Outcome
    detail: dict = field(default_factory=dict)
    subject: str = ""
    response: str = ""
    mx_host: str = ""
    recipients: dict = field(default_factory=dict)
    attempt_id: int | None = None  # set when the attempt passed the commit point
    started_at: datetime | None = None
    finished_at: datetime | None = None
    bounced_addresses: list[str] = field(default_factory=list)
    bounce_class: str = ""  # for `bounced`: hard or block (messaging.feedback.classes)
    # Seconds until the retry when the server (greylisting, a throttle) or the budget said so.
    retry_after: float | None = None
    # When the budget said the message may go (its booked slot): due then, however late it is recorded.
    retry_at: datetime | None = None
    tls: dict | None = None
    # What was built and handed to the transport (subject, html as instrumented, text).
    content: Rendered | None = None


def retry_delay(attempts: int) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random (attempts ≥ 1)."""
    step = min(
        settings.PUFFERPOST_DELIVERY_RETRY_MAX_DELAY,
        settings.PUFFERPOST_DELIVERY_RETRY_BASE * 2 ** max(attempts - 1, 0),
    )
    return step / 2 + random.uniform(0, step / 2)


@transaction.atomic
def outcomes_record(*, results: list[Result], token: datetime) -> None:
    """Record a batch's outcomes: attempts, message bookkeeping, transitions, events, suppressions,
    retries. A fixed number of statements per call, whatever the number of messages."""
    now = timezone.now()
    by_outcome: dict[Outcome, list[Result]] = defaultdict(list)
    for result in results:
        by_outcome[result.outcome].append(result)

    _attempts_write(results, now=now)
    retries, gave_up = _retries_plan(by_outcome.get(Outcome.DEFERRED, []), now=now)
    waits, waited_out, quiet = _waits_plan(by_outcome.get(Outcome.WAITING, []), now=now)
    gave_up += waited_out
    touched = []
    for r in results:
        message = r.message
        if r.outcome not in (Outcome.DEFERRED, Outcome.WAITING):
            message.attempts += 0 if r.outcome == Outcome.SUPPRESSED else 1
            message.next_attempt_at = None
        if r.subject:
            message.subject = r.subject
        message.last_response = r.response[:2000]
        touched.append(message)
    # Delivered messages this claim still holds take one rewrite of their row: bookkeeping, `sent`
    # and `delivered` together. The others (and any that one did not move) go the ordinary way.
    delivered = _deliveries_record(by_outcome.get(Outcome.DELIVERED, []), token=token)
    messages_bookkeep([m for m in touched if m.pk not in delivered], token=token)
    _contents_record(results, now=now)
    bounced = _transitions_record(results, by_outcome, gave_up, now=now, quiet=quiet, delivered=delivered)
    _suppressions_record(results, bounced=set(bounced))
    for message_id, delay in retries:
        if delay <= settings.PUFFERPOST_DELIVERY_COUNTDOWN_MAX:
            transaction.on_commit(partial(_enqueue_retry, [message_id], delay))
    for message_ids, delay in waits:
        if delay <= settings.PUFFERPOST_DELIVERY_COUNTDOWN_MAX:
            transaction.on_commit(partial(_enqueue_retry, message_ids, delay))
    observability.delivery_outcomes_observe(results)


def _sent_detail(r: Result) -> dict:
    return {"mx_host": r.mx_host, **({"tls": r.tls} if r.tls is not None else {})}


def _deliveries_record(results: list[Result], *, token: datetime) -> set[str]:
    """`sent` + `delivered` with the try's bookkeeping, one statement for the batch; the ids moved.
    The timeline orders by occurred_at: `sent` when transmission began, `delivered` when it ended."""
    if not results:
        return set()
    moved = messages_deliver_bulk(
        messages=[r.message for r in results],
        token=token,
        sent_at={r.message.pk: r.started_at for r in results if r.started_at},
        sent_details={r.message.pk: _sent_detail(r) for r in results},
        delivered_at={r.message.pk: r.finished_at for r in results if r.finished_at},
        details={r.message.pk: r.detail for r in results},
    )
    return set(moved)


def _contents_record(results: list[Result], *, now: datetime) -> None:
    """Keep what each message's try built (one upsert per flush): the latest try's content wins."""
    contents = [
        MessageContent(
            message_id=r.message.pk, subject=r.content.subject, text=r.content.text, html=r.content.html, built_at=now
        )
        for r in results
        if r.content is not None
    ]
    message_contents_upsert(contents)


def _attempts_write(results: list[Result], *, now: datetime) -> None:
    """Attempts that passed the commit point are finished, the others written finished.
    (Suppressed-at-send-time messages never reached a server: no attempt.)"""
    finished, created = [], []
    for r in results:
        if r.outcome in (Outcome.SUPPRESSED, Outcome.WAITING) or (
            r.outcome == Outcome.ERRORED and r.started_at is None
        ):
            continue
        attempt = DeliveryAttempt(
            id=r.attempt_id,
            message_id=r.message.pk,
            state=ATTEMPT_STATE[r.outcome],
            started_at=r.started_at or now,
            finished_at=now,
            mx_host=r.mx_host,
            response=r.response or r.detail.get("message", ""),
            recipients=r.recipients,
        )
        (finished if r.attempt_id else created).append(attempt)
    if finished:
        attempts_finish(finished)
    if created:
        DeliveryAttempt.objects.bulk_create(created)


def _retries_plan(deferred: list[Result], *, now: datetime) -> tuple[list[tuple[str, float]], list[Result]]:
    """Deferred messages stay queued with their next due time, or give up after the window:
    ((message id, delay) to retry, results that gave up)."""
    window = timedelta(seconds=settings.PUFFERPOST_DELIVERY_RETRY_WINDOW)
    retries: list[tuple[str, float]] = []
    gave_up: list[Result] = []
    for r in deferred:
        message = r.message
        message.attempts += 1
        deadline = message.created_at + window
        if now >= deadline:
            gave_up.append(r)
            continue
        # A server-given delay (greylisting) or the destination's backoff, else the generic schedule.
        delay = r.retry_after if r.retry_after is not None else retry_delay(message.attempts)
        delay = min(delay, (deadline - now).total_seconds())
        message.next_attempt_at = now + timedelta(seconds=delay)
        r.detail["next_attempt_at"] = message.next_attempt_at.isoformat()
        r.detail["attempt"] = message.attempts
        retries.append((message.pk, delay))
    return retries, gave_up


def _waits_plan(waiting: list[Result], *, now: datetime):
    """Messages over their destination's budget stay queued, due when it allows them, in one retry
    task per destination and half second; the retry window still ends them. Returns ((ids, delay)
    per task, results that gave up, results not worth a timeline event: already waiting for the
    same reason)."""
    window = timedelta(seconds=settings.PUFFERPOST_DELIVERY_RETRY_WINDOW)
    groups: dict[str, tuple[list[str], float]] = {}
    gave_up, quiet = [], set()
    for r in waiting:
        message = r.message
        deadline = message.created_at + window
        if now >= deadline:
            gave_up.append(r)
            continue
        # The booked slot (an absolute time: recording may come a flush later), else the wait.
        due_in = (r.retry_at - now).total_seconds() if r.retry_at is not None else (r.retry_after or 1.0)
        delay = min(max(due_in, 0.0), (deadline - now).total_seconds())
        if message.last_response == r.response[:2000]:
            quiet.add(message.pk)
        message.next_attempt_at = now + timedelta(seconds=delay)
        r.detail["next_attempt_at"] = message.next_attempt_at.isoformat()
        # One task per destination and half second of delay: a paced (booked) backlog comes back
        # as paced, in small batches close to their slots.
        key = f"{r.detail.get('destination', '')}:{math.ceil(delay * 2)}"
        ids, longest = groups.get(key, ([], 0.0))
        ids.append(message.pk)
        groups[key] = (ids, max(longest, delay))
    return list(groups.values()), gave_up, quiet


def _transitions_record(
    results: list[Result],
    by_outcome: dict[Outcome, list[Result]],
    gave_up: list[Result],
    *,
    now: datetime,
    quiet: set[str] = frozenset(),
    delivered: set[str] = frozenset(),
) -> list[str]:
    """Status transitions and their events, plus `deferred` events; returns the ids that bounced.
    `delivered`: ids `_deliveries_record` already moved (the others delivered go `sent`, `delivered` here)."""
    details = {r.message.pk: r.detail for r in results}
    # The timeline orders by occurred_at: `sent` when transmission began, the outcome when it ended.
    started = {r.message.pk: r.started_at for r in results if r.started_at}
    ended = {r.message.pk: r.finished_at for r in results if r.finished_at}
    rest = [r for r in by_outcome.get(Outcome.DELIVERED, []) if r.message.pk not in delivered]
    if rest:
        ids = [r.message.pk for r in rest]
        sent_details = {r.message.pk: _sent_detail(r) for r in rest}
        messages_transition_bulk(message_ids=ids, to_status=S.SENT, details=sent_details, occurred_at=started)
        messages_transition_bulk(message_ids=ids, to_status=S.DELIVERED, details=details, occurred_at=ended)
    unknown = [r.message.pk for r in by_outcome.get(Outcome.UNKNOWN, [])]
    if unknown:
        unknown_details = {
            pk: {
                **details[pk],
                "outcome": Outcome.UNKNOWN.value,
                "note": "no reply to the message data; not sent again",
            }
            for pk in unknown
        }
        messages_transition_bulk(message_ids=unknown, to_status=S.SENT, details=unknown_details, occurred_at=started)
    bounced = []
    for bounce_class in sorted({r.bounce_class for r in by_outcome.get(Outcome.BOUNCED, [])}):
        bounced += messages_transition_bulk(
            message_ids=[r.message.pk for r in by_outcome[Outcome.BOUNCED] if r.bounce_class == bounce_class],
            to_status=S.BOUNCED,
            details=details,
            occurred_at=ended,
            bounce_class=bounce_class,
        )
    messages_transition_bulk(
        message_ids=[r.message.pk for r in by_outcome.get(Outcome.ERRORED, [])],
        to_status=S.ERRORED,
        details=details,
        occurred_at=now,
    )
    # Our own retry window closed: class `expired` (messaging.feedback.classes), not suppressed.
    messages_transition_bulk(
        message_ids=[r.message.pk for r in gave_up],
        to_status=S.ERRORED,
        details={
            r.message.pk: {
                **r.detail,
                "reason": "retry_window_exhausted",
                "last_response": r.response,
                "bounce_class": "expired",
            }
            for r in gave_up
        },
        occurred_at=now,
        bounce_class="expired",
    )
    messages_transition_bulk(
        message_ids=[r.message.pk for r in by_outcome.get(Outcome.SUPPRESSED, [])],
        to_status=S.SUPPRESSED,
        details=details,
        occurred_at=now,
    )
    deferred_events = [
        MessageEvent(
            message_id=r.message.pk,
            workspace_id=r.message.workspace_id,
            type=EventType.DEFERRED,
            occurred_at=now,
            detail=r.detail,
        )
        for r in by_outcome.get(Outcome.DEFERRED, []) + by_outcome.get(Outcome.WAITING, [])
        if r not in gave_up and r.message.pk not in quiet
    ]
    if deferred_events:
        message_events_bulk_record(deferred_events)
    return bounced


def _suppression_detail(r: Result, address: str) -> dict:
    """Why `address` is suppressed: the event's detail for `to`, its own SMTP answer for a cc."""
    if address == r.message.to.lower():
        return suppression_detail({**r.detail, "source": "smtp"})
    entry = next((v for k, v in r.recipients.items() if k.lower() == address), {})
    response = entry.get("response", "")
    return suppression_detail(
        {
            "bounce_class": entry.get("bounce_class"),
            "basic_code": entry.get("code"),
            "enhanced_code": enhanced_code_find(response, first_digit="5"),
            "diagnostic": response,
            "remote_mta": entry.get("mx_host"),
            "source": "smtp",
        }
    )


def _suppressions_record(results: list[Result], *, bounced: set[str]) -> None:
    """Suppress every address that bounced hard: `to` when the message bounced, cc addresses always."""
    suppressions = [
        Suppression(
            workspace_id=r.message.workspace_id,
            email=address,
            reason=SuppressionReason.BOUNCE,
            source_message_id=r.message.pk,
            detail=_suppression_detail(r, address),
        )
        for r in results
        for address in r.bounced_addresses
        if address != r.message.to.lower() or r.message.pk in bounced
    ]
    if suppressions:
        Suppression.objects.bulk_create(suppressions, ignore_conflicts=True)
        senders = {r.message.sender_id for r in results if r.message.pk in bounced}
        transaction.on_commit(partial(_evaluate_senders, senders))


def _evaluate_senders(sender_ids) -> None:
    for sender_id in sender_ids:
        sender_reputation_evaluate(sender_id=sender_id)


def _enqueue_retry(message_ids: list[str], delay: float) -> None:
    try:
        deliver_due_messages_task.apply_async([message_ids], countdown=delay)
    except Exception:  # the sweeper picks up due messages whose countdown was lost
        log.exception("could not schedule the retry of %s; the delivery sweeper will", message_ids)
