"""Record bounces and complaints that arrive after delivery, then re-check the sender's reputation.

Every function here is idempotent: the status change goes through `message_transition` (a
conditional UPDATE), the suppression is an INSERT … ON CONFLICT DO NOTHING, and the suppression
is only written by the report that actually moved the message, so a report that arrives twice
changes nothing the second time (and does not re-add a suppression the customer has deleted).

Which address a bounce or complaint is about: the reported recipient when it is one of the message's own (`to` or a
`cc`); otherwise the message's `to` (forwarding rewrites the final recipient, FBLs redact it). A
bounce or complaint for a cc address suppresses that address but leaves the message's status,
which describes its `to`, alone. Heuristic (non-RFC) bounces must name one of the message's
recipients, since flufl.bounce guesses addresses from free text.
"""

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction

from messaging.feedback.classes import BounceClass, bounce_classify, suppression_detail
from messaging.feedback.parse import InboundReport, report_parse
from messaging.feedback.reputation import sender_reputation_evaluate
from messaging.lifecycle import message_event_record, message_transition
from messaging.models import Message, MessageEvent, MessageStatus, Suppression, SuppressionReason
from pufferpost.formats import normalise_address

log = logging.getLogger(__name__)

# A delayed-delivery report is only news while the message is still believed to be on its way.
_DEFERRABLE = (MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.DELIVERED)
# A message has at most 26 recipients (to + 25 cc): a report with more entries is padded. Entries
# past this many are dropped unread, and each message collects at most so many delay events from
# reports (a DSN with 5,000 made-up `delayed` blocks must not write 5,000 events and webhooks).
REPORT_MAX_ENTRIES = 50
MESSAGE_MAX_DELAY_EVENTS = 20


def feedback_report_process(*, raw: bytes, envelope_recipients: Iterable[str] = ()) -> InboundReport:
    """Parse one inbound mail (DSN, ARF or a non-standard bounce) and record what it says."""
    report = report_parse(raw, envelope_recipients=list(envelope_recipients))
    if report.kind == "none":
        log.info("inbound mail %s is neither a bounce nor a feedback report; ignored", report.report_id or "-")
    if len(report.deliveries) > REPORT_MAX_ENTRIES:
        log.warning(
            "inbound report %s has %d recipient entries; only the first %d are read",
            report.report_id or "-",
            len(report.deliveries),
            REPORT_MAX_ENTRIES,
        )
    for delivery in report.deliveries[:REPORT_MAX_ENTRIES]:
        if delivery.action == "failed":
            feedback_bounce_record(
                message_id=delivery.message_id,
                recipient=delivery.recipient,
                original_recipient=delivery.original_recipient,
                status=delivery.status,
                diagnostic=delivery.diagnostic,
                remote_mta=delivery.remote_mta,
                reporting_mta=delivery.reporting_mta,
                heuristic=delivery.heuristic,
                occurred_at=report.occurred_at,
            )
        elif delivery.action == "delayed":
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
    reporting_mta: str = "",
    action: str = "failed",
    heuristic: bool = False,
    occurred_at: datetime | None = None,
) -> bool:
    """A report that delivery to `recipient` failed for good: bounce the message, classified.

    The class (messaging.feedback.classes) decides the rest: `hard` suppresses the address;
    `block` and `soft` do not (the recipient is fine); `expired` (the relay's retries ran out)
    suppresses only an address that already expired on an earlier message. A bounce after
    `delivered` is normal: relays accept, then bounce.

    Returns True when this call bounced the message (False for a repeat, an unknown message, or a
    cc recipient, whose address is still suppressed when the class says so).
    """
    message = _message(message_id, "bounce")
    if message is None:
        return False
    address, primary = _affected(message, [recipient, original_recipient], strict=heuristic)
    if address is None:
        log.warning("bounce for %s names %r, not one of its recipients; ignored", message_id, recipient)
        return False
    classification = bounce_classify(text=diagnostic, enhanced_code=status, action=action)
    detail = {
        "recipient": address,
        "status": status,
        **classification.as_detail(),
        "diagnostic": diagnostic,
        "remote_mta": remote_mta,
        "reporting_mta": reporting_mta,
        "source": "heuristic" if heuristic else "dsn",
    }
    return _record(
        message,
        address,
        primary,
        SuppressionReason.BOUNCE,
        MessageStatus.BOUNCED,
        detail,
        occurred_at,
        bounce_class=classification.bounce_class,
    )


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

    Nothing is suppressed and the status stays. Only the message's own recipients count; the same
    report (by its Message-ID) is recorded once per recipient, and a message collects at most
    MESSAGE_MAX_DELAY_EVENTS of them.
    """
    message = _message(message_id, "delay report")
    if message is None or message.status not in _DEFERRABLE:
        return False
    address, _ = _affected(message, [recipient], strict=True)
    if address is None:
        log.warning("delay report for %s names %r, not one of its recipients; ignored", message_id, recipient)
        return False
    recipient = address
    events = MessageEvent.objects.filter(message_id=message.pk, type="deferred", detail__source="dsn")
    if report_id and events.filter(detail__report_id=report_id, detail__recipient=recipient).exists():
        return False
    if events.count() >= MESSAGE_MAX_DELAY_EVENTS:
        log.warning("%s already has %d delay reports; this one is not recorded", message.pk, MESSAGE_MAX_DELAY_EVENTS)
        return False
    detail = {
        "recipient": recipient,
        "action": action,
        "status": status,
        **bounce_classify(text=diagnostic, enhanced_code=status, action=action).as_detail(),
        "diagnostic": diagnostic,
        "report_id": report_id,
        "source": "dsn",
    }
    message_event_record(message=message, type="deferred", occurred_at=occurred_at, detail=detail)
    return True


def _message(message_id: str | None, what: str) -> Message | None:
    message = (
        Message.objects.filter(pk=message_id)
        .only("pk", "workspace_id", "sender_id", "to", "cc", "status", "created_at")
        .first()
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


def bounce_suppresses(*, workspace_id: str, address: str, bounce_class: str, message_id: str) -> bool:
    """Whether a bounce of this class suppresses `address`: always for `hard`; for `expired` only
    when another message of the workspace to that address expired before (a first expiry is
    usually a receiving server's bad week); never for `block` or `soft`."""
    if bounce_class == BounceClass.HARD:
        return True
    if bounce_class != BounceClass.EXPIRED:
        return False
    return (
        Message.objects.filter(workspace_id=workspace_id, to=address, bounce_class=BounceClass.EXPIRED)
        .exclude(pk=message_id)
        .exists()
    )


@transaction.atomic
def _record(message, address, primary, reason, to_status, detail, occurred_at, *, bounce_class: str = "") -> bool:
    # Only the report that moves the message suppresses its `to`: a repeat changes nothing.
    fields = {"bounce_class": bounce_class} if bounce_class else {}
    moved = primary and message_transition(
        message_id=message.pk, to_status=to_status, occurred_at=occurred_at, detail=detail, **fields
    )
    if primary and not moved:
        return False
    suppress = not bounce_class or bounce_suppresses(
        workspace_id=message.workspace_id, address=address, bounce_class=bounce_class, message_id=message.pk
    )
    if suppress:
        Suppression.objects.bulk_create(
            [
                Suppression(
                    workspace_id=message.workspace_id,
                    email=address,
                    reason=reason,
                    source_message_id=message.pk,
                    detail=suppression_detail(detail),
                )
            ],
            ignore_conflicts=True,
        )
        log.info("%s for %s: %s suppressed", to_status, message.pk, address)
    else:
        log.info("%s (%s) for %s: %s not suppressed", to_status, bounce_class, message.pk, address)
    if primary:
        # A new bounce, block or complaint may push the sender over its workspace's thresholds.
        sender_reputation_evaluate(sender_id=message.sender_id)
    return primary
