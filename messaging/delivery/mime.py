"""Build the RFC 5322 message for an already-rendered send.

White-label: nothing here names the platform — the Message-ID and the return path live under the
sender's domain (or a configured return-path domain), and no X-Mailer-style header is added.
"""

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from messaging.delivery import headers as h
from messaging.return_path import return_path_for
from templates_app.rendering import MAX_SUBJECT_CHARS


@dataclass
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass
class OutgoingMessage:
    """What the SMTP transport needs: the envelope and the serialised bytes (CRLF).

    `data` is the `to` recipient's copy. `copies` holds one copy per recipient (`to` first, then
    each cc), each sent in its own SMTP transaction: they differ only in List-Unsubscribe, whose
    one-click token opts out that copy's recipient alone (#15 item 12). The visible To and Cc
    headers are the same in every copy, as the customer sent them.
    """

    mail_from: str
    recipients: list[str]
    data: bytes
    message_id: str
    copies: dict[str, bytes]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def message_id_header(message_id: str, from_address: str) -> str:
    """`<msg_…@from-domain>`: stable for a message (retries keep it), never the platform's host name."""
    return f"<{message_id}@{h.ascii_domain(domain_of(from_address))}>"


_TOKEN_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+$")
# A charset parameter is a registered-looking name (RFC 2978 mime-charset), nothing else.
_CHARSET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$%&'+^_`{}~-]{0,39}$")


def _content_type(value: str) -> tuple[str, list[tuple[str, str]]]:
    """A well-formed `type/subtype` and its parameters, else application/octet-stream.

    Never an attachment type: multipart (it needs a structure of its own) and message/* (a
    message/rfc822 part must itself be a valid message; relays reject a blob under that type).
    Only text/* may carry a parameter, and only `charset`.
    """
    media, _, rest = value.partition(";")
    maintype, _, subtype = media.strip().lower().partition("/")
    if not (_TOKEN_RE.match(maintype) and _TOKEN_RE.match(subtype)) or maintype in ("multipart", "message"):
        return "application/octet-stream", []
    parameters = []
    if rest.strip():
        attribute, _, charset = rest.strip().partition("=")
        charset = charset.strip().strip('"')
        if maintype != "text" or attribute.strip().lower() != "charset" or not _CHARSET_RE.match(charset):
            return "application/octet-stream", []
        parameters.append(("charset", charset.lower()))
    return f"{maintype}/{subtype}", parameters


def _filename(value: str) -> str:
    """The name a client saves the file as: one line, no directory part."""
    return h.one_line(value).replace("/", "_").replace("\\", "_") or "attachment"


# --- bodies ----------------------------------------------------------------------------------

QP_LINE = 76  # RFC 2045 §6.7 (5), the soft line break's `=` included
# Each byte as it appears in quoted-printable text: printable ASCII but `=` as is, space and tab
# as is (unless they end a line), everything else `=XX`.
_QP_TABLE = [chr(b) if (33 <= b <= 126 and b != 61) or b in (9, 32) else f"={b:02X}" for b in range(256)]


def _qp_line(data: bytes) -> list[str]:
    table = _QP_TABLE
    if data and data[-1] in (9, 32):  # trailing whitespace would be stripped in transit
        encoded = "".join(map(table.__getitem__, data[:-1])) + f"={data[-1]:02X}"
    else:
        encoded = "".join(map(table.__getitem__, data))
    if encoded.startswith("From "):  # some relays still rewrite it to ">From "
        encoded = "=46" + encoded[1:]
    lines, start = [], 0
    while len(encoded) - start > QP_LINE:
        cut = start + QP_LINE - 1
        # Never split an `=XX` escape across the soft break.
        if encoded[cut - 1] == "=":
            cut -= 1
        elif encoded[cut - 2] == "=":
            cut -= 2
        lines.append(encoded[start:cut] + "=")
        start = cut
    lines.append(encoded[start:])
    return lines


def quoted_printable(text: str) -> bytes:
    """UTF-8 text as quoted-printable with CRLF hard breaks, every line at most 76 characters.

    Written here because the standard library's encoders both let a line reach 77–78 characters
    (binascii when a line ends in whitespace, email's content manager with the policy's 78).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        out.extend(_qp_line(line.encode("utf-8", "replace")))
    return ("\r\n".join(out) + "\r\n").encode("ascii")


def _base64_body(content: bytes) -> bytes:
    return base64.encodebytes(content).replace(b"\n", b"\r\n")


def _boundary() -> str:
    # `=_` can occur neither in quoted-printable nor in base64 text, so no body can contain it.
    return "=_" + base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()


def _part(header_lines: list[str], names: list[str], body: bytes) -> bytes:
    block = ("".join(header_lines) + "\r\n").encode("ascii")
    h.check_header_block(block, names)
    return block + body


def _multipart(subtype: str, parts: list[bytes]) -> tuple[str, bytes]:
    """(Content-Type header, body) of a multipart holding `parts`."""
    boundary = _boundary()
    header = h.parameterized("Content-Type", f"multipart/{subtype}", [("boundary", boundary)])
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body = b"".join(delimiter + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode("ascii")
    return header, body


def _text_part(subtype: str, text: str) -> bytes:
    return _part(
        [
            h.parameterized("Content-Type", f"text/{subtype}", [("charset", "utf-8")]),
            h.verbatim("Content-Transfer-Encoding", "quoted-printable"),
        ],
        ["Content-Type", "Content-Transfer-Encoding"],
        quoted_printable(text),
    )


def _attachment_part(attachment: Attachment) -> bytes:
    media_type, parameters = _content_type(attachment.content_type)
    return _part(
        [
            h.parameterized("Content-Type", media_type, parameters),
            h.verbatim("Content-Transfer-Encoding", "base64"),
            h.parameterized("Content-Disposition", "attachment", [("filename", _filename(attachment.filename))]),
        ],
        ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition"],
        _base64_body(attachment.content),
    )


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
    cc_unsubscribe_urls: dict[str, str] | None = None,
    date: datetime | None = None,
    envelope_domain: str = "",
) -> OutgoingMessage:
    """Serialise a rendered message: multipart/alternative (text, then html), wrapped in
    multipart/mixed only when there are attachments; headers per RFC 5322, 2047, 2231 and 8058.

    `unsubscribe_url` (and `unsubscribe_mailto`) go into the `to` recipient's copy only. A cc's
    copy carries `cc_unsubscribe_urls[cc]` as its one-click target, or no List-Unsubscribe at all
    when it has none: never the `to` recipient's token.

    Every header is written by `messaging.delivery.headers` from the inputs as text, and the
    finished header block is checked against the list of fields written; a message that fails
    raises `HeaderError` and is never signed.
    """
    try:
        return _build(**locals())
    except h.HeaderError as exc:
        raise h.HeaderError(f"the message was not sent: {exc}") from exc


def _build(
    *,
    message_id,
    from_email,
    from_name,
    to,
    cc,
    reply_to,
    subject,
    html,
    text,
    attachments,
    unsubscribe_url,
    unsubscribe_mailto,
    cc_unsubscribe_urls,
    date,
    envelope_domain,
) -> OutgoingMessage:
    cc = list(cc or [])
    subject = h.one_line(subject)
    if len(subject) > MAX_SUBJECT_CHARS:
        raise h.HeaderError(f"the subject is {len(subject):,} characters long (at most {MAX_SUBJECT_CHARS})")
    content_type, body = _multipart("alternative", [_text_part("plain", text or ""), _text_part("html", html)])
    if attachments:
        inner = _part([content_type], ["Content-Type"], body)
        content_type, body = _multipart("mixed", [inner, *(_attachment_part(a) for a in attachments)])
    message_id_value = message_id_header(message_id, from_email)
    date_value = format_datetime(date or datetime.now(UTC))

    def copy(unsubscribe: list[str]) -> bytes:
        fields = [
            ("From", h.address_list("From", [(from_name, from_email)])),
            ("To", h.address_list("To", [("", to)])),
            ("Cc", h.address_list("Cc", [("", a) for a in cc]) if cc else None),
            ("Reply-To", h.address_list("Reply-To", [("", reply_to)]) if reply_to else None),
            ("Subject", h.unstructured("Subject", subject)),
            ("Date", h.verbatim("Date", date_value)),
            ("Message-ID", h.verbatim("Message-ID", message_id_value)),
            ("List-Unsubscribe", h.url_list("List-Unsubscribe", unsubscribe) if unsubscribe else None),
            (
                "List-Unsubscribe-Post",
                h.verbatim("List-Unsubscribe-Post", "List-Unsubscribe=One-Click") if unsubscribe else None,
            ),
            ("MIME-Version", h.verbatim("MIME-Version", "1.0")),
            ("Content-Type", content_type),
        ]
        fields = [(name, line) for name, line in fields if line is not None]
        return _part([line for _, line in fields], [name for name, _ in fields], body)

    data = copy([unsubscribe_url] + ([f"mailto:{unsubscribe_mailto}"] if unsubscribe_mailto else []))
    copies = {to: data}
    cc_urls = cc_unsubscribe_urls or {}
    for address in cc:
        if address not in copies:
            url = cc_urls.get(address)
            copies[address] = copy([url] if url else [])
    return OutgoingMessage(
        mail_from=return_path_for(message_id=message_id, from_address=from_email, domain=envelope_domain),
        recipients=[to, *cc],
        data=data,
        message_id=message_id_value,
        copies=copies,
    )
