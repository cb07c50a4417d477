"""The inbound SMTP server as a real process (`manage.py run_inbound_smtp`) sharing the test database."""

import signal
import smtplib
import socket
import urllib.request
from types import SimpleNamespace

import pytest
from django.utils import timezone

from domains.models import Domain
from messaging.delivery.services import deliver_messages
from messaging.feedback.smtp import inbound_address_accepted
from messaging.models import Message, Suppression
from messaging.return_path import verp_local_part
from senders.models import Sender
from tests.factories import DomainFactory
from tests.helpers import wait_for
from tests.messaging.delivery.pipeline import make_sendable
from tests.messaging.feedback import samples
from tests.messaging.feedback.test_parse import _padded_qmail_bounce
from tests.observability.test_metrics import samples as samples_of
from tests.observability.test_metrics import value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inbound(processes):
    port, metrics_port = _free_port(), _free_port()
    server = processes.command(
        "inbound",
        "run_inbound_smtp",
        "--port",
        str(port),
        PUFFERPOST_INBOUND_FEEDBACK_ADDRESSES="fbl",
        # The samples' VERP addresses are at mail.acme.test: the operator's platform return-path domain.
        PUFFERPOST_RETURN_PATH_DOMAIN=samples.FROM_DOMAIN,
        PUFFERPOST_INBOUND_SMTP_MAX_BYTES=200_000,
        PUFFERPOST_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
    )
    server.wait_for_log(f"listening on 127.0.0.1:{port}")
    server.port = port
    server.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    return server


@pytest.mark.e2e
def test_bounces_and_complaints_over_smtp_are_recorded_and_pause_the_sender(inbound, make_message, sender, workspace):
    make_message(status="bounced", count=5)
    make_message(status="delivered", count=95)
    bounced = make_message(status="delivered", to="jane@example.org")
    complained = make_message(status="delivered", to="bob@example.org")

    with smtplib.SMTP("127.0.0.1", inbound.port, timeout=10) as smtp:
        smtp.sendmail("<>", [samples.verp(bounced.pk)], samples.postfix_dsn(bounced.pk))

    wait_for(lambda: Message.objects.get(pk=bounced.pk).status == "bounced", what="the bounce", timeout=20.0)
    assert Suppression.objects.filter(workspace=workspace, email="jane@example.org", reason="bounce").exists()
    # 6 bounces in 102 messages is above 5 %.
    wait_for(lambda: Sender.objects.get(pk=sender.pk).state == "paused", what="the pause", timeout=20.0)
    reason = Sender.objects.get(pk=sender.pk).state_reason
    assert reason == "Auto-paused: bounce rate 5.88% over the last 102 messages (7 days) exceeds 5.0%"

    with smtplib.SMTP("127.0.0.1", inbound.port, timeout=10) as smtp:
        smtp.sendmail("<>", ["fbl@mail.acme.test"], samples.yahoo_arf(complained.pk, to="bob@example.org"))

    wait_for(lambda: Message.objects.get(pk=complained.pk).status == "complained", what="the complaint", timeout=20.0)
    assert Suppression.objects.filter(workspace=workspace, email="bob@example.org", reason="complaint").exists()
    # Already paused: the complaint leaves the first reason in place.
    assert Sender.objects.get(pk=sender.pk).state_reason == reason
    # The server's own metrics port (no token set: loopback) counted what it recorded.
    with urllib.request.urlopen(inbound.metrics_url, timeout=10) as response:
        found = samples_of(response.read().decode())
    assert value(found, "pufferpost_message_events_total", type="bounced") == 1
    assert value(found, "pufferpost_message_events_total", type="complained") == 1


@pytest.mark.e2e
def test_the_server_refuses_strangers_and_oversized_mail_and_stops_on_sigterm(inbound, make_message):
    message = make_message(status="delivered")

    with smtplib.SMTP("127.0.0.1", inbound.port, timeout=10) as smtp:
        smtp.ehlo("mx.example.org")
        smtp.mail("<>")
        code, _ = smtp.rcpt("someone@mail.acme.test")
        assert code == 550
        code, _ = smtp.rcpt("bounces+not-an-id@mail.acme.test")
        assert code == 550
        smtp.rset()
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("<>", [samples.verp(message.pk)], samples.postfix_dsn(message.pk) + b"x" * 250_000)
        assert refused.value.smtp_code == 552

    assert Message.objects.get(pk=message.pk).status == "delivered"

    inbound.popen.send_signal(signal.SIGTERM)
    assert inbound.popen.wait(timeout=15) == 0
    assert "inbound SMTP server stopped" in inbound.log()


def test_the_server_accepts_return_paths_and_the_configured_feedback_addresses(settings, db):
    settings.PUFFERPOST_INBOUND_FEEDBACK_ADDRESSES = ["fbl", "abuse-reports@acme.test"]
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = "mail.acme.test"
    tagged = verp_local_part(message_id="msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2")
    assert inbound_address_accepted(f"<{tagged}@mail.acme.test>")
    assert inbound_address_accepted(f"{tagged.lower()}@mail.acme.test")
    # Without the tag (or with another message's) the id alone opens nothing.
    assert not inbound_address_accepted("<bounces+msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2@mail.acme.test>")
    other = verp_local_part(message_id="msg_01J9Z2K3M4N5P6Q7R8S9T0V1W3").rpartition("+")[2]
    assert not inbound_address_accepted(f"bounces+msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2+{other}@mail.acme.test")
    assert inbound_address_accepted("FBL@mail.acme.test")
    assert inbound_address_accepted("abuse-reports@acme.test")
    assert not inbound_address_accepted("abuse-reports@other.test")
    assert not inbound_address_accepted("bounces@mail.acme.test")
    assert not inbound_address_accepted("jane@example.org")


@pytest.fixture
def delivered(settings, dns, smtp_sink, workspace):
    """A message really delivered to the loopback MX, and the envelope sender it left with."""
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    world = make_sendable(workspace, dns)
    message = world.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    (received,) = smtp_sink.received
    assert Message.objects.get(pk=message.pk).status == "delivered"
    return SimpleNamespace(message=message, mail_from=received.mail_from, sender=world.sender)


@pytest.mark.e2e
def test_a_forged_report_naming_only_the_message_id_is_refused(inbound, delivered, workspace):
    message = delivered.message
    local, _, domain = delivered.mail_from.rpartition("@")
    assert len(local) <= 64 and local.startswith(f"bounces+{message.pk}+")
    forged = [f"bounces+{message.pk}@{domain}", f"bounces+{message.pk}+aaaaaaaaaa@{domain}"]

    with smtplib.SMTP("127.0.0.1", inbound.port, timeout=10) as smtp:
        smtp.ehlo("attacker.example")
        for address in forged:
            smtp.mail("<>")
            assert smtp.rcpt(address)[0] == 550
            smtp.rset()
        # The real return path (what the MX saw as MAIL FROM) is accepted, lowercased or not.
        smtp.sendmail("<>", [delivered.mail_from.lower()], samples.postfix_dsn(message.pk, to=message.to))

    wait_for(lambda: Message.objects.get(pk=message.pk).status == "bounced", what="the genuine bounce", timeout=20.0)
    assert Suppression.objects.filter(workspace=workspace, email="jane@example.com").exists()


@pytest.mark.e2e
def test_a_blank_line_padded_bounce_is_recorded_and_sigterm_still_stops_the_server(inbound, make_message):
    message = make_message(status="delivered", to="jane@example.org")
    raw = _padded_qmail_bounce(message.pk)

    with smtplib.SMTP("127.0.0.1", inbound.port, timeout=10) as smtp:
        # Sent to the feedback address, so only the quoted Message-ID names the message.
        smtp.sendmail("<>", ["fbl@mail.acme.test"], raw)

    wait_for(lambda: Message.objects.get(pk=message.pk).status == "bounced", what="the padded bounce", timeout=20.0)
    inbound.popen.send_signal(signal.SIGTERM)
    assert inbound.popen.wait(timeout=15) == 0
    assert "inbound SMTP server stopped" in inbound.log()


def test_verp_mail_is_accepted_only_at_the_platform_domain_and_verified_return_path_hosts(settings, workspace):
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = "rp.operator.test"
    verp = verp_local_part(message_id="msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2") + "@{}"
    DomainFactory(
        workspace=workspace,
        domain="news.acme.test",
        return_path_status="verified",
        return_path_verified_at=timezone.now(),
    )
    DomainFactory(workspace=workspace, domain="mail.acme.test")  # its return path never verified

    assert inbound_address_accepted(verp.format("rp.operator.test"))
    assert inbound_address_accepted(verp.format("bounces.news.acme.test"))
    assert inbound_address_accepted(verp.format("BOUNCES.News.Acme.Test"))
    assert not inbound_address_accepted(verp.format("bounces.mail.acme.test"))
    # The from-domain itself is the customer's own mail, never an accepted VERP domain.
    assert not inbound_address_accepted(verp.format("news.acme.test"))
    assert not inbound_address_accepted(verp.format("bounces.unknown.test"))

    # A return path that verified once keeps receiving bounces after it drifted to failed.
    Domain.objects.filter(domain="news.acme.test").update(return_path_status="failed")
    assert inbound_address_accepted(verp.format("bounces.news.acme.test"))
