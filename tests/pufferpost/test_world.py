"""The receiving world pushes back like providers do, and records what it saw (plain smtplib clients)."""

import smtplib
import ssl
import time

import pytest

from pufferpost import dns as pp_dns
from pufferpost.localdev import world as w
from pufferpost.localdev.world import Provider, loopback_alias_usable

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


def connect(world, provider, *, source="127.0.0.1", tls=False):
    p = world.providers[provider]
    client = smtplib.SMTP(p.address, world.port, local_hostname="out.test", source_address=(source, 0), timeout=5)
    client._host = p.mx_hosts[0]
    client.ehlo()
    if tls:
        client.starttls(context=ssl.create_default_context(cafile=str(world.ca.ca_file)))
        client.ehlo()
    return client


def send(client, rcpt="x@gmail.test", sender="a@acme.test"):
    code, _ = client.mail(sender)
    if code != 250:
        return code
    code, text = client.rcpt(rcpt)
    if code != 250:
        client.rset()
        return code
    code, _ = client.data(MESSAGE)
    return code


def test_loopback_aliases_bind_here():
    assert loopback_alias_usable("127.0.20.1") and loopback_alias_usable("127.0.0.9")


def test_mx_hosts_are_found_through_the_loopback_dns(receiving_world):
    world = receiving_world(w.google(domains=2), *w.long_tail(2))
    assert pp_dns.mx("workspace1.test").records[0][1] == "aspmx.l.google.com"
    assert pp_dns.addresses("aspmx.l.google.com").records == [world.providers["google"].address]
    assert pp_dns.addresses("mx.tail1.test").records == [world.providers["tail1"].address]
    assert len({p.address for p in world.providers.values()}) == 3


def test_connections_beyond_the_cap_per_client_address_are_refused(receiving_world):
    world = receiving_world(w.google(max_connections=2, require_tls=False))
    first, second = connect(world, "google"), connect(world, "google")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        connect(world, "google")
    assert refused.value.smtp_code == 421 and b"Too many connections" in refused.value.smtp_error
    other = connect(world, "google", source="127.0.0.9")  # another client address has its own cap
    for client in (first, second, other):
        client.quit()
    time.sleep(0.1)
    assert world.log.max_concurrent("google") == 2
    assert [c.client for c in world.log.connections if c.refused] == ["127.0.0.1"]


def test_a_connection_carries_at_most_its_messages_then_421(receiving_world):
    world = receiving_world(w.yahoo(max_messages_per_connection=2))
    client = connect(world, "yahoo")
    assert [send(client, "a@yahoo.test"), send(client, "b@yahoo.test")] == [250, 250]
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.mail("a@acme.test") and client.rcpt("c@yahoo.test")
    assert world.log.replies_matching("421 4.7.0 Too many messages on this connection")
    assert world.log.max_messages_per_connection("yahoo") == 2


def test_over_the_rate_the_provider_throttles_for_the_penalty(receiving_world):
    world = receiving_world(w.google(rate_per_minute=2, require_tls=False, penalty_seconds=60))
    client = connect(world, "google")
    assert send(client) == 250 and send(client) == 250
    assert client.mail("a@acme.test")[0] == 250
    text = client.rcpt("y@gmail.test")
    assert text[0] == 421 and b"4.7.28" in text[1] and b"temporarily rate limited" in text[1]
    # The penalty holds on a fresh connection too.
    again = connect(world, "google")
    assert again.mail("a@acme.test")[0] == 421
    assert world.log.max_per_minute("google") == 2


def test_greylisting_refuses_the_first_try_of_a_triplet_then_accepts(receiving_world):
    world = receiving_world(w.microsoft(greylist_seconds=0.3))
    client = connect(world, "microsoft")
    assert send(client, "jane@outlook.test") == 451
    assert send(client, "jane@outlook.test") == 451  # still inside the delay
    time.sleep(0.35)
    assert send(client, "jane@outlook.test") == 250
    assert world.log.replies_matching("451 4.7.1 Greylisted")


def test_starttls_required_and_recorded_with_its_version(receiving_world):
    world = receiving_world(w.google())
    plain = connect(world, "google")
    code, text = plain.mail("a@acme.test")
    assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first")
    secure = connect(world, "google", tls=True)
    assert send(secure) == 250
    secure.quit()
    (transaction,) = world.log.accepted("google")
    assert transaction.tls
    assert [(c.tls, c.tls_version) for c in world.log.connections] == [(False, ""), (True, "TLSv1.3")]
    assert world.log.plaintext_transactions("google") == []


def test_reputation_and_authentication_blocks_for_chosen_senders(receiving_world):
    world = receiving_world(
        Provider(
            "hotmail",
            ["mx.hotmail.test"],
            ["hotmail.test"],
            reputation_blocked={"spammy.test"},
            auth_blocked={"nodkim@acme.test"},
        )
    )
    client = connect(world, "hotmail")
    code, text = client.mail("a@spammy.test")
    assert code == 550 and b"5.7.1" in text and b"very low reputation" in text
    code, text = client.mail("nodkim@acme.test")
    assert code == 550 and text.startswith(b"5.7.515")
    assert send(client, "x@hotmail.test", sender="fine@acme.test") == 250


def test_random_failures_are_seeded(receiving_world):
    def codes(seed):
        world = receiving_world(
            Provider(f"r{seed}", ["mx.r.test"], ["r.test"], tempfail_rate=0.3, permfail_rate=0.2), seed=seed
        )
        client = connect(world, f"r{seed}")
        result = [send(client, f"u{i}@r.test") for i in range(20)]
        client.quit()
        world.stop()
        return result

    first = codes(7)
    assert set(first) == {250, 451, 550}
    assert codes(7) == first


def test_the_recipient_mix_is_weighted_and_spreads_over_shared_mx_domains(receiving_world):
    world = receiving_world(*w.realistic(tail=10))
    recipients = world.recipients(5000)
    share = {name: sum(1 for r in recipients if world.provider_of(r) == name) / 5000 for name in world.providers}
    assert 0.64 < share["google"] < 0.70 and 0.07 < share["microsoft"] < 0.11 and 0.045 < share["yahoo"] < 0.075
    assert 0.15 < sum(v for k, v in share.items() if k.startswith("tail")) < 0.21
    google_domains = {r.rpartition("@")[2] for r in recipients if world.provider_of(r) == "google"}
    assert len(google_domains) > 20  # many domains, one provider's MX hosts
