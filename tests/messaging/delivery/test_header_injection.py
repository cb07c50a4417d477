"""#15 item 1: header and body injection through RFC 2047 encoded-words, checked at the MX.

A template variable in the Subject, the sender's display name and an attachment's file name each
carry an encoded-word with an encoded CR LF. The message the sink receives must have exactly the
header fields the platform writes (no Bcc, no early end of the header block, no body of the
attacker's), and its DKIM signature must cover exactly those fields, verified by dkimpy and by
Perl's Mail::DKIM.
"""

import base64
import re
from email.header import decode_header, make_header

import pytest
from django.conf import settings

from messaging.delivery import headers
from messaging.delivery.services import deliver_messages
from messaging.models import DeliveryAttempt, Message, MessageAttachment, MessageEvent
from tests.messaging.delivery.pipeline import dkimpy_verifies, make_sendable, parse, perl_verifies, timeline

PLATFORM_FIELDS = [
    "DKIM-Signature",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
]
SIGNED = ["from", "to", "subject", "date", "message-id", "mime-version", "content-type"]
SIGNED += ["list-unsubscribe", "list-unsubscribe-post", "from"]

PAYLOADS = {
    "q-body": "=?utf-8?q?Your_invoice=0D=0AContent-Type:_text/html=0D=0A=0D=0A<h1>Pay_here</h1>?=",
    "q-bcc": "=?utf-8?q?Your_invoice=0D=0ABcc:_victim@evil.test?=",
    "b-bcc": "=?utf-8?b?"
    + base64.b64encode(b"Your invoice\r\nBcc: victim@evil.test\r\n\r\n<h1>x</h1>").decode()
    + "?=",
}


@pytest.fixture
def setup(settings, dns, smtp_sink, workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    sendable = make_sendable(workspace, dns)
    sendable.version.subject = "{{ name }}"
    sendable.version.save()
    return sendable


def field_names(raw: bytes) -> list[str]:
    block = raw.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode() for line in block.split(b"\r\n") if line[:1] not in (b" ", b"\t")]


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_encoded_crlf_in_subject_name_and_filename_cannot_add_headers_at_the_mx(setup, smtp_sink, payload):
    setup.sender.display_name = payload
    setup.sender.save()
    message = setup.message(to="jane@example.com", data={"name": payload, "order_id": "o_9"})
    MessageAttachment.objects.create(
        message=message,
        position=0,
        filename=f"{payload}=2F..=2Finvoice.pdf",
        content_type="application/pdf",
        content=b"%PDF-1.4 x",
    )

    deliver_messages(message_ids=[message.pk])

    (received,) = smtp_sink.received
    assert received.rcpt_tos == ["jane@example.com"]  # no Bcc reached the envelope either
    raw = received.content
    assert field_names(raw) == PLATFORM_FIELDS
    mail = parse(raw)
    assert "Bcc" not in mail and mail.get_all("Content-Type") == [mail["Content-Type"]]
    assert str(mail["Subject"]) == payload  # shown as the characters sent, never decoded into headers
    assert mail["From"].addresses[0].addr_spec == setup.sender.from_address
    # The body is the platform's: text, html, the attachment, and nothing of the payload's HTML.
    assert mail.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in mail.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    assert "<p>Hello " in mail.get_body(("html",)).get_content()
    (attachment,) = mail.iter_attachments()
    assert attachment.get_filename() == f"{payload}=2F..=2Finvoice.pdf".replace("/", "_")
    assert attachment.get_content() == b"%PDF-1.4 x"

    # The signature covers exactly the fields the platform wrote, and both verifiers accept it.
    signature = re.sub(r"\s+", "", str(mail["DKIM-Signature"]))
    h_tag = re.search(r"(?:^|;)h=([^;]+)", signature).group(1)
    assert h_tag.split(":") == SIGNED
    assert {n.lower() for n in PLATFORM_FIELDS} - {"dkim-signature"} == set(SIGNED)
    assert dkimpy_verifies(raw, setup.domain)
    assert perl_verifies(raw, settings.PUFFERPOST_DNS_NAMESERVERS[0]) == ["pass"]

    stored = Message.objects.get(pk=message.pk)
    assert stored.status == "delivered" and stored.subject == payload


def test_an_encoded_word_holding_a_line_break_is_never_sent(setup, smtp_sink, monkeypatch):
    """The second net: a writer that kept the line break but encoded it would hand it to any relay
    that refolds (Python before 3.11.10 does); the check decodes every encoded-word and refuses."""
    monkeypatch.setattr(headers, "one_line", lambda value: value or "")
    setup.sender.display_name = "Acme\r\nBcc: victim@evil.test"
    setup.sender.save()
    message = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == []
    detail = MessageEvent.objects.get(message_id=message.pk, type="errored").detail
    assert "encoded-word that decodes to a control character" in detail["message"]


def test_a_header_block_that_fails_the_last_check_is_never_sent(setup, smtp_sink, monkeypatch):
    """The safety net on its own: with the Subject writer replaced by what Python 3.11.7's folder
    did (decode the encoded-words, write the result raw), the check after serialisation refuses
    the message, which ends `errored` with the reason; the MX receives only the other message."""

    def stdlib_3_11_7(name, value):
        return f"{name}: {make_header(decode_header(value))}\r\n"

    monkeypatch.setattr(headers, "unstructured", stdlib_3_11_7)
    message = setup.message(to="jane@example.com", data={"name": PAYLOADS["q-bcc"], "order_id": "o"})
    other = setup.message(to="john@example.com", data={"name": "Plain", "order_id": "o"})

    deliver_messages(message_ids=[message.pk, other.pk])

    assert [r.rcpt_tos for r in smtp_sink.received] == [["john@example.com"]]
    assert Message.objects.get(pk=message.pk).status == "errored"
    assert timeline(message.pk) == ["accepted", "queued", "errored"]
    detail = MessageEvent.objects.get(message_id=message.pk, type="errored").detail
    assert detail["reason"] == "build_error"
    assert detail["message"].startswith("the message was not sent: ")
    assert "'Bcc'" in detail["message"]
    assert not DeliveryAttempt.objects.filter(message_id=message.pk).exists()
    assert Message.objects.get(pk=other.pk).status == "delivered"
