"""Every write of the send API: accepting messages (single and batch), idempotency, suppressions,
unsubscribe groups, and the outbox sweeper.

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
from messaging.delivery.tasks import deliver_messages
from messaging.lifecycle import message_events_bulk_record
from messaging.limits import Admission
from messaging.models import (
    EventType,
    IdempotencyRecord,
    Message,
    MessageAttachment,
    MessageEvent,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Unsubscribe,
    UnsubscribeGroup,
)
from messaging.selectors import SendContext, send_context
from messaging.serializers import BatchSerializer, SendSerializer
from pufferpost.errors import ApiError, violations_from
from pufferpost.models import Workspace

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255
# One shared, bound validator: building a serializer deep-copies its fields, which alone costs
# about 0.35 ms, a third of the send path's CPU budget. Validation keeps no state on the instance.
_SEND_VALIDATOR = SendSerializer()
ENQUEUE_CHUNK = 100


# --- errors the guide names -------------------------------------------------------------------


def _unprocessable(code: str, message: str) -> ApiError:
    return ApiError(status_code=422, code=code, message=message)


def sending_paused_error() -> ApiError:
    return ApiError(status_code=403, code="sending_paused", message="Sending is paused for this workspace.")


def rate_limited_error(admission: Admission) -> ApiError:
    return ApiError(
        status_code=429,
        code="rate_limited",
        message=f"Too many send requests; the limit is {admission.limit} a minute. Retry after the RateLimit-Reset time.",
        headers={"Retry-After": str(admission.retry_after)},
    )


def quota_exceeded_error(workspace: Workspace) -> ApiError:
    return ApiError(
        status_code=429,
        code="quota_exceeded",
        message=f"The monthly quota of {workspace.monthly_quota} messages is used up.",
    )


# --- accepting messages -----------------------------------------------------------------------


@dataclass
class _Plan:
    message: Message
    attachments: list[MessageAttachment]


def _plan(*, workspace: Workspace, send: dict, context: SendContext, now, livemode: bool = True) -> _Plan:
    """Check one validated send against the workspace; return the unsaved rows or raise its ApiError.

    Order: template, sender, unsubscribe group, suppression, opt-out (quota is the caller's).
    A live key may not address the simulator domain: that mail would go nowhere and count.
    """
    if send.get("templateId"):
        ref = context.templates_by_id.get(send["templateId"])
        asked = send["templateId"]
    elif send.get("template"):
        ref = context.templates_by_slug.get(send["template"])
        asked = send["template"]
    else:
        raise _unprocessable("template_required", "Provide templateId or template.")
    if ref is None:
        raise _unprocessable("template_not_found", f'No template "{asked}" in this workspace.')
    if ref.version_pk is None:
        raise _unprocessable(
            "template_has_no_version", f'Template "{asked}" has no saved version to send. Save a version first.'
        )
    from_address = send["from"]
    sender_id = context.sender_ids.get(from_address)
    if sender_id is None:
        raise _unprocessable("sender_not_available", f'No active sender for "{from_address}".')
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
        raise _unprocessable("recipient_suppressed", f'"{to}" is on the suppression list.')
    if group_id is not None and (group_id, to) in context.unsubscribed:
        raise _unprocessable("recipient_unsubscribed", f'"{to}" has unsubscribed from group "{group_id}".')
    message = Message(
        workspace_id=workspace.id,
        sender_id=sender_id,
        from_address=from_address,
        to=to,
        cc=send.get("cc") or [],
        reply_to=send.get("replyTo") or None,
        template_id=ref.id,
        template_version_id=ref.version_pk,
        data=send.get("data") or {},
        metadata=send.get("metadata") or {},
        locale=send.get("locale") or workspace.default_locale,
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
    return _Plan(message, attachments)


def _persist(plans: list[_Plan], *, now, idempotency: IdempotencyRecord | None = None) -> list[str]:
    """Insert messages, attachments, `accepted` events (and the idempotency record); enqueue on commit.

    Must run inside a transaction: the enqueue is registered with `on_commit`.
    """
    messages = [plan.message for plan in plans]
    events = [
        MessageEvent(message=message, workspace_id=message.workspace_id, type=EventType.ACCEPTED, occurred_at=now)
        for message in messages
    ]
    Message.objects.bulk_create(messages)
    # Through the lifecycle, so webhook endpoints subscribed to `accepted` hear about it.
    message_events_bulk_record(events)
    attachments = [attachment for plan in plans for attachment in plan.attachments]
    if attachments:
        MessageAttachment.objects.bulk_create(attachments)
    if idempotency is not None:
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
        deliver_messages.delay(message_ids)
    except Exception:  # any broker/transport error; the sweeper is the safety net
        logger.exception("Could not enqueue delivery of %d message(s); the outbox sweeper will retry", len(message_ids))


def idempotency_fingerprint(payload) -> str:
    """SHA-256 over canonical JSON of the fields the guide fingerprints (emails normalised)."""

    def email(value):
        return value.strip().lower() if isinstance(value, str) else value

    canonical = {
        "from": email(payload.get("from")),
        "to": email(payload.get("to")),
        "templateId": payload.get("templateId"),
        "template": payload.get("template"),
        "data": payload.get("data"),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _idempotency_replay(*, workspace: Workspace, key: str, fingerprint: str, livemode: bool = True) -> dict | None:
    record = (
        IdempotencyRecord.objects.filter(workspace_id=workspace.id, livemode=livemode, key=key)
        .only("fingerprint", "response")
        .first()
    )
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise ApiError(
            status_code=409,
            code="idempotency_key_reused",
            message="This Idempotency-Key was already used with a different request body.",
        )
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
    """Accept one message (POST /v1/messages), or raise the ApiError/ValidationError the guide names.

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
    plan = _plan(workspace=workspace, send=send, context=context, now=now, livemode=livemode)
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
            _persist([plan], now=now, idempotency=record)
    except IntegrityError as exc:
        admission.give_back(1)
        if record is None or not _is_idempotency_conflict(exc):
            raise
        replay = _idempotency_replay(workspace=workspace, key=key, fingerprint=fingerprint, livemode=livemode)
        if replay is None:
            raise ApiError(
                status_code=409,
                code="idempotency_key_in_use",
                message="A request with this Idempotency-Key is still being processed; retry shortly.",
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
                checked.append(
                    (index, _plan(workspace=workspace, send=send, context=context, now=now, livemode=livemode))
                )
            except ApiError as exc:
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
                _persist([plan for _, plan in plans], now=now)
        except BaseException:
            admission.give_back(len(plans))
            raise
        for index, plan in plans:
            results[index] = {"status": "accepted", "id": plan.message.id}
    return [{"index": index, **result} for index, result in enumerate(results)]


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


# --- suppressions and unsubscribe groups -----------------------------------------------------


def suppression_create(
    *, workspace: Workspace, email: str, reason: str = SuppressionReason.MANUAL
) -> tuple[Suppression, bool]:
    """Add `email` to the workspace's suppression list; an existing entry is returned unchanged."""
    return Suppression.objects.get_or_create(workspace=workspace, email=email, defaults={"reason": reason})


def suppression_delete(*, workspace: Workspace, email: str) -> bool:
    deleted, _ = Suppression.objects.filter(workspace=workspace, email=email).delete()
    return bool(deleted)


def unsubscribe_group_create(*, workspace: Workspace, name: str, description: str = "") -> UnsubscribeGroup:
    return UnsubscribeGroup.objects.create(workspace=workspace, name=name, description=description)


def unsubscribe_create(*, group: UnsubscribeGroup, email: str) -> tuple[Unsubscribe, bool]:
    """Opt `email` out of `group`; an existing opt-out is returned unchanged."""
    return Unsubscribe.objects.get_or_create(group=group, email=email)


def unsubscribe_delete(*, group: UnsubscribeGroup, email: str) -> bool:
    deleted, _ = Unsubscribe.objects.filter(group=group, email=email).delete()
    return bool(deleted)
