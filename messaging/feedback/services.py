"""Record bounces and complaints that arrive after delivery, then re-check the sender's reputation.

Every function here is idempotent: the status change goes through `message_transition` (a
conditional UPDATE), the suppression is an INSERT … ON CONFLICT DO NOTHING, and the suppression
is only written by the report that actually moved the message, so a report that arrives twice
changes nothing the second time (and does not re-add a suppression the customer has deleted).

Which address is suppressed: the reported recipient when it is one of the message's own (`to` or a
`cc`); otherwise the message's `to` (forwarding rewrites the final recipient, FBLs redact it). A
bounce or complaint for a cc address suppresses that address but leaves the message's status,
which describes its `to`, alone. Heuristic (non-RFC) bounces must name one of the message's
recipients, since flufl.bounce guesses addresses from free text.
"""

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction

from messaging.feedback.parse import InboundReport, report_parse
from messaging.feedback.reputation import sender_reputation_evaluate
from messaging.lifecycle import message_event_record, message_transition
from messaging.models import Message, MessageEvent, MessageStatus, Suppression, SuppressionReason
from pufferpost.formats import normalise_address

log = logging.getLogger(__name__)

# A delayed-delivery report is only news while the message is still believed to be on its way.
_DEFERRABLE = (MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.DELIVERED)


def feedback_report_process(*, raw: bytes, envelope_recipients: Iterable[str] = ()) -> InboundReport:
    """Parse one inbound mail (DSN, ARF or a non-standard bounce) and record what it says."""
    report = report_parse(raw, envelope_recipients=list(envelope_recipients))
    if report.kind == "none":
        log.info("inbound mail %s is neither a bounce nor a feedback report; ignored", report.report_id or "-")
    for delivery in report.deliveries:
        if delivery.permanent:
            feedback_bounce_record(
                message_id=delivery.message_id,
                recipient=delivery.recipient,
                original_recipient=delivery.original_recipient,
                status=delivery.status,
                diagnostic=delivery.diagnostic,
                remote_mta=delivery.remote_mta,
                heuristic=delivery.heuristic,
                occurred_at=report.occurred_at,
            )
        elif delivery.transient:
            feedback_delay_record(
                message_id=delivery.message_id,
                recipient=delivery.recipient,
                action=delivery.action,
                status=delivery.status,
                diagnostic=delivery.diagnostic,
                report_id=report.report_id,
                occurred_at=report.occurred_at,
            )
    for complaint in report.complaints:
        if complaint.is_complaint:
            feedback_complaint_record(
                message_id=complaint.message_id,
                recipient=complaint.recipient,
                feedback_type=complaint.feedback_type,
                user_agent=complaint.user_agent,
                occurred_at=report.occurred_at,
            )
        else:
            log.info("feedback report of type %r for %s ignored", complaint.feedback_type, complaint.message_id)
    return report


def feedback_bounce_record(
    *,
    message_id: str | None,
    recipient: str,
    status: str,
    original_recipient: str = "",
    diagnostic: str = "",
    remote_mta: str = "",
    heuristic: bool = False,
    occurred_at: datetime | None = None,
) -> bool:
    """A permanent failure for `recipient`: bounce the message and suppress the address.

    Returns True when this call bounced the message (False for a repeat, an unknown message, or a
    cc recipient, whose address is still suppressed).
    """
    message = _message(message_id, "bounce")
    if message is None:
        return False
    address, primary = _affected(message, [recipient, original_recipient], strict=heuristic)
    if address is None:
        log.warning("bounce for %s names %r, not one of its recipients; ignored", message_id, recipient)
        return False
    detail = {
        "recipient": address,
        "status": status,
        "diagnostic": diagnostic,
        "remote_mta": remote_mta,
        "source": "heuristic" if heuristic else "dsn",
    }
    return _record(message, address, primary, SuppressionReason.BOUNCE, MessageStatus.BOUNCED, detail, occurred_at)


def feedback_complaint_record(
    *,
    message_id: str | None,
    recipient: str = "",
    feedback_type: str = "abuse",
    user_agent: str = "",
    occurred_at: datetime | None = None,
) -> bool:
    """A recipient marked the message as spam: mark it complained and suppress the address."""
    message = _message(message_id, "complaint")
    if message is None:
        return False
    address, primary = _affected(message, [recipient], strict=False)
    detail = {"recipient": address, "feedback_type": feedback_type, "user_agent": user_agent, "source": "arf"}
    return _record(
        message, address, primary, SuppressionReason.COMPLAINT, MessageStatus.COMPLAINED, detail, occurred_at
    )


def feedback_delay_record(
    *,
    message_id: str | None,
    recipient: str,
    status: str,
    action: str = "delayed",
    diagnostic: str = "",
    report_id: str = "",
    occurred_at: datetime | None = None,
) -> bool:
    """A remote server is still retrying (or gave up for a temporary reason): a `deferred` event.

    Nothing is suppressed and the status stays. The same report (by its Message-ID) is recorded once.
    """
    message = _message(message_id, "delay report")
    if message is None or message.status not in _DEFERRABLE:
        return False
    events = MessageEvent.objects.filter(message_id=message.pk, type="deferred")
    if report_id and events.filter(detail__report_id=report_id, detail__recipient=recipient).exists():
        return False
    detail = {
        "recipient": recipient,
        "action": action,
        "status": status,
        "diagnostic": diagnostic,
        "report_id": report_id,
        "source": "dsn",
    }
    message_event_record(message=message, type="deferred", occurred_at=occurred_at, detail=detail)
    return True


def _message(message_id: str | None, what: str) -> Message | None:
    message = (
        Message.objects.filter(pk=message_id).only("pk", "workspace_id", "sender_id", "to", "cc", "status").first()
        if message_id
        else None
    )
    if message is None:
        log.warning("%s for unknown message %r ignored", what, message_id)
    return message


def _affected(message: Message, reported: list[str], *, strict: bool) -> tuple[str | None, bool]:
    """(the address to suppress, whether it is the message's `to`); (None, False) if strict and unmatched."""
    recipients = {
        message.to.lower(): True,
        **{cc.lower(): False for cc in message.cc if cc.lower() != message.to.lower()},
    }
    for address in (normalise_address(a) for a in reported if a):
        if address in recipients:
            return address, recipients[address]
    return (None, False) if strict else (message.to.lower(), True)


@transaction.atomic
def _record(message, address, primary, reason, to_status, detail, occurred_at) -> bool:
    # Only the report that moves the message suppresses its `to`: a repeat changes nothing.
    moved = primary and message_transition(
        message_id=message.pk, to_status=to_status, occurred_at=occurred_at, detail=detail
    )
    if primary and not moved:
        return False
    Suppression.objects.bulk_create(
        [Suppression(workspace_id=message.workspace_id, email=address, reason=reason, source_message_id=message.pk)],
        ignore_conflicts=True,
    )
    log.info("%s for %s: %s suppressed", to_status, message.pk, address)
    if primary:
        # A new bounce or complaint may push the sender over its workspace's thresholds.
        sender_reputation_evaluate(sender_id=message.sender_id)
    return primary
