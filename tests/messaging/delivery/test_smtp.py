import time

import dkim as dkimpy
import pytest

from messaging.delivery import dkim
from pufferpost import smtp
from pufferpost.localdev.smtp_server import LoopbackSmtpServer, RecordingHandler
from pufferpost.smtp import Mailer, Outcome, relay_route, resolve_route
from tests.messaging.delivery.conftest import RELAY_PASSWORD, RELAY_USER
from tests.messaging.delivery.test_dkim import mail_dkim_verify

DATA = (
    b"From: a@mail.acme.test\r\nTo: jane@example.com\r\nSubject: hi\r\nMessage-ID: <m1@mail.acme.test>\r\n"
    b"\r\nHello\r\n.leading dot survives\r\n"
)


@pytest.fixture
def direct(settings, dns, smtp_sink):
    """Direct-to-MX delivery where every MX listens on the sink's port; returns the DNS zone."""
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    return dns


def publish_mx(zone, domain, *mxs):
    """`mxs`: (preference, host, address) — address None publishes no A record for the host."""
    for preference, host, address in mxs:
        zone.publish(domain, "MX", (preference, host))
        if address:
            zone.publish(host, "A", address)


def send(recipients, data=DATA, mailer=None, before_data=None):
    if mailer is not None:
        return mailer.send(
            mail_from="bounces+x@mail.acme.test", recipients=recipients, data=data, before_data=before_data
        )
    return smtp.send_message(mail_from="bounces+x@mail.acme.test", recipients=recipients, data=data)


def test_mx_hosts_are_tried_in_preference_order(direct):
    publish_mx(direct, "example.com", (30, "mx3.example.com", "127.0.0.1"), (10, "mx1.example.com", "127.0.0.1"))
    direct.publish("example.com", "MX", (20, "mx2.example.com"))
    assert resolve_route("Example.COM").hosts == ("mx1.example.com", "mx2.example.com", "mx3.example.com")


def test_delivers_to_the_preferred_mx_and_records_the_envelope(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"), (20, "mx2.example.com", "127.0.0.9"))
    results = send(["jane@example.com"])
    result = results["jane@example.com"]
    assert (result.outcome, result.code, result.mx_host) == (Outcome.DELIVERED, 250, "mx1.example.com")
    (received,) = smtp_sink.received
    assert received.mail_from == "bounces+x@mail.acme.test"
    assert received.rcpt_tos == ["jane@example.com"]
    assert received.content == DATA


def test_falls_back_to_the_next_mx_when_the_first_refuses_connections(direct, smtp_sink):
    # Nothing listens on 127.0.0.2 at the sink's port: the connection is refused.
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.2"), (20, "mx2.example.com", "127.0.0.1"))
    result = send(["jane@example.com"])["jane@example.com"]
    assert (result.outcome, result.mx_host) == (Outcome.DELIVERED, "mx2.example.com")


def test_an_mx_host_without_address_is_skipped(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "ghost.example.com", None), (20, "mx2.example.com", "127.0.0.1"))
    result = send(["jane@example.com"])["jane@example.com"]
    assert (result.outcome, result.mx_host) == (Outcome.DELIVERED, "mx2.example.com")


def test_every_mx_refusing_connections_defers(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.2"), (20, "mx2.example.com", "127.0.0.3"))
    result = send(["jane@example.com"])["jane@example.com"]
    assert (result.outcome, result.code) == (Outcome.DEFERRED, None)
    assert "ConnectionRefused" in result.response_text


def test_without_mx_the_domain_itself_is_the_implicit_mx(direct, smtp_sink):
    direct.publish("example.com", "A", "127.0.0.1")
    result = send(["jane@example.com"])["jane@example.com"]
    assert (result.outcome, result.mx_host) == (Outcome.DELIVERED, "example.com")


def test_null_mx_bounces_without_connecting(direct, smtp_sink):
    direct.publish("example.com", "MX", (0, "."))
    direct.publish("example.com", "A", "127.0.0.1")
    result = send(["jane@example.com"])["jane@example.com"]
    assert result.outcome == Outcome.BOUNCED and result.permanent
    assert "null MX" in result.response_text
    assert smtp_sink.connections == 0


def test_nxdomain_bounces(direct):
    result = send(["jane@nowhere.example.com"])["jane@nowhere.example.com"]
    assert result.outcome == Outcome.BOUNCED
    assert "NXDOMAIN" in result.response_text


def test_a_domain_with_neither_mx_nor_address_bounces(direct):
    direct.publish("example.com", "TXT", "v=spf1 -all")
    result = send(["jane@example.com"])["jane@example.com"]
    assert result.outcome == Outcome.BOUNCED
    assert "no MX and no address" in result.response_text


def test_servfail_defers(direct):
    direct.fail("example.com")
    result = send(["jane@example.com"])["jane@example.com"]
    assert (result.outcome, result.code) == (Outcome.DEFERRED, None)
    assert "MX lookup failed" in result.response_text


def test_several_messages_to_one_mx_share_one_connection(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    with Mailer() as mailer:
        for n in range(5):
            results = send([f"user{n}@example.com"], mailer=mailer)
            assert results[f"user{n}@example.com"].outcome == Outcome.DELIVERED
    assert [r.rcpt_tos for r in smtp_sink.received] == [[f"user{n}@example.com"] for n in range(5)]
    assert smtp_sink.connections == 1


def test_recipients_in_two_domains_get_one_transaction_each(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx.example.com", "127.0.0.1"))
    publish_mx(direct, "example.org", (10, "mx.example.org", "127.0.0.1"))
    results = send(["jane@example.com", "audit@example.org", "joe@example.com"])
    assert {r: v.outcome for r, v in results.items()} == dict.fromkeys(
        ["jane@example.com", "audit@example.org", "joe@example.com"], Outcome.DELIVERED
    )
    assert sorted(r.rcpt_tos for r in smtp_sink.received) == [
        ["audit@example.org"],
        ["jane@example.com", "joe@example.com"],
    ]


def test_results_are_per_recipient(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    smtp_sink.refuse("gone@example.com")
    smtp_sink.defer("busy@example.com")
    results = send(["jane@example.com", "gone@example.com", "busy@example.com"])
    assert (results["jane@example.com"].outcome, results["jane@example.com"].code) == (Outcome.DELIVERED, 250)
    assert (results["gone@example.com"].outcome, results["gone@example.com"].code) == (Outcome.BOUNCED, 550)
    assert "User unknown" in results["gone@example.com"].response_text
    assert (results["busy@example.com"].outcome, results["busy@example.com"].code) == (Outcome.DEFERRED, 451)
    (received,) = smtp_sink.received
    assert received.rcpt_tos == ["jane@example.com"]


def test_no_data_is_sent_when_every_recipient_is_refused_and_the_connection_stays_usable(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    smtp_sink.refuse("gone@example.com")
    with Mailer() as mailer:
        assert send(["gone@example.com"], mailer=mailer)["gone@example.com"].outcome == Outcome.BOUNCED
        assert send(["jane@example.com"], mailer=mailer)["jane@example.com"].outcome == Outcome.DELIVERED
    assert [r.rcpt_tos for r in smtp_sink.received] == [["jane@example.com"]]
    assert smtp_sink.connections == 1


def test_421_defers_and_drops_the_connection(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    smtp_sink.reply("jane@example.com", "421 4.3.2 Service shutting down")
    with Mailer() as mailer:
        result = send(["jane@example.com"], mailer=mailer)["jane@example.com"]
        assert (result.outcome, result.code) == (Outcome.DEFERRED, 421)
        assert not mailer._connections


def test_a_stalled_server_times_out_as_deferred(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    smtp_sink.stall("slow@example.com", 5)
    started = time.monotonic()
    with Mailer(timeout=0.5) as mailer:
        result = send(["slow@example.com"], mailer=mailer)["slow@example.com"]
        assert result.outcome == Outcome.DEFERRED
        assert "timed out" in result.response_text.lower()
        assert not mailer._connections
    assert time.monotonic() - started < 3


def test_a_connection_closed_by_the_server_while_idle_is_reopened(settings, dns):
    from tests.messaging.delivery.conftest import SmtpSink

    sink = SmtpSink(timeout=0.3).start()  # aiosmtpd drops connections idle for 0.3 s
    try:
        settings.PUFFERPOST_SMTP_RELAY = f"smtp://127.0.0.1:{sink.port}"
        with Mailer() as mailer:
            assert send(["jane@example.com"], mailer=mailer)["jane@example.com"].outcome == Outcome.DELIVERED
            time.sleep(0.8)
            assert send(["joe@example.com"], mailer=mailer)["joe@example.com"].outcome == Outcome.DELIVERED
        assert sink.connections == 2
        assert len(sink.received) == 2
    finally:
        sink.stop()


def test_relay_with_auth_takes_every_recipient_in_one_transaction(settings, dns, smtp_relay):
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://{RELAY_USER}:s3cret%20p%40ss@127.0.0.1:{smtp_relay.port}"
    assert RELAY_PASSWORD == "s3cret p@ss"
    # No DNS record exists for these domains: the relay route never looks them up.
    results = send(["jane@example.com", "audit@example.org"])
    assert {r.outcome for r in results.values()} == {Outcome.DELIVERED}
    assert {r.mx_host for r in results.values()} == {"127.0.0.1"}
    (received,) = smtp_relay.received
    assert received.login == RELAY_USER
    assert received.rcpt_tos == ["jane@example.com", "audit@example.org"]


def test_relay_with_a_wrong_password_defers(settings, smtp_relay):
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://{RELAY_USER}:wrong@127.0.0.1:{smtp_relay.port}"
    result = send(["jane@example.com"])["jane@example.com"]
    assert result.outcome == Outcome.DEFERRED
    assert "credentials" in result.response_text
    assert smtp_relay.received == []


def test_relay_without_auth_is_refused_by_an_auth_requiring_relay(settings, smtp_relay):
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://127.0.0.1:{smtp_relay.port}"
    result = send(["jane@example.com"])["jane@example.com"]
    assert result.outcome == Outcome.BOUNCED and result.code == 530
    assert smtp_relay.received == []


def test_relay_refusing_connections_defers(settings, closed_port):
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://127.0.0.1:{closed_port}"
    result = send(["jane@example.com"])["jane@example.com"]
    assert (result.outcome, result.code) == (Outcome.DEFERRED, None)


@pytest.mark.parametrize(
    ("url", "port", "security", "user", "password"),
    [
        ("smtp://relay.internal:2525", 2525, "none", "", ""),
        ("smtp://relay.internal", 25, "none", "", ""),
        ("smtp+starttls://u%40x:p%3Aw@relay.internal", 587, "starttls", "u@x", "p:w"),
        ("smtps://apikey:abc@relay.internal", 465, "tls", "apikey", "abc"),
    ],
)
def test_relay_urls(settings, url, port, security, user, password):
    settings.PUFFERPOST_SMTP_RELAY = url
    route = relay_route()
    assert (route.hosts, route.port, route.security, route.username, route.password) == (
        ("relay.internal",),
        port,
        security,
        user,
        password,
    )


def test_bare_lf_is_refused_before_anything_is_sent(settings, smtp_sink):
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://127.0.0.1:{smtp_sink.port}"
    with pytest.raises(ValueError, match="bare LF"):
        send(["jane@example.com"], data=b"From: a@b.test\nSubject: x\n\nbody\n")
    assert smtp_sink.connections == 0


def test_a_signed_message_still_verifies_as_the_server_received_it(direct, smtp_sink, built_message, dkim_key, pdf):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    publish_mx(direct, "example.org", (10, "mx1.example.org", "127.0.0.1"))
    out = built_message(attachments=[pdf], html="<p>.starts with a dot</p>\n" * 3)
    signed = dkim.sign(out.data, domain="mail.acme.test", selector="mlr1", private_key_pem=dkim_key.private_pem)
    results = smtp.send_message(mail_from=out.mail_from, recipients=out.recipients, data=signed)
    assert {r.outcome for r in results.values()} == {Outcome.DELIVERED}
    for received in smtp_sink.received:
        assert received.content == signed
        assert dkimpy.verify(received.content, dnsfunc=dkim_key.dnsfunc)
        assert mail_dkim_verify(received.content, direct, dkim_key) == ["pass"]


def test_an_mx_offering_starttls_gets_the_message_encrypted(settings, dns, smtp_tls_sink):
    # Opportunistic TLS (RFC 7435): the self-signed certificate is accepted for MX delivery.
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_tls_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    publish_mx(dns, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    assert send(["jane@example.com"])["jane@example.com"].outcome == Outcome.DELIVERED
    (received,) = smtp_tls_sink.received
    assert received.tls


def test_a_starttls_relay_must_present_a_trusted_certificate(settings, smtp_tls_sink):
    settings.PUFFERPOST_SMTP_RELAY = f"smtp+starttls://127.0.0.1:{smtp_tls_sink.port}"
    result = send(["jane@example.com"])["jane@example.com"]
    assert result.outcome == Outcome.DEFERRED
    assert "CERTIFICATE_VERIFY_FAILED" in result.response_text
    assert smtp_tls_sink.received == []


def test_a_plain_smtp_relay_never_upgrades(settings, smtp_tls_sink):
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://127.0.0.1:{smtp_tls_sink.port}"
    assert send(["jane@example.com"])["jane@example.com"].outcome == Outcome.DELIVERED
    assert not smtp_tls_sink.received[0].tls


def test_internationalised_domains_are_sent_in_idna_form(direct, smtp_sink):
    publish_mx(direct, "xn--bcher-kva.example", (10, "mx.xn--bcher-kva.example", "127.0.0.1"))
    results = send(["jane@bücher.example"])
    assert results["jane@bücher.example"].outcome == Outcome.DELIVERED
    assert smtp_sink.received[0].rcpt_tos == ["jane@xn--bcher-kva.example"]


def test_a_non_ascii_mailbox_bounces_without_crashing_the_others(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    results = send(["jäne@example.com", "jane@example.com"])
    assert results["jäne@example.com"].outcome == Outcome.BOUNCED
    assert "SMTPUTF8" in results["jäne@example.com"].response_text
    assert results["jane@example.com"].outcome == Outcome.DELIVERED


def test_a_mailer_looks_each_domain_up_once(direct, smtp_sink, settings):
    settings.PUFFERPOST_DNS_CACHE_SECONDS = 0  # the mailer's own route cache, without the process's
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    with Mailer() as mailer:
        for n in range(3):
            assert send([f"u{n}@example.com"], mailer=mailer)[f"u{n}@example.com"].outcome == Outcome.DELIVERED
    assert direct.asked[("example.com", "MX")] == 1


def test_the_next_batch_finds_the_route_in_the_process_cache(direct, smtp_sink):
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))
    for n in range(2):  # two batches, each with a mailer of its own
        with Mailer() as mailer:
            assert send([f"u{n}@example.com"], mailer=mailer)[f"u{n}@example.com"].outcome == Outcome.DELIVERED
    assert direct.asked[("example.com", "MX")] == 1
    assert direct.asked[("mx1.example.com", "A")] == 1


class _CountingHandler(RecordingHandler):
    """Records like the sink, counts RSETs, and refuses the DATA command itself (before 354) the
    next `refuse_data` times, leaving the envelope open as a real server does."""

    def __init__(self):
        super().__init__()
        self.rsets = 0
        self.refuse_data = 0

    async def handle_RSET(self, server, session, envelope):
        self.rsets += 1
        return "250 OK"


class _DataRefusingServer(LoopbackSmtpServer):
    def factory(self):
        server = super().factory()
        handler, original = self.handler, server.smtp_DATA

        async def smtp_data(arg):
            if handler.refuse_data:
                handler.refuse_data -= 1
                await server.push("554 5.7.1 Transaction refused at DATA")
                return
            await original(arg)

        server._smtp_methods["DATA"] = smtp_data  # aiosmtpd dispatches from this table
        return server


@pytest.fixture
def counting_relay(settings):
    handler = _CountingHandler()
    server = _DataRefusingServer(handler)
    server.start()
    settings.PUFFERPOST_SMTP_RELAY = f"smtp://127.0.0.1:{server.port}"
    yield handler
    server.stop()


def test_messages_on_one_connection_follow_each_other_without_a_reset(counting_relay):
    with Mailer() as mailer:
        for n in range(5):
            assert send([f"user{n}@example.com"], mailer=mailer)[f"user{n}@example.com"].outcome == Outcome.DELIVERED
    assert [r.rcpt_tos for r in counting_relay.received] == [[f"user{n}@example.com"] for n in range(5)]
    assert counting_relay.connections == 1 and counting_relay.rsets == 0


@pytest.mark.parametrize("commit_point", [False, True])
def test_after_data_itself_is_refused_the_connection_is_reset_and_carries_the_next_message(
    counting_relay, commit_point
):
    counting_relay.refuse_data = 1
    with Mailer() as mailer:
        before_data = (lambda recipients: True) if commit_point else None
        refused = send(["jane@example.com"], mailer=mailer, before_data=before_data)["jane@example.com"]
        assert (refused.outcome, refused.code) == (Outcome.BOUNCED, 554)
        delivered = send(["joe@example.com"], mailer=mailer, before_data=before_data)["joe@example.com"]
        assert delivered.outcome == Outcome.DELIVERED, delivered
    # Without the reset the server would still hold jane's envelope: "503 nested MAIL command".
    assert [r.rcpt_tos for r in counting_relay.received] == [["joe@example.com"]]
    assert counting_relay.connections == 1 and counting_relay.rsets == 1
