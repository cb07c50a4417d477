"""#15 item 9: direct-to-MX delivery never connects to private, loopback, link-local or reserved
addresses (the webhook address policy, `pufferpost.http.address_allowed`), unless the operator
set a relay or configured a test world (PUFFERPOST_SMTP_ALLOW_PRIVATE, which the suite and
`make up` set). Nothing is connected to, so no remote text can reach the event detail.

Only loopback is ever really reachable here; 169.254.169.254, 10.0.0.7 and the rest are refused
before any socket is opened, which the sink's connection count and the results prove.
"""

import pytest

from messaging.delivery.services import deliver_messages
from messaging.models import Message, MessageEvent
from pufferpost import smtp
from pufferpost.smtp import Outcome
from tests.messaging.delivery.conftest import RELAY_USER
from tests.messaging.delivery.pipeline import make_sendable

BLOCKED = ["127.0.0.1", "169.254.169.254", "10.0.0.7", "192.168.1.1", "100.64.0.1", "0.0.0.0", "240.0.0.1"]


@pytest.fixture
def direct(settings, dns, smtp_sink):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_SMTP_ALLOW_PRIVATE = False
    return dns


def send(recipients):
    return smtp.send_message(
        mail_from="bounces+x@mail.acme.test", recipients=recipients, data=b"Subject: x\r\n\r\nx\r\n"
    )


@pytest.mark.parametrize("address", BLOCKED)
def test_an_mx_resolving_to_a_private_or_reserved_address_is_never_connected_to(direct, smtp_sink, address):
    direct.publish("example.com", "MX", (10, "mx.example.com"))
    direct.publish("mx.example.com", "A", address)
    result = send(["jane@example.com"])["jane@example.com"]
    assert result.outcome == Outcome.DEFERRED and result.code is None
    assert "private or reserved" in result.response_text and address in result.response_text
    assert smtp_sink.connections == 0 and smtp_sink.received == []


def test_ipv6_loopback_and_mapped_forms_are_refused_too(direct, smtp_sink):
    direct.publish("example.com", "MX", (10, "mx.example.com"))
    direct.publish("mx.example.com", "AAAA", "::1")
    direct.publish("example.org", "MX", (10, "mx.example.org"))
    direct.publish("mx.example.org", "AAAA", "::ffff:7f00:1")
    results = send(["jane@example.com", "john@example.org"])
    assert {r.outcome for r in results.values()} == {Outcome.DEFERRED}
    assert all("private or reserved" in r.response_text for r in results.values())
    assert smtp_sink.connections == 0


def test_the_implicit_mx_and_a_literal_mx_host_obey_the_same_policy(direct, smtp_sink):
    direct.publish("example.com", "A", "127.0.0.1")  # no MX: the domain itself
    direct.publish("example.org", "MX", (10, "127.0.0.1"))  # an address where a host name belongs
    results = send(["jane@example.com", "john@example.org"])
    assert all(r.outcome == Outcome.DEFERRED and "private or reserved" in r.response_text for r in results.values())
    assert smtp_sink.connections == 0


def test_an_operator_relay_on_a_private_address_is_used(settings, smtp_relay):
    settings.PUFFERPOST_SMTP_ALLOW_PRIVATE = False
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://{RELAY_USER}:s3cret%20p%40ss@127.0.0.1:{smtp_relay.port}"
    result = send(["jane@example.com"])["jane@example.com"]
    assert result.outcome == Outcome.DELIVERED
    assert [r.rcpt_tos for r in smtp_relay.received] == [["jane@example.com"]]


def test_a_message_to_a_private_mx_is_deferred_with_a_clear_detail_and_no_remote_text(direct, smtp_sink, workspace):
    sendable = make_sendable(workspace, direct)  # example.com's MX is mx.example.com → 127.0.0.1
    message = sendable.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.connections == 0
    assert Message.objects.get(pk=message.pk).status == "queued"
    detail = MessageEvent.objects.get(message_id=message.pk, type="deferred").detail
    assert "private or reserved" in detail["response"] and detail["code"] is None
    assert "ESMTP" not in str(detail) and "aiosmtpd" not in str(detail).lower()
