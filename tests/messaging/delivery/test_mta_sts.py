"""MTA-STS (RFC 8461) for direct-to-MX delivery, against the receiving world and its loopback policy server."""

import pytest

from messaging.delivery.services import deliver_messages
from messaging.models import Message, MessageEvent
from pufferpost import mta_sts
from pufferpost.localdev import world as w
from tests.messaging.delivery.pipeline import make_sendable


@pytest.fixture
def sendable(settings, dns, workspace):
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns)


@pytest.fixture
def sts_world(receiving_world, settings):
    """A world of two small receivers whose MTA-STS policies the platform fetches from loopback."""

    def start(*providers):
        world = receiving_world(*(providers or w.long_tail(2)))
        settings.PUFFERPOST_MTA_STS_PORT = world.policy_port
        return world

    return start


def status(message) -> str:
    return Message.objects.get(pk=message.pk).status


def sent_tls(message) -> dict:
    return MessageEvent.objects.get(message_id=message.pk, type="sent").detail["tls"]


def deferrals(message) -> list[dict]:
    return [e.detail for e in MessageEvent.objects.filter(message_id=message.pk, type="deferred").order_by("id")]


# -- the policy text and the TXT record, strictly --


def test_a_policy_is_parsed_strictly():
    policy = mta_sts.policy_parse(
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"
        "extension: ignored\r\n"
    )
    assert (policy.mode, policy.mx, policy.max_age) == ("enforce", ("mail.example.com", "*.example.net"), 604800)
    assert mta_sts.policy_parse("version: STSv1\nmode: none\nmax_age: 0\n").mode == "none"  # LF alone is fine
    for text, fault in [
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 60\n", "version"),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 60\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 60\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 60\n", "twice"),
        ("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 60\n", "mx pattern"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 60\n<html>\n", "key: value"),
        ("<html><body>Not found</body></html>", "key: value"),
    ]:
        with pytest.raises(mta_sts.PolicyError, match=fault):
            mta_sts.policy_parse(text)


def test_a_wildcard_stands_for_exactly_one_leftmost_label():
    policy = mta_sts.Policy("enforce", ("*.mail.example.com", "mx.example.org"), 60)
    assert policy.matches("mx1.mail.example.com") and policy.matches("MX1.Mail.Example.com.")
    assert not policy.matches("mail.example.com")
    assert not policy.matches("a.b.mail.example.com")
    assert policy.matches("mx.example.org") and not policy.matches("a.mx.example.org")


def test_the_txt_record_must_be_one_stsv1_record_with_an_id(dns, settings):
    dns.publish("_mta-sts.one.test", "TXT", "v=STSv1; id=20261201T1")
    dns.publish("_mta-sts.two.test", "TXT", "v=STSv1; id=a")
    dns.publish("_mta-sts.two.test", "TXT", "v=STSv1; id=b")
    dns.publish("_mta-sts.bad.test", "TXT", "v=STSv1; id=not-alnum!")
    assert mta_sts.txt_id("one.test") == ("20261201T1", "")
    assert mta_sts.txt_id("none.test") == (None, "")
    assert mta_sts.txt_id("two.test")[0] is None and "exactly one" in mta_sts.txt_id("two.test")[1]
    assert mta_sts.txt_id("bad.test")[0] is None and "no valid" in mta_sts.txt_id("bad.test")[1]


def test_the_policy_fetch_obeys_the_address_policy(sts_world, sendable, settings):
    world = sts_world()
    world.mta_sts("tail0.test", mode="enforce")
    settings.PUFFERPOST_SMTP_ALLOW_PRIVATE = False  # production: the policy host resolves to loopback
    found = mta_sts.lookup("tail0.test")
    assert found.policy is None and "private or reserved" in found.error
    assert world.policy_server.requests == []  # never connected


# -- delivery under a policy --


def test_enforce_with_a_matching_mx_delivers_over_verified_tls(db, sts_world, sendable):
    world = sts_world()
    world.mta_sts("tail0.test", mode="enforce", mx=["*.tail0.test"], policy_id="20261201")
    message = sendable.message(to="jane@tail0.test")
    deliver_messages(message_ids=[message.pk])
    assert status(message) == "delivered"
    tls = sent_tls(message)
    assert tls["used"] and tls["verified"] and tls["version"].startswith("TLSv1")
    assert tls["mta_sts"] == {
        "mode": "enforce",
        "id": "20261201",
        "source": "fetched",
        "mx_match": True,
        "tls_verified": True,
    }
    (connection,) = world.log.connections
    assert connection.tls and connection.provider == "tail0"
    assert all(t.tls for t in world.log.accepted())
    assert [r[:2] for r in world.policy_server.requests] == [("tail0.test", "/.well-known/mta-sts.txt")]

    again = sendable.message(to="joe@tail0.test")  # the cached policy: no second fetch
    deliver_messages(message_ids=[again.pk])
    assert sent_tls(again)["mta_sts"]["source"] == "cache"
    assert len(world.policy_server.requests) == 1


def test_enforce_with_a_mismatched_mx_defers_without_connecting(db, sts_world, sendable):
    world = sts_world()
    world.mta_sts("tail0.test", mode="enforce", mx=["mx.elsewhere.test", "*.other.test"])
    message = sendable.message(to="jane@tail0.test")
    other = sendable.message(to="joe@tail1.test")
    deliver_messages(message_ids=[message.pk, other.pk])
    assert status(message) == "queued" and status(other) == "delivered"
    (deferred,) = deferrals(message)
    assert deferred["rule"] == "mta-sts:mx_mismatch"
    assert "enforce" in deferred["response"] and "mx.tail0.test" in deferred["response"]
    assert [c for c in world.log.connections if c.provider == "tail0"] == []  # no connection, no plaintext
    assert world.log.accepted("tail0") == []


def test_enforce_never_falls_back_to_plaintext(db, sts_world, sendable):
    world = sts_world(w.Provider("plain", ["mx.plain.test"], ["plain.test"], tls=False))
    world.mta_sts("plain.test", mode="enforce")
    message = sendable.message(to="jane@plain.test")
    deliver_messages(message_ids=[message.pk])
    assert status(message) == "queued"
    (deferred,) = deferrals(message)
    assert deferred["rule"] == "mta-sts:starttls" and "STARTTLS" in deferred["response"]
    assert world.log.accepted("plain") == [] and world.log.plaintext_transactions("plain") == []


def test_enforce_refuses_a_certificate_that_does_not_verify(db, sts_world, sendable, settings, tmp_path):
    world = sts_world()
    world.mta_sts("tail0.test", mode="enforce")
    assert mta_sts.lookup("tail0.test").enforced  # fetched and cached while the CA was trusted
    other_ca = w.TestCA(tmp_path / "other-ca")
    settings.PUFFERPOST_TLS_CA_FILE = str(other_ca.ca_file)  # the MX's certificate no longer verifies
    message = sendable.message(to="jane@tail0.test")
    deliver_messages(message_ids=[message.pk])
    assert status(message) == "queued"
    (deferred,) = deferrals(message)
    assert deferred["rule"] == "mta-sts:certificate" and "did not verify" in deferred["response"]
    assert world.log.accepted("tail0") == []


def test_testing_mode_delivers_and_records_the_failure(db, sts_world, sendable):
    world = sts_world()
    world.mta_sts("tail0.test", mode="testing", mx=["*.other.test"], policy_id="t1")
    message = sendable.message(to="jane@tail0.test")
    deliver_messages(message_ids=[message.pk])
    assert status(message) == "delivered"
    record = sent_tls(message)["mta_sts"]
    assert record["mode"] == "testing" and record["mx_match"] is False and record["tls_verified"] is True
    assert "mx.tail0.test matches none of the policy's mx patterns" in record["failure"]
    assert len(world.log.accepted("tail0")) == 1


def test_a_cached_policy_stays_in_force_when_the_policy_server_is_down(db, sts_world, sendable, dns):
    world = sts_world(w.Provider("plain", ["mx.plain.test"], ["plain.test"], tls=False), *w.long_tail(1))
    world.mta_sts("tail0.test", mode="enforce", policy_id="v1")
    world.mta_sts("plain.test", mode="enforce", policy_id="v1")
    first = sendable.message(to="a@tail0.test")
    deliver_messages(message_ids=[first.pk])
    assert status(first) == "delivered"
    assert mta_sts.lookup("plain.test").enforced  # cached too

    world.policy_server.stop()
    world.mta_sts("tail0.test", mode="enforce", policy_id="v2")  # a new id: the fetch is tried and fails
    dns.remove("_mta-sts.plain.test", "TXT")  # the TXT record gone: the cached policy still holds
    later = sendable.message(to="b@tail0.test")
    plain = sendable.message(to="c@plain.test")
    deliver_messages(message_ids=[later.pk, plain.pk])
    assert status(later) == "delivered"
    record = sent_tls(later)["mta_sts"]
    assert (record["mode"], record["id"], record["source"]) == ("enforce", "v1", "cache")
    assert "id v2" in record["refresh_error"] and "could not connect" in record["refresh_error"]
    # Still enforced for the domain whose TXT record vanished: no plaintext to its MX.
    assert status(plain) == "queued" and deferrals(plain)[0]["rule"] == "mta-sts:starttls"
    assert world.log.plaintext_transactions("plain") == []


@pytest.mark.parametrize(
    ("serve", "reason"),
    [
        ({"body": "version: STSv1\nmode: maybe\nmx: mx.tail0.test\nmax_age: 60\n"}, "mode must be"),
        ({"body": "moved", "status": 301, "headers": {"Location": "https://evil.test/p"}}, "HTTP 301"),
        ({"body": "version: STSv1\n" + "x: y\n" * 20_000}, "larger than 64 KiB"),
        ({"body": w.sts_policy("enforce", ["mx.tail0.test"]), "content_type": "text/html"}, "not text/plain"),
        ({"body": b"version: STSv1\nmode: enforce\nmx: \xff\nmax_age: 60\n"}, "not UTF-8"),
    ],
)
def test_a_bad_policy_means_no_policy_with_the_reason_recorded(db, sts_world, sendable, serve, reason):
    world = sts_world()
    world.mta_sts("tail0.test", policy_id="bad", **serve)
    message = sendable.message(to="jane@tail0.test")
    deliver_messages(message_ids=[message.pk])
    assert status(message) == "delivered"
    record = sent_tls(message)["mta_sts"]
    assert record["mode"] == "none" and reason in record["error"] and "id bad" in record["error"]
    assert len(world.policy_server.requests) == 1  # the redirect was not followed
