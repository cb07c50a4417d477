"""Every write of the send API: accepting messages (single and batch), idempotency and the outbox
sweeper (suppressions and unsubscribe groups: messaging/suppressions.py).

Accepting a message is one transaction holding the message, its attachments, its `accepted`
event (and the idempotency record), with the delivery task enqueued only after it commits:
the database is the outbox, and the sweeper re-enqueues anything whose enqueue was lost.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ErrorDetail, ValidationError

from messaging import limits
from messaging.delivery.tasks import deliver_messages as deliver_messages_task
from messaging.lifecycle import message_events_bulk_record
from messaging.limits import Admission
from messaging.models import (
    EventType,
    IdempotencyRecord,
    Message,
    MessageAttachment,
    MessageBody,
    MessageEvent,
    MessageStatus,
    SuppressionReason,
)
from messaging.selectors import SendContext, send_context, sender_unavailable_reason
from messaging.serializers import BatchSerializer, SendSerializer
from pufferpost.errors import ApplicationError, Conflict, Forbidden, LimitExceeded, SendRefused, violations_from
from pufferpost.formats import normalise_address
from pufferpost.models import Workspace
from templates_app.formatting import normalize_locale
from templates_app.selectors import variables_missing_error
from templates_app.variables import version_variables_by_pk

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255
# One shared, bound validator: building a serializer deep-copies its fields, which alone costs
# about 0.35 ms, a third of the send path's CPU budget. Validation keeps no state on the instance.
_SEND_VALIDATOR = SendSerializer()
ENQUEUE_CHUNK = 100


# --- errors the guide names -------------------------------------------------------------------


def _unprocessable(code: str, message: str) -> SendRefused:
    return SendRefused(code, message)


def sending_paused_error() -> Forbidden:
    return Forbidden("sending_paused", "Sending is paused for this workspace.")


def rate_limited_error(admission: Admission) -> LimitExceeded:
    return LimitExceeded(
        "rate_limited",
        f"Too many send requests; the limit is {admission.limit} a minute. Retry after the RateLimit-Reset time.",
        retry_after=admission.retry_after,
    )


def quota_exceeded_error(workspace: Workspace) -> LimitExceeded:
    return LimitExceeded("quota_exceeded", f"The monthly quota of {workspace.monthly_quota} messages is used up.")


# --- accepting messages -----------------------------------------------------------------------


@dataclass
class _Plan:
    message: Message
    attachments: list[MessageAttachment]
    body: MessageBody | None = None


@dataclass(frozen=True)
class SubmittedContent:
    """A message's own subject, text and HTML (SMTP submission), sent instead of a template."""

    subject: str
    text: str
    html: str


_SUPPRESSION_CAUSES = {
    SuppressionReason.BOUNCE: "an earlier message to it bounced permanently",
    SuppressionReason.COMPLAINT: "its recipient reported an earlier message as spam",
    SuppressionReason.UNSUBSCRIBE: "its recipient unsubscribed",
    SuppressionReason.MANUAL: "it was added to the list by hand",
}


def _suppression_explained(email: str, reason: str, since) -> str:
    when = f" on {since.date().isoformat()}" if since else ""
    cause = _SUPPRESSION_CAUSES.get(reason, reason)
    remove = f"DELETE /v1/suppressions/{email}"
    if reason in (SuppressionReason.COMPLAINT, SuppressionReason.UNSUBSCRIBE):
        return f"Reason: {reason} ({cause}{when}). Remove it with {remove} only if the recipient asked for mail again."
    return f"Reason: {reason} ({cause}{when}). Remove it with {remove} once the address can receive mail again."


def _plan(
    *,
    workspace: Workspace,
    send: dict,
    context: SendContext,
    livemode: bool = True,
    content: SubmittedContent | None = None,
) -> _Plan:
    """Check one validated send against the workspace; return the unsaved rows or raise its ApplicationError.

    Order: template, sender, unsubscribe group, suppression, opt-out (quota is the caller's).
    A live key may not address the simulator domain: that mail would go nowhere and count.
    A send with its own `content` (SMTP submission) names no template; every other check is the same.
    """
    if content is not None:
        ref = None
    elif send.get("templateId"):
        ref = context.templates_by_id.get(send["templateId"])
        asked = send["templateId"]
    elif send.get("template"):
        ref = context.templates_by_slug.get(send["template"])
        asked = send["template"]
    else:
        raise _unprocessable("template_required", "Provide templateId or template.")
    if ref is None and content is None:
        raise _unprocessable("template_not_found", f'No template "{asked}" in this workspace.')
    if ref is not None and ref.version_pk is None:
        raise _unprocessable(
            "template_has_no_version", f'Template "{asked}" has no saved version to send. Save a version first.'
        )
    locale = send.get("locale") or workspace.default_locale
    if ref is not None and ref.strict_variables:
        used = version_variables_by_pk(ref.version_pk, normalize_locale(locale) or "en")
        missing = sorted(used - set(send.get("data") or {}))
        if missing:
            raise variables_missing_error(missing)
    from_address = send["from"]
    sender_id = context.sender_ids.get(from_address)
    if sender_id is None:
        reason, why = sender_unavailable_reason(workspace_id=workspace.id, from_address=from_address)
        # The message is the guide's, word for word; why and what to do ride beside it.
        raise SendRefused("sender_not_available", f'No active sender for "{from_address}".', reason=reason, detail=why)
    to = send["to"]
    if livemode:
        simulated = [
            a for a in (to, *(send.get("cc") or [])) if a.rpartition("@")[2] == settings.PUFFERPOST_SIMULATOR_DOMAIN
        ]
        if simulated:
            raise _unprocessable(
                "simulator_needs_test_key",
                f'"{simulated[0]}" is a simulator address; send to it with a test key (key_test_…).',
            )
    group_id = send.get("unsubscribeGroup") or None
    if group_id is not None and group_id not in context.groups:
        raise _unprocessable("unknown_unsubscribe_group", f'No unsubscribe group "{group_id}" in this workspace.')
    if to in context.suppressed:
        reason, since = context.suppressed[to]
        raise SendRefused(
            "recipient_suppressed",
            f'"{to}" is on the suppression list.',  # the guide's words, exactly
            reason=reason,
            detail=_suppression_explained(to, reason, since),
        )
    if group_id is not None and (group_id, to) in context.unsubscribed:
        raise _unprocessable("recipient_unsubscribed", f'"{to}" has unsubscribed from group "{group_id}".')
    message = Message(
        workspace_id=workspace.id,
        sender_id=sender_id,
        from_address=from_address,
        to=to,
        cc=send.get("cc") or [],
        reply_to=send.get("replyTo") or None,
        template_id=ref.id if ref else None,
        template_version_id=ref.version_pk if ref else None,
        data=send.get("data") or {},
        metadata=send.get("metadata") or {},
        locale=locale,
        timezone=send.get("timezone") or "UTC",
        unsubscribe_group_id=group_id,
        status=MessageStatus.ACCEPTED,
        livemode=livemode,
    )
    attachments = [
        MessageAttachment(
            message=message,
            position=position,
            filename=item["filename"],
            content_type=item["contentType"],
            content=item["content"],
        )
        for position, item in enumerate(send.get("attachments") or [])
    ]
    body = None
    if content is not None:
        body = MessageBody(message=message, subject=content.subject, text=content.text, html=content.html)
    return _Plan(message, attachments, body)


def _persist(
    plans: list[_Plan], *, workspace: Workspace, now, idempotency: IdempotencyRecord | list | None = None
) -> list[str]:
    """Insert messages, attachments, `accepted` events (and the idempotency record); enqueue on commit.

    Must run inside a transaction: the enqueue is registered with `on_commit`.
    """
    messages = [plan.message for plan in plans]
    events = [
        # `workspace` is the row the API key lookup loaded: webhooks read its endpoint count from it.
        MessageEvent(message=message, workspace=workspace, type=EventType.ACCEPTED, occurred_at=now)
        for message in messages
    ]
    Message.objects.bulk_create(messages)
    # Through the lifecycle, so webhook endpoints subscribed to `accepted` hear about it.
    message_events_bulk_record(events)
    attachments = [attachment for plan in plans for attachment in plan.attachments]
    if attachments:
        MessageAttachment.objects.bulk_create(attachments)
    bodies = [plan.body for plan in plans if plan.body is not None]
    if bodies:
        MessageBody.objects.bulk_create(bodies)
    if isinstance(idempotency, list):
        IdempotencyRecord.objects.bulk_create(idempotency)
    elif idempotency is not None:
        idempotency.save(force_insert=True)
    ids = [message.id for message in messages]
    transaction.on_commit(partial(delivery_enqueue, ids))
    return ids


def delivery_enqueue(message_ids: list[str]) -> None:
    """Hand messages to the delivery queue, after commit.

    A broker failure here must not turn the committed 202 into a 500: the messages stay
    `accepted` in the database and the outbox sweeper enqueues them again.
    """
    try:
        deliver_messages_task.delay(message_ids)
    except Exception:  # any broker/transport error; the sweeper is the safety net
        logger.exception("Could not enqueue delivery of %d message(s); the outbox sweeper will retry", len(message_ids))


def idempotency_fingerprint(payload) -> str:
    """SHA-256 over canonical JSON of the fields the guide fingerprints (emails normalised)."""

    def email(value):
        return normalise_address(value) if isinstance(value, str) else value

    canonical = {
        "from": email(payload.get("from")),
        "to": email(payload.get("to")),
        "templateId": payload.get("templateId"),
        "template": payload.get("template"),
        "data": payload.get("data"),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    # surrogatepass: the raw body may hold a lone surrogate, refused with a 422 only after this.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _idempotency_replay(*, workspace: Workspace, key: str, fingerprint: str, livemode: bool = True) -> dict | None:
    record = (
        IdempotencyRecord.objects.filter(workspace_id=workspace.id, livemode=livemode, key=key)
        .only("fingerprint", "response")
        .first()
    )
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise Conflict("idempotency_key_reused", "This Idempotency-Key was already used with a different request body.")
    return record.response


def _check_idempotency_key(key: str | None) -> str | None:
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValidationError(
            {"Idempotency-Key": [ErrorDetail(f"At most {MAX_IDEMPOTENCY_KEY_LENGTH} characters.", code="max_length")]}
        )
    if "\x00" in key:
        raise ValidationError(
            {"Idempotency-Key": [ErrorDetail("Must not contain NUL characters.", code="invalid_character")]}
        )
    return key


def _is_idempotency_conflict(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == "idempotency_key_unique"


@dataclass
class SendOutcome:
    body: dict
    replayed: bool = False


def message_send(
    *,
    workspace: Workspace,
    payload,
    admission: Admission,
    idempotency_key: str | None = None,
    livemode: bool = True,
) -> SendOutcome:
    """Accept one message (POST /v1/messages), or raise the ApplicationError/ValidationError the guide names.

    `livemode=False` (a test key): the same checks, a message marked test, simulated at delivery.

    With an Idempotency-Key, a repeat of the same body replays the first 202; a different body
    is 409. Concurrent requests with one key race on the record's unique constraint inside the
    message's transaction, so exactly one message is created and the loser replays it.
    """
    key = _check_idempotency_key(idempotency_key)
    fingerprint = None
    if key and isinstance(payload, dict):
        fingerprint = idempotency_fingerprint(payload)
        replay = _idempotency_replay(workspace=workspace, key=key, fingerprint=fingerprint, livemode=livemode)
        if replay is not None:
            return SendOutcome(replay, replayed=True)
    send = _SEND_VALIDATOR.run_validation(payload)
    if key and fingerprint is None:
        fingerprint = idempotency_fingerprint(send)
    now = timezone.now()
    context = send_context(workspace_id=workspace.id, sends=[send], livemode=livemode)
    plan = _plan(workspace=workspace, send=send, context=context, livemode=livemode)
    if not admission.take():
        raise quota_exceeded_error(workspace)
    body = {"id": plan.message.id, "status": MessageStatus.ACCEPTED.value}
    record = None
    if key:
        record = IdempotencyRecord(
            workspace_id=workspace.id,
            livemode=livemode,
            key=key,
            fingerprint=fingerprint,
            message=plan.message,
            response=body,
        )
    try:
        with transaction.atomic():
            _persist([plan], workspace=workspace, now=now, idempotency=record)
    except IntegrityError as exc:
        admission.give_back(1)
        if record is None or not _is_idempotency_conflict(exc):
            raise
        replay = _idempotency_replay(workspace=workspace, key=key, fingerprint=fingerprint, livemode=livemode)
        if replay is None:
            raise Conflict(
                "idempotency_key_in_use", "A request with this Idempotency-Key is still being processed; retry shortly."
            )
        return SendOutcome(replay, replayed=True)
    except BaseException:
        admission.give_back(1)
        raise
    return SendOutcome(body)


def _item_error(code: str, message: str, **extra) -> dict:
    return {"status": "error", "error": {"code": code, "message": message, **extra}}


def message_send_batch(*, workspace: Workspace, payload, admission: Admission, livemode: bool = True) -> list[dict]:
    """Accept up to 100 sends independently (POST /v1/messages/batch); returns the per-item results.

    Validation runs per item; then one query loads what every item's checks need, one
    transaction inserts every accepted item, and one task delivers them all.
    """
    envelope = BatchSerializer(data=payload)
    envelope.is_valid(raise_exception=True)
    items = envelope.validated_data["messages"]
    results: list[dict | None] = [None] * len(items)
    valid: list[tuple[int, dict]] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, _SEND_VALIDATOR.run_validation(item)))
        except ValidationError as exc:
            results[index] = _item_error(
                "validation_failed", "The request is invalid.", violations=violations_from(exc.detail)
            )
    now = timezone.now()
    checked: list[tuple[int, _Plan]] = []
    if valid:
        context = send_context(workspace_id=workspace.id, sends=[send for _, send in valid], livemode=livemode)
        for index, send in valid:
            try:
                checked.append((index, _plan(workspace=workspace, send=send, context=context, livemode=livemode)))
            except ApplicationError as exc:
                # Batch items keep the guide's {code, message} shape.
                results[index] = _item_error(exc.code, exc.message)
    limits.reserve(workspace=workspace, admission=admission, messages=len(checked))
    plans: list[tuple[int, _Plan]] = []
    for index, plan in checked:
        if admission.take():
            plans.append((index, plan))
        else:
            error = quota_exceeded_error(workspace)
            results[index] = _item_error(error.code, error.message)
    if plans:
        try:
            with transaction.atomic():
                _persist([plan for _, plan in plans], workspace=workspace, now=now)
        except BaseException:
            admission.give_back(len(plans))
            raise
        for index, plan in plans:
            results[index] = {"status": "accepted", "id": plan.message.id}
    return [{"index": index, **result} for index, result in enumerate(results)]


def _submission_key(message_id_header: str, recipient: str) -> str:
    """The idempotency key of one recipient's message of an SMTP submission: the Message-ID plays
    the part of Idempotency-Key, one record per recipient (hashed: both parts may be long)."""
    digest = hashlib.sha256(f"{message_id_header.strip()}\n{recipient}".encode()).hexdigest()
    return f"smtp:{digest}"


def _submission_fingerprint(send: dict, content: SubmittedContent) -> str:
    canonical = {"from": send["from"], "to": send["to"], "subject": content.subject, "text": content.text}
    canonical["html"] = content.html
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def message_submit(
    *,
    workspace: Workspace,
    payloads: list[dict],
    content: SubmittedContent,
    admission: Admission,
    message_id_header: str | None = None,
    livemode: bool = True,
) -> SendOutcome:
    """Accept a message submitted over SMTP: one message per envelope recipient, all or none.

    `payloads` are send bodies without a template (`from`, `to`, `replyTo`, `attachments`), one per
    recipient; they go through the send API's validation and checks (sender, suppression, quota),
    so the first refusal refuses the whole submission and nothing is stored. The Message-ID header
    is the replay guard: a resubmission with the same Message-ID and content replays the ids
    already accepted; the same Message-ID with different content is `idempotency_key_reused`.
    Returns `{"ids": [...]}`, in recipient order.
    """
    if workspace.sending_paused:
        raise sending_paused_error()
    sends = [_SEND_VALIDATOR.run_validation(payload) for payload in payloads]
    keys: list[str | None] = [None] * len(sends)
    fingerprints: list[str | None] = [None] * len(sends)
    replayed: dict[int, str] = {}
    if message_id_header:
        keys = [_submission_key(message_id_header, send["to"]) for send in sends]
        fingerprints = [_submission_fingerprint(send, content) for send in sends]
        for index, (key, fingerprint) in enumerate(zip(keys, fingerprints, strict=True)):
            replay = _idempotency_replay(workspace=workspace, key=key, fingerprint=fingerprint, livemode=livemode)
            if replay is not None:
                replayed[index] = replay["id"]
    fresh = [index for index in range(len(sends)) if index not in replayed]
    if not fresh:
        return SendOutcome({"ids": [replayed[index] for index in range(len(sends))]}, replayed=True)
    now = timezone.now()
    context = send_context(workspace_id=workspace.id, sends=[sends[index] for index in fresh], livemode=livemode)
    plans = {
        index: _plan(workspace=workspace, send=sends[index], context=context, livemode=livemode, content=content)
        for index in fresh
    }
    limits.reserve(workspace=workspace, admission=admission, messages=len(plans))
    taken = 0
    for _ in plans:
        if not admission.take():
            admission.give_back(taken)
            raise quota_exceeded_error(workspace)
        taken += 1
    records = [
        IdempotencyRecord(
            workspace_id=workspace.id,
            livemode=livemode,
            key=keys[index],
            fingerprint=fingerprints[index],
            message=plan.message,
            response={"id": plan.message.id, "status": MessageStatus.ACCEPTED.value},
        )
        for index, plan in plans.items()
        if keys[index]
    ]
    try:
        with transaction.atomic():
            _persist(list(plans.values()), workspace=workspace, now=now, idempotency=records)
    except IntegrityError as exc:
        admission.give_back(taken)
        if not records or not _is_idempotency_conflict(exc):
            raise
        raise Conflict(
            "idempotency_key_in_use", "A submission with this Message-ID is still being processed; retry shortly."
        ) from None
    except BaseException:
        admission.give_back(taken)
        raise
    ids = [replayed[index] if index in replayed else plans[index].message.id for index in range(len(sends))]
    return SendOutcome({"ids": ids}, replayed=bool(replayed))


# --- outbox and housekeeping ------------------------------------------------------------------


def message_outbox_sweep(*, older_than_seconds: int | None = None, limit: int = 10_000) -> int:
    """Re-enqueue messages still `accepted` after `older_than_seconds` (their enqueue was lost).

    Their `updated_at` is touched, so a message is re-enqueued at most once per interval even
    when delivery is merely slow; delivery skips messages it has already claimed.
    """
    seconds = settings.PUFFERPOST_OUTBOX_SWEEP_AFTER if older_than_seconds is None else older_than_seconds
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Message.objects.filter(status=MessageStatus.ACCEPTED, updated_at__lt=now - timedelta(seconds=seconds))
            .order_by("updated_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Message.objects.filter(pk__in=ids).update(updated_at=now)
            for start in range(0, len(ids), ENQUEUE_CHUNK):
                transaction.on_commit(partial(delivery_enqueue, ids[start : start + ENQUEUE_CHUNK]))
    if ids:
        logger.warning("Outbox sweeper re-enqueued %d accepted message(s)", len(ids))
    return len(ids)


def idempotency_records_purge(*, older_than_seconds: int | None = None) -> int:
    """Delete Idempotency-Key records past their retention (at least 24 hours)."""
    seconds = settings.PUFFERPOST_IDEMPOTENCY_TTL if older_than_seconds is None else older_than_seconds
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - timedelta(seconds=seconds)).delete()
    return deleted
