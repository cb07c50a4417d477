"""End to end: a customer whose from-domain's MX is elsewhere follows `dns_records`, and a bounce that
arrives after the receiving server accepted the message still comes home.

A real worker delivers to the receiving world (an SMTP sink, the MX of example.com); later that
world sends a DSN to the envelope sender, routing it by MX through the loopback DNS as any MTA
would; it reaches `run_inbound_smtp` through the return-path host's MX, and the message ends bounced.
"""

import smtplib

import pytest

from domains.models import Domain
from messaging.models import Message, Suppression
from messaging.return_path import message_id_from_return_path
from pufferpost import dns as pdns
from tests.domains.factories import publish_as_told
from tests.e2e.test_delivery import FAST, sent_id, wait_for_status
from tests.e2e.test_inbound_smtp import _free_port
from tests.helpers import wait_for
from tests.messaging.feedback import samples

pytestmark = pytest.mark.e2e

FROM_DOMAIN = "mail.acme.test"
RETURN_PATH = f"bounces.{FROM_DOMAIN}"


@pytest.fixture
def customer(api, workspace, dns):
    from tests.messaging.delivery.pipeline import make_sendable

    sendable = make_sendable(workspace, dns)
    # The from-domain's own mail goes to the customer's mailbox provider, not to us.
    dns.publish(FROM_DOMAIN, "MX", (10, "mx.mailbox-provider.test"))
    dns.publish("mx.mailbox-provider.test", "A", "127.0.0.9")
    # The operator's inbound host, which the return-path MX names.
    dns.publish("inbound.operator.test", "A", "127.0.0.1")
    dns.remove(f"{sendable.domain.selector}._domainkey.{FROM_DOMAIN}")
    publish_as_told(dns, api.get(f"/v1/domains/{sendable.domain.id}").json()["dns_records"])
    return sendable


def test_a_later_bounce_comes_back_through_the_return_path_host(processes, smtp_sink, api, customer):
    body = api.post(f"/v1/domains/{customer.domain.id}/refresh", {}, format="json").json()
    assert (body["verified"], body["return_path_status"], body["bounce_domain"]) == (True, "verified", RETURN_PATH)

    inbound_port = _free_port()
    inbound = processes.command("inbound", "run_inbound_smtp", "--port", str(inbound_port))
    inbound.wait_for_log(f"listening on 127.0.0.1:{inbound_port}")
    worker = processes.worker(PUFFERPOST_SMTP_PORT=smtp_sink.port, **FAST)

    payload = {
        "from": f"receipts@{FROM_DOMAIN}",
        "to": "jane@example.com",
        "templateId": customer.template.id,
        "data": {"name": "Jane", "order_id": "o_9"},
    }
    message_id = sent_id(api.post("/v1/messages", payload, format="json"))
    wait_for_status(message_id, "delivered", [worker])
    (received,) = smtp_sink.received
    assert received.mail_from.endswith(f"@{RETURN_PATH}")
    assert message_id_from_return_path(received.mail_from) == message_id

    # Hours later the recipient's server gives up and bounces to the envelope sender, routed by MX.
    dsn = samples.postfix_dsn(message_id, to="jane@example.com")
    assert bounce_by_mx(received.mail_from, dsn, inbound_port) == ("inbound.operator.test", {})

    wait_for_status(message_id, "bounced", [worker, inbound])
    assert Suppression.objects.filter(workspace=customer.workspace, email="jane@example.com", reason="bounce").exists()

    # The old envelope (at the from-domain) would have taken the bounce to the mailbox provider.
    local_part = received.mail_from.rpartition("@")[0]
    with pytest.raises(ConnectionRefusedError):
        bounce_by_mx(f"{local_part}@{FROM_DOMAIN}", dsn, inbound_port)


def bounce_by_mx(recipient: str, dsn: bytes, port: int):
    """What a remote MTA does with a bounce: MX of the recipient's domain, its address, `MAIL FROM:<>`.

    Returns (the MX host used, smtplib's refused recipients); the port stands in for 25.
    """
    domain = recipient.rpartition("@")[2]
    (_, mx_host), *_ = pdns.mx(domain).records
    address = pdns.addresses(mx_host).records[0]
    if mx_host == "mx.mailbox-provider.test":
        assert address == "127.0.0.9"  # nothing of ours listens there
    with smtplib.SMTP(address, port, timeout=10) as client:
        client.ehlo("mx.example.com")
        return mx_host, client.sendmail("<>", [recipient], dsn)


def test_without_a_verified_return_path_the_envelope_stays_at_the_from_domain(processes, smtp_sink, api, customer):
    Domain.objects.filter(pk=customer.domain.pk).update(return_path_status="pending")
    body = api.get(f"/v1/domains/{customer.domain.id}").json()
    assert body["bounce_domain"] == FROM_DOMAIN and "cannot come back" in body["bounce_warning"]

    worker = processes.worker(PUFFERPOST_SMTP_PORT=smtp_sink.port, **FAST)
    payload = {
        "from": f"receipts@{FROM_DOMAIN}",
        "to": "jane@example.com",
        "templateId": customer.template.id,
        "data": {"name": "Jane", "order_id": "o_9"},
    }
    message_id = sent_id(api.post("/v1/messages", payload, format="json"))
    wait_for_status(message_id, "delivered", [worker])
    wait_for(lambda: smtp_sink.received, what="the delivery")
    assert smtp_sink.received[0].mail_from.endswith(f"@{FROM_DOMAIN}")
    assert Message.objects.get(pk=message_id).status == "delivered"
