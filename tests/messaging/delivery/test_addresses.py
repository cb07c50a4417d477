"""#15 item 18: the header and the envelope carry the same address, written once, in ASCII."""

import pytest

from messaging.delivery.services import deliver_messages
from messaging.models import Message, MessageEvent
from tests.messaging.delivery.pipeline import make_sendable, publish_routes


@pytest.fixture
def setup(settings, dns, smtp_sink, workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    publish_routes(dns, "xn--bcher-kva.example")
    return make_sendable(workspace, dns)


def header(raw: bytes, name: str) -> str:
    block = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").decode("ascii")
    (value,) = [line.split(": ", 1)[1] for line in block.split("\r\n") if line.startswith(f"{name}: ")]
    return value


def test_an_idn_recipient_is_the_a_label_in_the_to_header_and_in_rcpt(setup, smtp_sink):
    message = setup.message(to="jane@bücher.example", cc=["audit@bücher.example"])
    deliver_messages(message_ids=[message.pk])
    (received,) = smtp_sink.received
    assert received.rcpt_tos == ["jane@xn--bcher-kva.example", "audit@xn--bcher-kva.example"]
    assert header(received.content, "To") == "jane@xn--bcher-kva.example"
    assert header(received.content, "Cc") == "audit@xn--bcher-kva.example"
    assert b"=?" not in received.content.split(b"\r\n\r\n", 1)[0].split(b"\r\nSubject:")[0]
    assert Message.objects.get(pk=message.pk).status == "delivered"


def test_a_quoted_local_part_is_quoted_exactly_once_in_the_header_and_in_rcpt(setup, smtp_sink):
    message = setup.message(to='"jane doe"@example.com', reply_to='"help desk"@example.org')
    deliver_messages(message_ids=[message.pk])
    (received,) = smtp_sink.received
    assert received.rcpt_tos == ['"jane doe"@example.com']
    assert header(received.content, "To") == '"jane doe"@example.com'
    assert header(received.content, "Reply-To") == '"help desk"@example.org'


def test_an_address_literal_stored_before_the_api_refused_them_errors_and_is_never_connected_to(setup, smtp_sink):
    message = setup.message(to="jane@example.com", cc=["ops@[127.0.0.1]"])
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == [] and smtp_sink.connections == 0
    detail = MessageEvent.objects.get(message_id=message.pk, type="errored").detail
    assert detail["reason"] == "build_error" and "address literals" in detail["message"]
