"""Read a submitted MIME message (what Django, Rails or WordPress hand their SMTP server) into the
parts a send has: from, reply-to, subject, text, HTML and attachments.

Nothing else of the submitted message is kept: delivery builds, signs and addresses the outgoing
message itself (Message-ID under the from-domain, List-Unsubscribe, one recipient per message),
exactly as for an API send.
"""

import base64
import html as html_lib
from dataclasses import dataclass, field
from email import policy
from email.errors import MessageError
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.parser import BytesParser

from templates_app.plaintext import html_to_text


class SubmissionInvalid(ValueError):
    """The submitted message cannot be read as a send; the text says why (it reaches the client)."""


@dataclass
class Submission:
    from_address: str
    subject: str
    text: str
    html: str
    reply_to: str | None = None
    message_id: str | None = None
    attachments: list[dict] = field(default_factory=list)

    def payload(self, recipient: str) -> dict:
        """One recipient's send body, in the API's own camelCase shape (validated by the send API)."""
        body = {"from": self.from_address, "to": recipient}
        if self.reply_to:
            body["replyTo"] = self.reply_to
        if self.attachments:
            body["attachments"] = self.attachments
        return body


def _single_address(message: EmailMessage, name: str) -> str | None:
    header = message.get(name)
    if header is None:
        return None
    addresses = getattr(header, "addresses", ()) if isinstance(header, AddressHeader) else ()
    if len(addresses) != 1 or not addresses[0].addr_spec or "@" not in addresses[0].addr_spec:
        raise SubmissionInvalid(f"The {name} header must hold exactly one address.")
    return addresses[0].addr_spec


def _text_of(part) -> str:
    """A text part's content with plain `\n` line ends (SMTP carries CRLF; the builder adds its own)."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset: keep what can be read
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return content.replace("\r\n", "\n")


def html_from_text(text: str) -> str:
    """An HTML part for a text-only submission: the text escaped, line breaks kept."""
    return f'<html><body><div style="white-space: pre-wrap">{html_lib.escape(text)}</div></body></html>'


def submission_parse(raw: bytes, *, envelope_from: str = "") -> Submission:
    """Parse `raw` (the DATA bytes); raise SubmissionInvalid when it is not a usable message."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        from_address = _single_address(message, "From") or envelope_from
        reply_to = _single_address(message, "Reply-To")
        subject = " ".join(str(message.get("Subject", "")).split())
        text_part = message.get_body(preferencelist=("plain",))
        html_part = message.get_body(preferencelist=("html",))
        text = _text_of(text_part) if text_part is not None else ""
        html = _text_of(html_part) if html_part is not None else ""
        attachments = []
        for part in message.iter_attachments():
            content = part.get_payload(decode=True) or b""
            attachments.append(
                {
                    "filename": part.get_filename() or "attachment",
                    "contentType": part.get_content_type(),
                    "content": base64.b64encode(content).decode(),
                }
            )
        message_id = str(message.get("Message-ID", "")).strip() or None
    except (MessageError, TypeError, ValueError) as exc:
        if isinstance(exc, SubmissionInvalid):
            raise
        raise SubmissionInvalid(f"The message cannot be parsed: {exc}") from None
    if not from_address:
        raise SubmissionInvalid("The message has no From address.")
    if not text and not html:
        raise SubmissionInvalid("The message has no text or HTML body.")
    if not html:
        html = html_from_text(text)
    if not text:
        text = html_to_text(html)
    return Submission(
        from_address=from_address,
        subject=subject,
        text=text,
        html=html,
        reply_to=reply_to,
        message_id=message_id,
        attachments=attachments,
    )
