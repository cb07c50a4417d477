"""Turn inbound mail (bounces and complaints) into structured reports. Pure: no database access.

Three shapes are understood, in this order:
- RFC 3464 delivery status notifications (`multipart/report; report-type=delivery-status`): one
  `DeliveryReport` per recipient block of the `message/delivery-status` part.
- RFC 5965 feedback reports (`multipart/report; report-type=feedback-report`): one `ComplaintReport`.
- Anything else is handed to flufl.bounce's heuristic detectors (qmail, Exim, old Exchange, …),
  which only yield addresses; those become reports with a generic status and `heuristic=True`.

Which message a report is about is found, most trustworthy first: the VERP return path the report
was sent to (the envelope recipient), the DSN's ENVID, the original's `Return-Path`, and finally
the original's `Message-ID` (the platform's look like `<msg_…@from-domain>`).
"""

import email
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message as EmailMessage
from email.utils import parseaddr, parsedate_to_datetime

from django.utils import timezone
from flufl.bounce import all_failures

from messaging.feedback.classes import Classification, bounce_classify
from messaging.return_path import message_id_from_return_path
from pufferpost.ids import ULID_RE

log = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(rf"<?\s*(msg_{ULID_RE})@", re.IGNORECASE)
# The id right after a quoted "Message-ID:" (horizontal space only, so it never crosses a line).
_ID_AFTER_FIELD = re.compile(rf"[ \t]*(?:\r?\n[ \t]+)?<(msg_{ULID_RE})@", re.IGNORECASE)  # may be folded once
_MESSAGE_ID_FIELD = re.compile("message-id:", re.IGNORECASE)  # a literal: linear to search
# How much may precede "Message-ID:" on its line: indentation and one quote mark, never more.
_QUOTE_PREFIX_MAX = 16
_ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC_REPLY = re.compile(r"\b([245])\d\d\b")
# RFC 5965 §7.3 registry; `not-spam` and `auth-failure` (RFC 6591) are not complaints by a person.
COMPLAINT_FEEDBACK_TYPES = frozenset({"abuse", "fraud", "virus", "other"})


@dataclass(frozen=True)
class DeliveryReport:
    """What a DSN (or a heuristic bounce) says about one recipient of one of our messages."""

    message_id: str | None
    recipient: str
    original_recipient: str
    action: str
    status: str
    diagnostic: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    heuristic: bool = False

    @property
    def permanent(self) -> bool:
        """The receiving side gave up for good (action failed, status 5.x.x)."""
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def transient(self) -> bool:
        """Delayed, or failed for a temporary reason (4.x.x: the relay's own retries ran out)."""
        return self.action == "delayed" or (self.action == "failed" and self.status.startswith("4."))

    @property
    def classification(self) -> Classification:
        """The bounce class (hard, block, soft, expired) and codes: messaging.feedback.classes."""
        return bounce_classify(text=self.diagnostic, enhanced_code=self.status, action=self.action)


@dataclass(frozen=True)
class ComplaintReport:
    """One ARF feedback report about one of our messages."""

    message_id: str | None
    recipient: str
    feedback_type: str
    user_agent: str = ""
    source_ip: str = ""

    @property
    def is_complaint(self) -> bool:
        return self.feedback_type in COMPLAINT_FEEDBACK_TYPES


@dataclass(frozen=True)
class InboundReport:
    kind: str  # "dsn", "arf", "heuristic" or "none"
    report_id: str  # the inbound mail's own Message-ID, to recognise the same report twice
    occurred_at: datetime
    deliveries: tuple[DeliveryReport, ...] = ()
    complaints: tuple[ComplaintReport, ...] = ()


def report_parse(raw: bytes, *, envelope_recipients: Iterable[str] = ()) -> InboundReport:
    """Parse one inbound mail. Never raises: malformed or unknown mail gives kind "none".

    (A mail that cannot be parsed must still be answered 250, or its sender would retry it for days.)
    """
    try:
        return _report_parse(raw, list(envelope_recipients))
    except Exception:  # unparseable mail is still answered 250, or its sender retries for days
        log.exception("could not parse an inbound mail of %d bytes; ignored", len(raw))
        return InboundReport("none", "", timezone.now())


def _report_parse(raw: bytes, envelope_recipients: list[str]) -> InboundReport:
    msg = email.message_from_bytes(raw)
    report_id = _clean(msg.get("Message-ID", ""))
    occurred_at = _report_date(msg)
    verp_id = next(filter(None, (message_id_from_return_path(r) for r in envelope_recipients)), None)

    status_part = _first_part(msg, "message/delivery-status")
    feedback_part = _first_part(msg, "message/feedback-report")
    if feedback_part is not None:
        complaint = _complaint(msg, feedback_part, verp_id)
        return InboundReport("arf", report_id, occurred_at, complaints=(complaint,))
    if status_part is not None:
        return InboundReport("dsn", report_id, occurred_at, deliveries=_deliveries(msg, status_part, verp_id))
    deliveries = _heuristic_deliveries(msg, raw, verp_id)
    return InboundReport("heuristic" if deliveries else "none", report_id, occurred_at, deliveries=deliveries)


def _deliveries(msg: EmailMessage, status_part: EmailMessage, verp_id: str | None) -> tuple[DeliveryReport, ...]:
    blocks = [b for b in (status_part.get_payload() or []) if isinstance(b, EmailMessage)]
    if not blocks:
        return ()
    per_message, per_recipient = blocks[0], blocks[1:]
    message_id = verp_id or _message_id_from_envid(per_message.get("Original-Envelope-Id", ""))
    message_id = message_id or _message_id_from_original(msg)
    reporting_mta = _typed_address(per_message.get("Reporting-MTA", ""))[:255]
    reports = []
    for block in per_recipient:
        final = _typed_address(block.get("Final-Recipient", ""))
        original = _typed_address(block.get("Original-Recipient", ""))
        if not (final or original):
            continue
        diagnostic = _clean(block.get("Diagnostic-Code", ""))
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
        action = _clean(block.get("Action", "")).lower().split(" ", 1)[0]
        reports.append(
            DeliveryReport(
                message_id=message_id,
                recipient=final or original,
                original_recipient=original,
                action=action,
                status=_status_code(_clean(block.get("Status", "")), diagnostic, action),
                diagnostic=diagnostic[:1000],
                remote_mta=_typed_address(block.get("Remote-MTA", ""))[:255],
                reporting_mta=reporting_mta,
            )
        )
    return tuple(reports)


def _complaint(msg: EmailMessage, feedback_part: EmailMessage, verp_id: str | None) -> ComplaintReport:
    fields = _fields_of(feedback_part)
    original = _original_headers(msg)
    message_id = (
        verp_id
        or message_id_from_return_path(parseaddr(fields.get("Original-Mail-From", ""))[1])
        or _message_id_from_original(msg)
    )
    recipient = parseaddr(fields.get("Original-Rcpt-To", ""))[1]
    if not recipient and original is not None:
        recipient = parseaddr(original.get("To", ""))[1]
    return ComplaintReport(
        message_id=message_id,
        recipient=recipient,
        feedback_type=_clean(fields.get("Feedback-Type", "")).lower() or "abuse",
        user_agent=_clean(fields.get("User-Agent", ""))[:200],
        source_ip=_clean(fields.get("Source-IP", ""))[:64],
    )


def _heuristic_deliveries(msg: EmailMessage, raw: bytes, verp_id: str | None) -> tuple[DeliveryReport, ...]:
    """Non-RFC bounces: flufl.bounce knows the addresses, not the codes, so the status is generic."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a heuristic scan failing leaves the standard (RFC 3464) findings intact
        log.exception("flufl.bounce could not scan an inbound message")
        return ()
    if not (temporary or permanent):
        return ()
    message_id = verp_id or _message_id_from_original(msg)
    if message_id is None:
        message_id, _ = quoted_message_id_scan(raw.decode("utf-8", errors="replace"))
    reports = []
    for addresses, action, status in ((permanent, "failed", "5.0.0"), (temporary - permanent, "delayed", "4.0.0")):
        for address in sorted(addresses):
            recipient = address.decode("ascii", errors="replace")
            reports.append(DeliveryReport(message_id, recipient, "", action, status, heuristic=True))
    return tuple(reports)


def quoted_message_id_scan(text: str) -> tuple[str | None, int]:
    """The first `Message-ID: <msg_…@` line quoted in a bounce's free text (`> Message-ID: …` or
    indented), and how many candidates were looked at.

    Linear: one pass over the text for the literal field name, and a bounded look at each hit (at
    most _QUOTE_PREFIX_MAX characters back to the line start, an anchored match forward). The
    regular expression this replaces, `^\\s*>?\\s*Message-ID` with MULTILINE, let `\\s*` run
    across blank lines from every line start: 5,000 blank lines pinned a core.
    """
    candidates = 0
    for hit in _MESSAGE_ID_FIELD.finditer(text):
        candidates += 1
        at = hit.start()
        window = max(0, at - _QUOTE_PREFIX_MAX - 1)
        line_start = text.rfind("\n", window, at) + 1
        if not (line_start or window == 0):  # a long run of text before it: not a header line
            continue
        if text[line_start:at].strip(" \t\r") in ("", ">"):
            found = _ID_AFTER_FIELD.match(text, hit.end())
            if found:
                return _normalise_id(found.group(1)), candidates
    return None, candidates


def _first_part(msg: EmailMessage, content_type: str) -> EmailMessage | None:
    return next((part for part in msg.walk() if part.get_content_type() == content_type), None)


def _fields_of(part: EmailMessage) -> EmailMessage:
    """The header block of a `message/*` report part, however the parser left it."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
        return payload[0]
    body = part.get_payload(decode=True) or b""
    return email.message_from_bytes(body if isinstance(body, bytes) else str(body).encode())


def _original_headers(msg: EmailMessage) -> EmailMessage | None:
    """The returned original (`message/rfc822`) or its headers (`text/rfc822-headers`)."""
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        elif content_type in ("text/rfc822-headers", "message/global-headers"):
            body = part.get_payload(decode=True) or b""
            return email.message_from_bytes(body.lstrip())
    return None


def _message_id_from_original(msg: EmailMessage) -> str | None:
    original = _original_headers(msg)
    if original is None:
        return None
    from_return_path = message_id_from_return_path(parseaddr(original.get("Return-Path", ""))[1])
    if from_return_path:
        return from_return_path
    match = _MESSAGE_ID.search(original.get("Message-ID", ""))
    return _normalise_id(match.group(1)) if match else None


def _message_id_from_envid(envid: str) -> str | None:
    match = re.fullmatch(rf"\s*(msg_{ULID_RE})\s*", envid, re.IGNORECASE)
    return _normalise_id(match.group(1)) if match else None


def _normalise_id(value: str) -> str:
    """Ids come back lowercased from some MTAs; ours are `msg_` plus uppercase Crockford base32."""
    return "msg_" + value[4:].upper()


def _typed_address(value: str) -> str:
    """`rfc822; jane@example.com` → `jane@example.com` (RFC 3464 address-type; value)."""
    value = _clean(value)
    return value.rpartition(";")[2].strip().strip("<>")


def _status_code(status: str, diagnostic: str, action: str) -> str:
    """The enhanced status code (RFC 3463): from Status, else the diagnostic, else the action."""
    for text in (status, diagnostic):
        match = _ENHANCED_STATUS.search(text)
        if match:
            return ".".join(match.groups())
    basic = _BASIC_REPLY.search(diagnostic)
    if basic:
        return f"{basic.group(1)}.0.0"
    return "5.0.0" if action == "failed" else "4.0.0"


def _report_date(msg: EmailMessage) -> datetime:
    """The report's Date when it is plausible (not in the future, not ancient), else now."""
    now = timezone.now()
    try:
        value = parsedate_to_datetime(msg.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return now
    if value is None or value.tzinfo is None or not (now - timedelta(days=30) <= value <= now + timedelta(minutes=5)):
        return now
    return min(value, now)


def _clean(value) -> str:
    return " ".join(str(value or "").split())
