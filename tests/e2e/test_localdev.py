import json
import re
import smtplib

import dns.resolver
import pytest

from domains.models import Domain
from pufferpost import dns as pdns
from pufferpost import smtp
from pufferpost.localdev.dev_dns import CATCHER_HOST
from tests.factories import DomainFactory
from tests.helpers import wait_for

MESSAGE = b"From: a@mail.acme.test\r\nTo: jane@example.com\r\nSubject: hi\r\n\r\nHello\r\n"


def started_port(process, pattern):
    process.wait_for_log("listening on", timeout=30)
    return int(re.search(pattern, process.log())[1])


@pytest.fixture
def catcher(processes, tmp_path):
    mail_dir = tmp_path / "mail"
    process = processes.command("mail_catcher", "run_mail_catcher", "--port", "0", "--dir", str(mail_dir))
    port = started_port(process, r"listening on 127\.0\.0\.1:(\d+)")
    return port, mail_dir


def wait_for_files(directory, pattern, count, timeout=10):
    def enough():
        files = sorted(directory.glob(pattern))
        return files if len(files) >= count else None

    return wait_for(
        enough,
        what=f"{count} {pattern} in {directory}",
        timeout=timeout,
        interval=0.05,
        detail=lambda: list(directory.iterdir()),
    )


def test_mail_catcher_stores_each_message_untouched_with_its_envelope(catcher):
    port, mail_dir = catcher
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=10) as client:
        refused = client.sendmail("bounces+x@mail.acme.test", ["jane@example.com", "joe@example.org"], MESSAGE)
        assert refused == {}
    (eml,) = wait_for_files(mail_dir, "*.eml", 1)
    assert eml.read_bytes() == MESSAGE
    envelope = json.loads(eml.with_suffix(".json").read_text())
    assert envelope["mail_from"] == "bounces+x@mail.acme.test"
    assert envelope["rcpt_tos"] == ["jane@example.com", "joe@example.org"]


def test_mail_catcher_refuses_bounce_and_defers_defer_recipients(catcher):
    port, mail_dir = catcher
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=10) as client:
        client.ehlo()
        client.mail("bounces+x@mail.acme.test")
        assert client.rcpt("bounce-me@example.com")[0] == 550
        assert client.rcpt("deferred@example.com")[0] == 451
        assert client.rcpt("jane@example.com")[0] == 250
        assert client.data(MESSAGE)[0] == 250
    (eml,) = wait_for_files(mail_dir, "*.eml", 1)
    assert json.loads(eml.with_suffix(".json").read_text())["rcpt_tos"] == ["jane@example.com"]


@pytest.fixture
def dev_dns(processes, settings):
    """Start run_dev_dns and point the platform's resolver at it; returns the Process."""

    def start():
        process = processes.command("dev_dns", "run_dev_dns", "--port", "0", "--interval", "0.3")
        port = started_port(process, r"listening on 127\.0\.0\.1:(\d+)")
        settings.PUFFERPOST_DNS_NAMESERVERS = [("127.0.0.1", port)]
        return process

    return start


def test_dev_dns_publishes_every_domain_and_picks_up_new_ones(dev_dns, workspace):
    DomainFactory(workspace=workspace, domain="mail.acme.test", selector="mlr1", dkim_public_key="MIIBIjANBgkq")
    dev_dns()
    assert pdns.txt("mlr1._domainkey.mail.acme.test").records == ["v=DKIM1; k=rsa; p=MIIBIjANBgkq"]
    # Exactly what dns_records tells the customer to publish (the DMARC starter and the return path).
    assert pdns.txt("_dmarc.mail.acme.test").records == ["v=DMARC1; p=none;"]
    assert pdns.txt("bounces.mail.acme.test").records == ["v=spf1 ip4:127.0.0.1 ~all"]
    assert pdns.mx("bounces.mail.acme.test").records == [(10, "inbound.operator.test")]
    assert pdns.addresses("inbound.operator.test").records == ["127.0.0.1"]
    assert pdns.mx("mail.acme.test").records == [(10, CATCHER_HOST)]
    assert pdns.addresses(CATCHER_HOST).records == ["127.0.0.1"]

    DomainFactory(workspace=workspace, domain="news.other.test", selector="s2", dkim_public_key="MIIBnew")
    wait_for(
        lambda: pdns.txt("s2._domainkey.news.other.test").outcome == pdns.Outcome.FOUND,
        what="the new domain to appear",
        timeout=10,
    )
    assert pdns.txt("s2._domainkey.news.other.test").records == ["v=DKIM1; k=rsa; p=MIIBnew"]

    Domain.objects.filter(domain="news.other.test").delete()
    wait_for(
        lambda: pdns.txt("s2._domainkey.news.other.test").outcome != pdns.Outcome.FOUND,
        what="the deleted domain's key to be withdrawn",
        timeout=10,
    )


def test_dev_dns_routes_every_other_domain_to_the_catcher_except_invalid_ones(dev_dns, db):
    dev_dns()
    assert pdns.mx("example.com").records == [(10, CATCHER_HOST)]
    assert pdns.mx("nowhere.invalid").outcome == pdns.Outcome.NXDOMAIN
    # Also reachable over TCP (long DKIM TXT records need it).
    resolver = pdns.resolver()
    answer = resolver.resolve(CATCHER_HOST, "A", tcp=True)
    assert [r.to_text() for r in answer] == ["127.0.0.1"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("nowhere.invalid", "MX", tcp=True)


def test_make_up_path_direct_to_mx_through_dev_dns_into_the_catcher(dev_dns, catcher, settings):
    """What `make up` runs: dev DNS answers MX, the catcher takes the mail or bounces it."""
    port, mail_dir = catcher
    dev_dns()
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = port
    settings.PUFFERPOST_SMTP_HELO_NAME = "localhost"
    results = smtp.send_message(
        mail_from="bounces+x@mail.acme.test",
        recipients=["jane@example.com", "bounce-test@example.org", "defer-me@example.org", "x@nowhere.invalid"],
        data=MESSAGE,
    )
    assert {r: v.outcome for r, v in results.items()} == {
        "jane@example.com": smtp.Outcome.DELIVERED,
        "bounce-test@example.org": smtp.Outcome.BOUNCED,
        "defer-me@example.org": smtp.Outcome.DEFERRED,
        "x@nowhere.invalid": smtp.Outcome.BOUNCED,
    }
    (eml,) = wait_for_files(mail_dir, "*.eml", 1)
    assert eml.read_bytes() == MESSAGE


def test_make_up_world_greylists_and_requires_tls_for_the_google_like_domain(dev_dns, processes, settings, tmp_path):
    """`make up` also runs the receiving world: gmail.test answers like Gmail would."""
    dev_dns()
    world = processes.command("world", "run_world", "--port", "0", "--ca-dir", str(tmp_path / "ca"))
    port = started_port(world, r"receiving world listening on port (\d+)")
    assert pdns.mx("gmail.test").records[0] == (10, "aspmx.l.google.com")
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = port
    settings.PUFFERPOST_SMTP_HELO_NAME = "localhost"
    settings.PUFFERPOST_TLS_CA_FILE = str(tmp_path / "ca" / "ca.pem")
    (result,) = smtp.send_message(
        mail_from="bounces+x@mail.acme.test", recipients=["jane@gmail.test"], data=MESSAGE
    ).values()
    assert (result.outcome, result.code) == (smtp.Outcome.DEFERRED, 451)
    assert "Greylisted" in result.response_text and result.mx_host == "aspmx.l.google.com"
