"""Messages signed before and after a DKIM rotation both verify (dkimpy, keys from the loopback DNS)."""

import dkim as dkimpy
import pytest

from domains.models import Domain
from domains.services import domain_dkim_rotate, domain_refresh
from messaging.delivery.services import deliver_messages
from pufferpost import dns as pdns
from tests.domains.factories import publish_as_told
from tests.messaging.delivery.pipeline import make_sendable, parse


@pytest.fixture
def setup(settings, dns, smtp_sink, workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    return make_sendable(workspace, dns)


def from_loopback_dns(name, timeout=5):
    host = name.decode() if isinstance(name, bytes) else name
    answer = pdns.txt(host.rstrip("."))
    return answer.records[0].encode() if answer.records else None


def deliver(setup, smtp_sink):
    message = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    return smtp_sink.received[-1].content


def selector_of(raw: bytes) -> str:
    signature = parse(raw)["DKIM-Signature"]
    return next(t.split("=", 1)[1].strip() for t in signature.split(";") if t.strip().startswith("s="))


def test_mail_signed_before_and_after_a_rotation_verifies(setup, smtp_sink, dns):
    before = deliver(setup, smtp_sink)
    domain = domain_dkim_rotate(domain=Domain.objects.get(pk=setup.domain.pk))
    pending = deliver(setup, smtp_sink)  # the new record is not published: still the old key

    publish_as_told(dns, [r for r in domain_records(domain) if r.get("state") == "pending"])
    domain_refresh(domain=Domain.objects.get(pk=domain.pk))
    after = deliver(setup, smtp_sink)

    assert [selector_of(m) for m in (before, pending, after)] == ["mlr1", "mlr1", "mlr2"]
    for raw in (before, pending, after):
        assert dkimpy.verify(raw, dnsfunc=from_loopback_dns)
    # Once the old record is retired, only the new key's mail verifies.
    dns.remove("mlr1._domainkey.mail.acme.test")
    assert not dkimpy.verify(before, dnsfunc=from_loopback_dns)
    assert dkimpy.verify(after, dnsfunc=from_loopback_dns)


def domain_records(domain):
    from domains.serializers import dns_records_of

    return dns_records_of(Domain.objects.get(pk=domain.pk))
