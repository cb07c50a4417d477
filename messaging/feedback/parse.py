"""Turn inbound mail (bounces and complaints) into structured reports. Pure: no database access.

Three shapes are understood, in this order:
- RFC 3464 delivery status notifications (`multipart/report; report-type=delivery-status`): one
  `DeliveryReport` per recipient group of the `message/delivery-status` part (groups split on
  whitespace-only lines too; `Action: error`/`failure` read as `failed`; the status from `Status:`
  or the diagnostic; the Original-Recipient preferred, as the address we sent to). A part with no
  usable recipient group falls through to the heuristic scan.
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
        deliveries, usable = _deliveries(msg, status_part, verp_id)
        if usable:  # (a `delivered` or `relayed` DSN names recipients too, and reports nothing)
            return InboundReport("dsn", report_id, occurred_at, deliveries=deliveries)
        # A delivery-status part with no usable recipient block (empty, garbled, an X.400 address
        # only): the notification text may still say who failed, as flufl.bounce reads it.
    deliveries = _heuristic_deliveries(msg, raw, verp_id)
    return InboundReport("heuristic" if deliveries else "none", report_id, occurred_at, deliveries=deliveries)


# Non-standard Action values seen from real MTAs (Lotus, old Exchange, Sun), and what they mean.
_ACTIONS = {"failed": "failed", "failure": "failed", "error": "failed", "delayed": "delayed", "delay": "delayed"}
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")


def _status_groups(status_part: EmailMessage) -> list[dict[str, str]]:
    """The delivery-status fields as groups (per-message first, then one per recipient).

    The email package splits groups only on empty lines; a line holding only spaces (dsn_03 in
    flufl.bounce's corpus) merges two groups into one block, so groups are also split wherever a
    recipient field repeats within a block. Field names are lowercased; the first value wins.
    """
    blocks = [b for b in (status_part.get_payload() or []) if isinstance(b, EmailMessage)]
    if not blocks and isinstance(status_part.get_payload(), str):
        # Some MTAs send the fields as the part's text without the parser splitting them.
        text = status_part.get_payload(decode=True) or b""
        blocks = [email.message_from_bytes(chunk) for chunk in re.split(rb"\r?\n[ \t]*\r?\n", text) if chunk.strip()]
    groups: list[dict[str, str]] = []
    for block in blocks:
        group: dict[str, str] = {}
        for name, value in block.items():
            name = name.lower()
            if (
                name in _RECIPIENT_FIELDS
                and any(f in group for f in _RECIPIENT_FIELDS)
                and (name in group or "action" in group)
            ):
                groups.append(group)
                group = {}
            group.setdefault(name, _clean(value))
        groups.append(group)
    return groups


def _deliveries(
    msg: EmailMessage, status_part: EmailMessage, verp_id: str | None
) -> tuple[tuple[DeliveryReport, ...], bool]:
    """The per-recipient reports, and whether any group named a usable recipient at all."""
    groups = _status_groups(status_part)
    if not groups:
        return (), False
    per_message = {k: v for group in groups for k, v in group.items() if k not in _RECIPIENT_FIELDS}
    message_id = verp_id or _message_id_from_envid(per_message.get("original-envelope-id", ""))
    message_id = message_id or _message_id_from_original(msg)
    reporting_mta = _typed_address(per_message.get("reporting-mta", ""))[:255]
    reports, usable = [], False
    for group in groups:
        final = _recipient_address(group.get("final-recipient", ""))
        original = _recipient_address(group.get("original-recipient", ""))
        usable = usable or bool(final or original)
        action = _ACTIONS.get(group.get("action", "").lower().split(" ", 1)[0], "")
        if not (final or original) or not action:
            continue
        diagnostic = group.get("diagnostic-code", "")
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
        status = group.get("status", "")
        reports.append(
            DeliveryReport(
                message_id=message_id,
                # The address we sent to, when the report keeps it (forwarding and aliases rewrite
                # the final one: `userx@sims-ms-daemon`, an X.400 name).
                recipient=original or final,
                original_recipient=original,
                action=action,
                status=_status_code(status, diagnostic, action),
                # A bare reply in Status (`553 Exceeded maximum inbound message size`) is a diagnostic too.
                diagnostic=(diagnostic or (status if not _ENHANCED_STATUS.fullmatch(status.split(" ")[0]) else ""))[
                    :1000
                ],
                remote_mta=_typed_address(group.get("remote-mta", ""))[:255],
                reporting_mta=reporting_mta,
            )
        )
    return tuple(reports), usable


# A plausible mailbox: dot-atom local part (or a quoted one) at a dotted domain. Redacted or
# garbled values (`david...@gmail.com`, `userx@sims-ms-daemon` is kept: it is well formed) are not.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_MAILBOX = re.compile(rf'(?:{_ATOM}(?:\.{_ATOM})*|"[^"\r\n]{{1,64}}")@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*')


def _recipient_address(value: str) -> str:
    """`rfc822; jane@example.com` → `jane@example.com`; other address types or malformed → ""."""
    kind, _, address = value.rpartition(";")
    if kind.strip() and kind.strip().lower() not in ("rfc822", "utf-8"):
        return ""
    address = address.strip().strip("<>").strip()
    return address if len(address) <= 254 and _MAILBOX.fullmatch(address) else ""


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
    visible, hidden = _split_text(msg)
    message_id = verp_id or _message_id_from_original(msg)
    if message_id is None:
        message_id, _ = quoted_message_id_scan(raw.decode("utf-8", errors="replace"))
    reports = []
    for addresses, action, status in ((permanent, "failed", "5.0.0"), (temporary - permanent, "delayed", "4.0.0")):
        for address in sorted(addresses):
            recipient = address.decode("ascii", errors="replace")
            # Never an address decoded out of an attachment's base64 (one the notification itself
            # does not show); detectors may still build one from a bare name (AOL's `screenname`).
            lowered = recipient.lower()
            if not _MAILBOX.fullmatch(recipient) or (lowered in hidden and lowered not in visible):
                continue
            reports.append(DeliveryReport(message_id, recipient, "", action, status, heuristic=True))
    return tuple(reports)


def _split_text(msg: EmailMessage) -> tuple[str, str]:
    """(what a person reads: headers and text parts, what only an attachment's base64 holds), lowercased."""
    visible = [str(value) for _, value in msg.items()]
    hidden = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        visible += [str(value) for _, value in part.items()]
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        attachment = part.get_content_disposition() == "attachment" or bool(part.get_filename())
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload or "")
        if encoding == "base64" and (attachment or part.get_content_maintype() != "text"):
            hidden.append(text)
        else:
            visible.append(text)
    return "\n".join(visible).lower(), "\n".join(hidden).lower()


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
    """The enhanced status code (RFC 3463): from Status, else the diagnostic, else a basic reply
    code in either (`Status: 553 …`), else the action."""
    for text in (status, diagnostic):
        match = _ENHANCED_STATUS.search(text)
        if match:
            return ".".join(match.groups())
    for text in (status, diagnostic):
        basic = _BASIC_REPLY.search(text)
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
