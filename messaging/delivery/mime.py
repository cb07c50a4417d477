"""Build the RFC 5322 message for an already-rendered send.

White-label: nothing here names the platform — the Message-ID and the return path live under the
sender's domain (or a configured return-path domain), and no X-Mailer-style header is added.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime

from messaging.return_path import return_path_for


class _UrlListHeader(UnstructuredHeader):
    """`List-Unsubscribe: <https://…>, <mailto:…>` written as is (RFC 2369), folded only between entries.

    The generic folder turns a header it cannot break at whitespace (a signed unsubscribe URL is
    ~100 characters) into RFC 2047 encoded-words, which no client decodes in this header.
    """

    def fold(self, *, policy):
        entries = [entry.strip() for entry in str(self).split(",")]
        return f"{self.name}: " + f",{policy.linesep} ".join(entries) + policy.linesep


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _UrlListHeader)

# The policy every outgoing message is serialised with: CRLF line endings and folded headers, so
# strict servers never see a bare LF and no line exceeds 998 octets.
POLICY = SMTP.clone(max_line_length=78, header_factory=_HEADERS)


@dataclass
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass
class OutgoingMessage:
    """What the SMTP transport needs: the envelope and the serialised bytes (CRLF)."""

    mail_from: str
    recipients: list[str]
    data: bytes
    message_id: str


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def message_id_header(message_id: str, from_address: str) -> str:
    """`<msg_…@from-domain>`: stable for a message (retries keep it), never the platform's host name."""
    return f"<{message_id}@{domain_of(from_address)}>"


_TOKEN_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+$")


def _content_type(value: str) -> tuple[str, str]:
    """A well-formed `type/subtype` (multipart is not an attachment type), else application/octet-stream."""
    maintype, _, subtype = value.strip().lower().partition("/")
    if _TOKEN_RE.match(maintype) and _TOKEN_RE.match(subtype) and maintype != "multipart":
        return maintype, subtype
    return "application", "octet-stream"


def _one_line(value: str) -> str:
    """Rendered subjects and names can carry line breaks from template data; a header cannot."""
    return re.sub(r"\s*[\r\n]+\s*", " ", value or "").strip()


def _address(email: str, display_name: str = "") -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=_one_line(display_name), username=local, domain=domain)


def build_message(
    *,
    message_id: str,
    from_email: str,
    from_name: str = "",
    to: str,
    cc: list[str] | None = None,
    reply_to: str | None = None,
    subject: str,
    html: str,
    text: str,
    attachments: list[Attachment] | None = None,
    unsubscribe_url: str,
    unsubscribe_mailto: str | None = None,
    date: datetime | None = None,
    envelope_domain: str = "",
) -> OutgoingMessage:
    """Serialise a rendered message: multipart/alternative (text, then html), wrapped in
    multipart/mixed only when there are attachments; headers per RFC 5322, 2047, 2231 and 8058."""
    cc = list(cc or [])
    # MIMEPart, not EmailMessage: EmailMessage stamps MIME-Version on every sub-part it creates.
    msg = MIMEPart(policy=POLICY)
    msg["From"] = _address(from_email, from_name)
    msg["To"] = _address(to)
    if cc:
        msg["Cc"] = [_address(a) for a in cc]
    if reply_to:
        msg["Reply-To"] = _address(reply_to)
    msg["Subject"] = _one_line(subject)
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = message_id_header(message_id, from_email)
    unsubscribe = f"<{unsubscribe_url}>"
    if unsubscribe_mailto:
        unsubscribe += f", <mailto:{unsubscribe_mailto}>"
    msg["List-Unsubscribe"] = unsubscribe
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"

    # Quoted-printable keeps mostly-ASCII bodies readable and every line short, whatever the
    # template author wrote (a 5,000-character single-line HTML body is common).
    msg.set_content(text or "", subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for attachment in attachments or []:
        maintype, subtype = _content_type(attachment.content_type)
        msg.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    data = msg.as_bytes(policy=POLICY)
    return OutgoingMessage(
        mail_from=return_path_for(message_id=message_id, from_address=from_email, domain=envelope_domain),
        recipients=[to, *cc],
        data=data,
        message_id=msg["Message-ID"],
    )
