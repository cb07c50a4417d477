"""Delivery: claim accepted messages, render, build, DKIM-sign and send them, record the outcome.

Flow of one task (`deliver_messages` for new mail, `deliver_due_messages` for retries):

1. Claim. One conditional UPDATE … RETURNING moves the batch `accepted → queued` (with the
   `queued` events) or, for a retry, takes `queued` messages whose `next_attempt_at` is due and
   that have no attempt in flight. Each claim stamps `claimed_at` (the claim's token) and sets
   `next_attempt_at` to the end of a lease (PUFFERPOST_DELIVERY_LEASE). Anything already claimed,
   sent or terminal is skipped, so the sweeper's and a redelivered task's duplicates do nothing.
2. Load everything for the batch in a fixed number of queries, re-check suppressions and opt-outs,
   render, build, instrument, DKIM-sign; send through one `Mailer` (connections reused per
   destination), messages ordered by recipient domain.
3. The commit point. When the server has answered 354 to DATA and before the payload is sent, one
   statement (autocommit) checks that the claim is still ours (`claimed_at` unchanged, still
   `queued`), renews the lease and inserts a `DeliveryAttempt` in state `in_flight`. If the claim
   was lost (the lease ran out and the sweeper gave the message to another worker), the connection
   is closed without the final dot and the server discards the message.
4. Outcomes are recorded in bulk every few messages (PUFFERPOST_DELIVERY_FLUSH_EVERY / _SECONDS):
   2xx → `sent` + `delivered`; 5xx for `to` → `bounced` + suppression; 4xx, timeouts, refused
   connections → a `deferred` event, still `queued`, retried with exponential backoff and jitter
   (a Celery countdown when shorter than PUFFERPOST_DELIVERY_COUNTDOWN_MAX, else only the sweeper)
   until PUFFERPOST_DELIVERY_RETRY_WINDOW after acceptance, then `errored`.

The sweeper (`delivery_sweep`, a beat task) picks up `queued` messages whose `next_attempt_at`
has passed: a due retry whose countdown was lost, or a claim whose worker died. Those without an
in-flight attempt are handed to a worker again (re-claimed, so the old claim is fenced off). Those
with one are never sent again: the worker died between the commit point and recording the
outcome, so the server may have the message. They become `sent` with `outcome: unknown`.

The guarantee, precisely. Per message (and per SMTP transaction for a message whose recipients
span several destinations): it is never handed to a receiving server twice (no at-least-once
anywhere: a retry happens only when no attempt passed the commit point, or the server answered
the DATA payload with an explicit 4xx). It may be lost (at-most-once) only if the worker dies,
or the connection breaks, between committing the in-flight attempt and reading the server's
reply to the payload — a window of one network round trip plus the server's processing. Such a
message ends `sent` with `outcome: unknown` rather than being retried. A crash anywhere before
the commit point (claim, render, connect, MAIL, RCPT, even the DATA command) is retried by the
sweeper after the lease. Recipients of one message on different destinations are separate SMTP
transactions: once any of them passed the commit point, the others are not retried after a crash.

Choices:
- A from-domain that is no longer verified (drift) or has no key is a temporary failure: the
  message is deferred and retried (drift is usually a DNS blip the re-check repairs), and ends
  `errored` when the retry window closes. Nothing is ever sent unsigned.
- A suppression or group opt-out added after acceptance: `to` → `suppressed`, cc → left out.
- A 5xx for a cc address suppresses it and is listed in the event's `recipients`, but the status
  describes `to` (as messaging.feedback does for DSNs). A cc deferred while `to` settled is
  recorded, not retried; when `to` is retried, recipients that already accepted it are left out.
"""

import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from domains.models import DkimStatus, Domain
from messaging import observability
from messaging.delivery import dkim
from messaging.delivery.mime import Attachment, build_message, domain_of
from messaging.lifecycle import message_events_bulk_record, messages_transition_bulk
from messaging.models import (
    AttemptState,
    DeliveryAttempt,
    EventType,
    Message,
    MessageEvent,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Unsubscribe,
)
from messaging.tracking.links import instrument_html, unsubscribe_url
from pufferpost.smtp import DeliveryResult, Mailer, Outcome
from senders.models import SenderState
from templates_app.rendering import RenderError, render_version

log = logging.getLogger(__name__)

S = MessageStatus
SWEEP_CHUNK = 100


# --- claiming --------------------------------------------------------------------------------


def _lease_end(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.PUFFERPOST_DELIVERY_LEASE)


def messages_claim(*, message_ids: list[str]) -> tuple[list[str], datetime]:
    """`accepted → queued` for those of `message_ids` still accepted; (claimed ids, claim token)."""
    now = timezone.now()
    claimed = messages_transition_bulk(
        message_ids=message_ids, to_status=S.QUEUED, claimed_at=now, next_attempt_at=_lease_end(now)
    )
    return claimed, now


def messages_claim_due(*, message_ids: list[str]) -> tuple[list[str], datetime]:
    """Re-claim `queued` messages whose retry or lease is due and that have no attempt in flight."""
    now = timezone.now()
    table = connection.ops.quote_name(Message._meta.db_table)
    attempts = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} m SET claimed_at = %s, next_attempt_at = %s
                 WHERE m.id = ANY(%s) AND m.status = %s AND m.next_attempt_at <= %s
                   AND NOT EXISTS (SELECT 1 FROM {attempts} a WHERE a.message_id = m.id AND a.state = %s)
             RETURNING m.id""",
            [now, _lease_end(now), list(message_ids), S.QUEUED, now, AttemptState.IN_FLIGHT],
        )
        return [row[0] for row in cursor.fetchall()], now


def deliver_messages(*, message_ids: list[str]) -> None:
    """Claim, render, sign and send each of `message_ids`; messages already past `accepted` are skipped."""
    claimed, token = messages_claim(message_ids=message_ids)
    if claimed:
        _Batch(claimed, token).run()


def deliver_due_messages(*, message_ids: list[str]) -> None:
    """A retry: send those of `message_ids` that are due (countdowns and the sweeper both land here)."""
    claimed, token = messages_claim_due(message_ids=message_ids)
    if claimed:
        _Batch(claimed, token).run()


# --- the batch --------------------------------------------------------------------------------


@dataclass
class _Result:
    """What happened to one message in this batch, waiting to be recorded."""

    message: Message
    outcome: str  # delivered / bounced / deferred / errored / suppressed / unknown
    detail: dict = field(default_factory=dict)
    subject: str = ""
    response: str = ""
    mx_host: str = ""
    recipients: dict = field(default_factory=dict)
    attempt_id: int | None = None  # set when the attempt passed the commit point
    started_at: datetime | None = None
    finished_at: datetime | None = None
    bounced_addresses: list[str] = field(default_factory=list)


class _Batch:
    def __init__(self, message_ids: list[str], token: datetime):
        self.ids = message_ids
        self.token = token
        self.pending: list[_Result] = []
        self.first_pending_at: float | None = None

    def run(self) -> None:
        messages = self._load()
        try:
            with Mailer() as mailer:
                for message in messages:
                    result = self._prepare_and_send(mailer, message)
                    if result is not None:
                        self._add(result)
        finally:
            self._flush()

    # -- loading: a fixed number of queries whatever the batch size --

    def _load(self) -> list[Message]:
        messages = list(
            Message.objects.filter(pk__in=self.ids, status=S.QUEUED, claimed_at=self.token)
            .select_related("sender", "template_version", "workspace")
            .prefetch_related("attachments")
        )
        workspace_ids = {m.workspace_id for m in messages}
        addresses = {a.lower() for m in messages for a in (m.to, *m.cc)}
        self.domains = {
            (d.workspace_id, d.domain): d
            for d in Domain.objects.filter(
                workspace_id__in=workspace_ids,
                domain__in={domain_of(m.from_address) for m in messages},
                dkim_status=DkimStatus.VERIFIED,
            )
        }
        self.suppressed = set(
            Suppression.objects.filter(workspace_id__in=workspace_ids, email__in=addresses).values_list(
                "workspace_id", "email"
            )
        )
        group_ids = {m.unsubscribe_group_id for m in messages if m.unsubscribe_group_id}
        self.unsubscribed = (
            set(
                Unsubscribe.objects.filter(group_id__in=group_ids, email__in=addresses).values_list("group_id", "email")
            )
            if group_ids
            else set()
        )
        # Recipients that already accepted (or refused) a message in an earlier try are not sent it again.
        self.settled: dict[str, set[str]] = defaultdict(set)
        retried = [m.pk for m in messages if m.attempts]
        if retried:
            for message_id, recipients in DeliveryAttempt.objects.filter(message_id__in=retried).values_list(
                "message_id", "recipients"
            ):
                for address, outcome in (recipients or {}).items():
                    if outcome.get("outcome") in (Outcome.DELIVERED, Outcome.BOUNCED):
                        self.settled[message_id].add(address.lower())
        messages.sort(key=lambda m: (domain_of(m.to), m.pk))
        return messages

    def _is_suppressed(self, message: Message, address: str) -> bool:
        address = address.lower()
        return (message.workspace_id, address) in self.suppressed or (
            message.unsubscribe_group_id is not None and (message.unsubscribe_group_id, address) in self.unsubscribed
        )

    # -- one message --

    def _prepare_and_send(self, mailer: Mailer, message: Message) -> _Result | None:
        if self._is_suppressed(message, message.to):
            return _Result(message, "suppressed", detail={"reason": "recipient_suppressed", "recipient": message.to})
        held = _held_reason(message)
        if held is not None:
            return _Result(message, "deferred", detail=held, response=held["reason"])
        domain = self.domains.get((message.workspace_id, domain_of(message.from_address)))
        if domain is None or not (domain.dkim_private_key and domain.selector):
            return _Result(
                message,
                "deferred",
                detail={
                    "reason": "domain_not_verified",
                    "message": f"{domain_of(message.from_address)} is not a verified sending domain with a "
                    "signing key in this workspace; retrying until it is verified again.",
                },
                response="sending domain not verified",
            )
        try:
            rendered = render_version(
                message.template_version, data=message.data, locale=message.locale, timezone=message.timezone
            )
        except RenderError as exc:
            return _Result(message, "errored", detail={"reason": "render_error", "message": str(exc)})
        workspace = message.workspace
        html = instrument_html(
            rendered.html, message_id=message.pk, opens=workspace.open_tracking, clicks=workspace.click_tracking
        )
        cc = [a for a in message.cc if a.lower() != message.to.lower() and not self._is_suppressed(message, a)]
        settled = self.settled.get(message.pk, set())
        try:
            outgoing = build_message(
                message_id=message.pk,
                from_email=message.from_address,
                from_name=message.sender.display_name or "",
                to=message.to,
                cc=cc,
                reply_to=message.reply_to,
                subject=rendered.subject,
                html=html,
                text=rendered.text,
                attachments=[
                    Attachment(a.filename, a.content_type, bytes(a.content)) for a in message.attachments.all()
                ],
                unsubscribe_url=unsubscribe_url(message.pk),
            )
            signed = dkim.sign(
                outgoing.data, domain=domain.domain, selector=domain.selector, private_key_pem=domain.dkim_private_key
            )
        except Exception as exc:  # a message that cannot be built must not take the batch down
            log.exception("could not build %s", message.pk)
            return _Result(message, "errored", detail={"reason": "build_error", "message": str(exc)})
        recipients = [r for r in outgoing.recipients if r.lower() not in settled]
        if not recipients:  # every recipient took it in an earlier try
            return _Result(
                message,
                "delivered",
                subject=rendered.subject,
                detail={"recipient": message.to, "note": "every recipient accepted it in an earlier try"},
                started_at=timezone.now(),
            )
        fence = _CommitPoint(message.pk, self.token, rendered.subject)
        started_at = timezone.now()
        try:
            results = mailer.send(mail_from=outgoing.mail_from, recipients=recipients, data=signed, before_data=fence)
        except ValueError as exc:  # addresses the transport cannot carry
            return _Result(message, "errored", detail={"reason": "build_error", "message": str(exc)})
        finished_at = timezone.now()
        if fence.lost:
            log.warning("%s: claim lost before DATA (lease expired); another worker owns it", message.pk)
            return None
        return self._classify(message, rendered.subject, results, fence, started_at, finished_at)

    def _classify(
        self, message, subject, results: dict[str, DeliveryResult], fence, started_at, finished_at
    ) -> _Result:
        to_result = results.get(message.to) or next(iter(results.values()))
        recipients = {
            address: {"outcome": r.outcome.value, "code": r.code, "response": r.response_text, "mx_host": r.mx_host}
            for address, r in results.items()
        }
        bounced = [address.lower() for address, r in results.items() if r.outcome == Outcome.BOUNCED]
        response = f"{to_result.code or ''} {to_result.response_text}".strip()
        detail = {
            "recipient": message.to,
            "code": to_result.code,
            "response": to_result.response_text,
            "mx_host": to_result.mx_host,
        }
        if len(recipients) > 1:
            detail["recipients"] = recipients
        outcome = to_result.outcome.value
        if message.to.lower() in self.settled.get(message.pk, set()):
            outcome = Outcome.DELIVERED.value  # `to` took it in an earlier try; this one was for a cc
        elif message.to.lower() in fence.committed and to_result.outcome == Outcome.DEFERRED and to_result.code is None:
            # The payload may have reached the server with no reply read back: never send it again.
            outcome = "unknown"
        return _Result(
            message,
            outcome,
            detail=detail,
            subject=subject,
            response=response,
            mx_host=to_result.mx_host,
            recipients=recipients,
            attempt_id=fence.attempt_id,
            started_at=started_at,
            finished_at=finished_at,
            bounced_addresses=bounced,
        )

    # -- recording, in bulk --

    def _add(self, result: _Result) -> None:
        self.pending.append(result)
        now = time.monotonic()
        if self.first_pending_at is None:
            self.first_pending_at = now
        if (
            len(self.pending) >= settings.PUFFERPOST_DELIVERY_FLUSH_EVERY
            or now - self.first_pending_at >= settings.PUFFERPOST_DELIVERY_FLUSH_SECONDS
        ):
            self._flush()

    def _flush(self) -> None:
        pending, self.pending, self.first_pending_at = self.pending, [], None
        if pending:
            outcomes_record(results=pending, token=self.token)


class _CommitPoint:
    """`before_data` for one message: fence on the claim, renew the lease, insert the in-flight attempt."""

    def __init__(self, message_id: str, token: datetime, subject: str):
        self.message_id, self.token, self.subject = message_id, token, subject
        self.attempt_id: int | None = None
        self.lost = False
        # Recipients whose transaction passed the commit point (their outcome may be unknowable).
        self.committed: set[str] = set()

    def __call__(self, recipients: list[str]) -> bool:
        if self.attempt_id is not None:
            # A second destination of the same message: the attempt is already in flight.
            self.committed.update(r.lower() for r in recipients)
            return True
        now = timezone.now()
        table = connection.ops.quote_name(Message._meta.db_table)
        attempts = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
        # One statement, so it commits on its own in autocommit mode: both rows or neither.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""WITH fenced AS (
                        UPDATE {table} SET next_attempt_at = %s, subject = %s, updated_at = %s
                         WHERE id = %s AND status = %s AND claimed_at = %s
                     RETURNING id)
                    INSERT INTO {attempts} (message_id, state, started_at, mx_host, response, recipients)
                    SELECT id, %s, %s, '', '', %s::jsonb FROM fenced RETURNING id""",
                [
                    _lease_end(now),
                    self.subject,
                    now,
                    self.message_id,
                    S.QUEUED,
                    self.token,
                    AttemptState.IN_FLIGHT,
                    now,
                    json.dumps({r: {"outcome": "in_flight"} for r in recipients}),
                ],
            )
            row = cursor.fetchone()
        if row is None:
            self.lost = True
            return False
        self.attempt_id = row[0]
        self.committed.update(r.lower() for r in recipients)
        return True


_ATTEMPT_STATE = {
    "delivered": AttemptState.SUCCEEDED,
    "bounced": AttemptState.FAILED,
    "errored": AttemptState.FAILED,
    "deferred": AttemptState.DEFERRED,
    "unknown": AttemptState.UNKNOWN,
}


def _held_reason(message: Message) -> dict | None:
    """Mail accepted before a pause waits (deferred) instead of leaving: a sender paused for its
    bounce or complaint rate, or a workspace paused by staff, must stop sending at once. It goes
    out if the pause is lifted within the retry window, else it ends `errored`."""
    if message.workspace.sending_paused:
        return {"reason": "sending_paused", "message": "Sending is paused for the workspace."}
    if message.sender.state != SenderState.ACTIVE:
        return {
            "reason": "sender_not_available",
            "message": f"The sender {message.from_address} is {message.sender.state}; held until it is active again.",
        }
    return None


def retry_delay(attempts: int) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random (attempts ≥ 1)."""
    step = min(
        settings.PUFFERPOST_DELIVERY_RETRY_MAX_DELAY,
        settings.PUFFERPOST_DELIVERY_RETRY_BASE * 2 ** max(attempts - 1, 0),
    )
    return step / 2 + random.uniform(0, step / 2)


@transaction.atomic
def outcomes_record(*, results: list[_Result], token: datetime) -> None:
    """Record a batch's outcomes: attempts, message bookkeeping, transitions, events, suppressions,
    retries. A fixed number of statements per call, whatever the number of messages."""
    now = timezone.now()
    by_outcome: dict[str, list[_Result]] = defaultdict(list)
    for result in results:
        by_outcome[result.outcome].append(result)

    # Attempts: those that passed the commit point are finished, the others written finished.
    # (Suppressed-at-send-time messages never reached a server: no attempt.)
    finished, created = [], []
    for r in results:
        if r.outcome == "suppressed" or (r.outcome == "errored" and r.started_at is None):
            continue
        attempt = DeliveryAttempt(
            id=r.attempt_id,
            message_id=r.message.pk,
            state=_ATTEMPT_STATE[r.outcome],
            started_at=r.started_at or now,
            finished_at=now,
            mx_host=r.mx_host,
            response=r.response or r.detail.get("message", ""),
            recipients=r.recipients,
        )
        (finished if r.attempt_id else created).append(attempt)
    if finished:
        _attempts_finish(finished)
    if created:
        DeliveryAttempt.objects.bulk_create(created)

    # Retries: deferred messages stay queued with their next due time, or give up after the window.
    window = timedelta(seconds=settings.PUFFERPOST_DELIVERY_RETRY_WINDOW)
    retries: list[tuple[str, float]] = []
    gave_up: list[_Result] = []
    for r in by_outcome.get("deferred", []):
        message = r.message
        message.attempts += 1
        deadline = message.created_at + window
        if now >= deadline:
            gave_up.append(r)
            continue
        delay = min(retry_delay(message.attempts), (deadline - now).total_seconds())
        message.next_attempt_at = now + timedelta(seconds=delay)
        r.detail["next_attempt_at"] = message.next_attempt_at.isoformat()
        r.detail["attempt"] = message.attempts
        retries.append((message.pk, delay))
    touched = []
    for r in results:
        message = r.message
        if r.outcome != "deferred":
            message.attempts += 0 if r.outcome == "suppressed" else 1
            message.next_attempt_at = None
        if r.subject:
            message.subject = r.subject
        message.last_response = r.response[:2000]
        touched.append(message)
    _messages_bookkeep(touched, token=token)

    details = {r.message.pk: r.detail for r in results}
    # The timeline orders by occurred_at: `sent` when transmission began, the outcome when it ended.
    started = {r.message.pk: r.started_at for r in results if r.started_at}
    ended = {r.message.pk: r.finished_at for r in results if r.finished_at}
    delivered = [r.message.pk for r in by_outcome.get("delivered", [])]
    if delivered:
        sent_details = {r.message.pk: {"mx_host": r.mx_host} for r in by_outcome["delivered"]}
        messages_transition_bulk(message_ids=delivered, to_status=S.SENT, details=sent_details, occurred_at=started)
        messages_transition_bulk(message_ids=delivered, to_status=S.DELIVERED, details=details, occurred_at=ended)
    unknown = [r.message.pk for r in by_outcome.get("unknown", [])]
    if unknown:
        unknown_details = {
            pk: {**details[pk], "outcome": "unknown", "note": "no reply to the message data; not sent again"}
            for pk in unknown
        }
        messages_transition_bulk(message_ids=unknown, to_status=S.SENT, details=unknown_details, occurred_at=started)
    bounced = messages_transition_bulk(
        message_ids=[r.message.pk for r in by_outcome.get("bounced", [])],
        to_status=S.BOUNCED,
        details=details,
        occurred_at=ended,
    )
    errored_details = {
        **details,
        **{
            r.message.pk: {**r.detail, "reason": "retry_window_exhausted", "last_response": r.response} for r in gave_up
        },
    }
    messages_transition_bulk(
        message_ids=[r.message.pk for r in by_outcome.get("errored", []) + gave_up],
        to_status=S.ERRORED,
        details=errored_details,
        occurred_at=now,
    )
    messages_transition_bulk(
        message_ids=[r.message.pk for r in by_outcome.get("suppressed", [])],
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
        for r in by_outcome.get("deferred", [])
        if r not in gave_up
    ]
    if deferred_events:
        message_events_bulk_record(deferred_events)

    # Suppress every address that answered 5xx: `to` when the message bounced, cc addresses always.
    moved = set(bounced)
    suppressions = [
        Suppression(
            workspace_id=r.message.workspace_id,
            email=address,
            reason=SuppressionReason.BOUNCE,
            source_message_id=r.message.pk,
        )
        for r in results
        for address in r.bounced_addresses
        if address != r.message.to.lower() or r.message.pk in moved
    ]
    if suppressions:
        Suppression.objects.bulk_create(suppressions, ignore_conflicts=True)
        senders = {r.message.sender_id for r in results if r.message.pk in moved}
        transaction.on_commit(partial(_evaluate_senders, senders))
    for message_id, delay in retries:
        if delay <= settings.PUFFERPOST_DELIVERY_COUNTDOWN_MAX:
            transaction.on_commit(partial(_enqueue_retry, message_id, delay))
    observability.delivery_outcomes_observe(results)


def _attempts_finish(attempts: list[DeliveryAttempt]) -> None:
    """`bulk_update(attempts, [state, finished_at, mx_host, response, recipients])` as one
    `UPDATE … FROM unnest(…)`: the ORM's CASE-per-row form cost more CPU than the sending."""
    table = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} a
                   SET state = v.state, finished_at = v.finished_at, mx_host = v.mx_host,
                       response = v.response, recipients = v.recipients::jsonb
                  FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[])
                       AS v(id, state, finished_at, mx_host, response, recipients)
                 WHERE a.id = v.id""",
            [
                [a.pk for a in attempts],
                [a.state for a in attempts],
                [a.finished_at for a in attempts],
                [a.mx_host for a in attempts],
                [a.response for a in attempts],
                [json.dumps(a.recipients) for a in attempts],
            ],
        )


def _messages_bookkeep(messages: list[Message], *, token: datetime) -> None:
    """`Message.objects.filter(claimed_at=token).bulk_update(messages, [attempts, next_attempt_at,
    subject, last_response])` as one `UPDATE … FROM unnest(…)` (rows of another claim are left alone)."""
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} m
                   SET attempts = v.attempts, next_attempt_at = v.next_attempt_at,
                       subject = v.subject, last_response = v.last_response
                  FROM unnest(%s::text[], %s::integer[], %s::timestamptz[], %s::text[], %s::text[])
                       AS v(id, attempts, next_attempt_at, subject, last_response)
                 WHERE m.id = v.id AND m.claimed_at = %s""",
            [
                [m.pk for m in messages],
                [m.attempts for m in messages],
                [m.next_attempt_at for m in messages],
                [m.subject for m in messages],
                [m.last_response for m in messages],
                token,
            ],
        )


def _evaluate_senders(sender_ids) -> None:
    from senders.reputation import sender_reputation_evaluate

    for sender_id in sender_ids:
        sender_reputation_evaluate(sender_id=sender_id)


def _enqueue_retry(message_id: str, delay: float) -> None:
    from messaging.delivery.tasks import deliver_due_messages as task

    try:
        task.apply_async([[message_id]], countdown=delay)
    except Exception:  # the sweeper picks up due messages whose countdown was lost
        log.exception("could not schedule the retry of %s; the delivery sweeper will", message_id)


# --- the sweeper ------------------------------------------------------------------------------


def delivery_sweep(*, limit: int = 10_000) -> dict[str, int]:
    """Queued messages whose `next_attempt_at` has passed (plus PUFFERPOST_DELIVERY_SWEEP_GRACE):

    - with an attempt still `in_flight`: the worker died after the commit point; the message may
      have been delivered, so it is never sent again: `sent` with `outcome: unknown`;
    - the others (a lost countdown, or a worker that died before the commit point) are re-enqueued;
      the task re-claims them, which fences off the old claim.
    """
    now = timezone.now()
    due = now - timedelta(seconds=settings.PUFFERPOST_DELIVERY_SWEEP_GRACE)
    with transaction.atomic():
        stuck = list(
            DeliveryAttempt.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                state=AttemptState.IN_FLIGHT,
                message__status=S.QUEUED,
                message__next_attempt_at__lte=due,
            )
            .values_list("id", "message_id")[:limit]
        )
        if stuck:
            DeliveryAttempt.objects.filter(pk__in=[pk for pk, _ in stuck]).update(
                state=AttemptState.UNKNOWN, finished_at=now, response="worker lost after the commit point"
            )
            Message.objects.filter(pk__in=[m for _, m in stuck]).update(next_attempt_at=None)
            messages_transition_bulk(
                message_ids=[m for _, m in stuck],
                to_status=S.SENT,
                details={
                    m: {
                        "outcome": "unknown",
                        "note": "the delivering worker stopped after starting to transmit the message; "
                        "it may have been delivered and is not sent again",
                    }
                    for _, m in stuck
                },
            )
    ids = list(
        Message.objects.filter(status=S.QUEUED, next_attempt_at__lte=due)
        .exclude(delivery_attempts__state=AttemptState.IN_FLIGHT)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    from messaging.delivery.tasks import deliver_due_messages as task

    for start in range(0, len(ids), SWEEP_CHUNK):
        try:
            task.delay(ids[start : start + SWEEP_CHUNK])
        except Exception:  # broker down: logged, and the next sweep enqueues them again
            log.exception("delivery sweep could not enqueue; next sweep retries")
            break
    if stuck or ids:
        log.warning("delivery sweep: %d unknown outcome(s), %d due message(s) re-enqueued", len(stuck), len(ids))
    return {"unknown": len(stuck), "requeued": len(ids)}
