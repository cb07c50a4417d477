"""#11 item 5: a real Postfix as the receiving MX, and its own DSNs back through `run_inbound_smtp`.

PufferPost delivers (in-process, as a worker does) to the MX of relay.test, which the loopback DNS
points at a private Postfix instance (tests/messaging/feedback/postfix.py). Postfix:

- rejects at RCPT: an address not in its relay recipient table gets its own `550 5.1.1 … User
  unknown in relay recipient table`, an address in its access map `550 5.7.1 … refused by policy`;
- accepts and relays to the next hop (an aiosmtpd server on loopback), which refuses some
  recipients for good (550 5.1.1, 550 5.7.1): Postfix then writes "Undelivered Mail Returned to
  Sender" itself;
- accepts a recipient the next hop keeps deferring (451): Postfix warns ("Delayed Mail", Action
  delayed) and, its queue lifetime set to seconds, returns it as expired (Action failed, 4.2.1).

Postfix's own smtp client delivers those DSNs to the return path's domain, which its transport map
sends to `manage.py run_inbound_smtp` (a real process). Every wait is bounded and polls.
"""

import time

import pytest

from messaging.delivery.services import deliver_messages
from messaging.models import DeliveryAttempt, Message, MessageEvent, Suppression
from messaging.return_path import message_id_from_return_path
from tests.messaging.delivery.conftest import SmtpSink
from tests.messaging.delivery.pipeline import make_sendable, publish_routes
from tests.messaging.feedback.postfix import PrivatePostfix, free_port

pytestmark = pytest.mark.e2e

DOMAIN = "relay.test"
RETURN_PATH_DOMAIN = "bounces.platform.test"
POSTFIX_HOST = "mx.postfix.test"

UNKNOWN = f"nosuch@{DOMAIN}"  # Postfix: not in its relay recipient table → 550 5.1.1 at RCPT
POLICY = f"blocked@{DOMAIN}"  # Postfix: its access map → 550 5.7.1 at RCPT
GONE = f"gone@{DOMAIN}"  # accepted; the next hop says 550 5.1.1 → Postfix's DSN
REFUSED = f"refused@{DOMAIN}"  # accepted; the next hop says 550 5.7.1 (a blocklist) → Postfix's DSN
SLOW = f"slow@{DOMAIN}"  # accepted; the next hop says 451 until Postfix's queue lifetime ends
FINE = f"ok@{DOMAIN}"  # accepted and relayed

BLOCKLIST = "550 5.7.1 Service unavailable; client [127.0.0.1] blocked using zen.spamhaus.org"


def wait_until(check, what: str, timeout: float, *, postfix: PrivatePostfix, inbound):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}\n--- postfix log:\n{postfix.log()}"
                f"\n--- run_inbound_smtp log:\n{inbound.log()}"
            )
        time.sleep(0.25)


@pytest.fixture
def world(settings, processes, dns, workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 10.0
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = RETURN_PATH_DOMAIN
    settings.PUFFERPOST_DELIVERY_FLUSH_EVERY = 1  # each outcome recorded right after its send

    next_hop = SmtpSink().start()
    next_hop.refuse(GONE)
    next_hop.reply(REFUSED, BLOCKLIST)
    next_hop.defer(SLOW)

    inbound_port = free_port()
    inbound = processes.command(
        "inbound", "run_inbound_smtp", "--port", str(inbound_port), PUFFERPOST_RETURN_PATH_DOMAIN=RETURN_PATH_DOMAIN
    )
    inbound.wait_for_log(f"listening on 127.0.0.1:{inbound_port}")

    postfix = PrivatePostfix(
        relay_domains=[DOMAIN],
        recipients=[GONE, REFUSED, SLOW, FINE, POLICY],
        recipient_access={POLICY: "REJECT Message refused by local policy"},
        transports={
            DOMAIN: f"smtp:[127.0.0.1]:{next_hop.port}",
            RETURN_PATH_DOMAIN: f"smtp:[127.0.0.1]:{inbound_port}",
        },
        hostname=POSTFIX_HOST,
        queue_lifetime=8,
        delay_warning=1,
    )
    try:
        postfix.start()
        # PufferPost finds Postfix as relay.test's MX through the loopback DNS.
        settings.PUFFERPOST_SMTP_PORT = postfix.port
        sendable = make_sendable(workspace, dns)
        publish_routes(dns, DOMAIN)
        yield type("World", (), {"postfix": postfix, "inbound": inbound, "next_hop": next_hop, "sendable": sendable})
    finally:
        postfix.stop()
        next_hop.stop()
    assert postfix.base is None


def send(world, *recipients) -> dict[str, str]:
    messages = {to: world.sendable.message(to=to).pk for to in recipients}
    deliver_messages(message_ids=list(messages.values()))
    return messages


def times(message_id):
    return list(
        MessageEvent.objects.filter(message_id=message_id)
        .order_by("occurred_at", "recorded_at", "id")
        .values_list("type", "occurred_at", "recorded_at")
    )


def events(message_id) -> list[tuple[str, str | None]]:
    return list(
        MessageEvent.objects.filter(message_id=message_id)
        .order_by("occurred_at", "recorded_at", "id")
        .values_list("type", "detail__bounce_class")
    )


def suppressed(workspace) -> set[str]:
    return set(Suppression.objects.filter(workspace=workspace).values_list("email", flat=True))


def status(message_id) -> str:
    return Message.objects.get(pk=message_id).status


def test_postfix_rejecting_at_rcpt_is_a_hard_bounce_or_a_block(world, workspace):
    ids = send(world, UNKNOWN, POLICY)

    assert (status(ids[UNKNOWN]), status(ids[POLICY])) == ("bounced", "bounced")
    hard = MessageEvent.objects.get(message_id=ids[UNKNOWN], type="bounced").detail
    assert (hard["bounce_class"], hard["basic_code"], hard["enhanced_code"]) == ("hard", 550, "5.1.1")
    assert "User unknown in relay recipient table" in hard["diagnostic"]
    block = MessageEvent.objects.get(message_id=ids[POLICY], type="bounced").detail
    assert (block["bounce_class"], block["basic_code"], block["enhanced_code"]) == ("block", 550, "5.7.1")
    assert "refused by local policy" in block["diagnostic"]
    assert suppressed(workspace) == {UNKNOWN}
    # Postfix logged the rejects itself: these answers are its own, not a script's.
    world.postfix.wait_for_log(f"reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 <{UNKNOWN}>", timeout=10)
    world.postfix.wait_for_log(f"reject: RCPT from unknown[127.0.0.1]: 550 5.7.1 <{POLICY}>", timeout=10)
    assert world.next_hop.received == []


def test_postfix_accepting_then_bouncing_sends_its_dsns_home_hard_suppresses_block_does_not(world, workspace):
    ids = send(world, GONE, REFUSED, FINE)
    # Postfix took all three at DATA ("250 2.0.0 Ok: queued as …" in its own words).
    for pk in ids.values():
        (attempt,) = DeliveryAttempt.objects.filter(message_id=pk)
        assert attempt.response.startswith("250 2.0.0 Ok: queued as "), attempt.response

    wait = {"postfix": world.postfix, "inbound": world.inbound, "timeout": 90}
    wait_until(lambda: status(ids[GONE]) == "bounced", "the hard DSN to bounce its message", **wait)
    wait_until(lambda: status(ids[REFUSED]) == "bounced", "the block DSN to bounce its message", **wait)

    # A relay this fast can bounce before the worker recorded the delivery (its outcomes are
    # written after the send): then the timeline holds no `delivered`, but never one after the bounce.
    for pk, bounce_class in ((ids[GONE], "hard"), (ids[REFUSED], "block")):
        timeline = events(pk)
        assert timeline[:2] == [("accepted", None), ("queued", None)] and timeline[-1] == ("bounced", bounce_class)
        assert set(timeline[2:-1]) <= {("sent", None), ("delivered", None)}
    hard = MessageEvent.objects.get(message_id=ids[GONE], type="bounced").detail
    assert (hard["enhanced_code"], hard["reporting_mta"]) == ("5.1.1", POSTFIX_HOST)
    block = MessageEvent.objects.get(message_id=ids[REFUSED], type="bounced").detail
    assert block["enhanced_code"] == "5.7.1" and "zen.spamhaus.org" in block["diagnostic"]
    assert suppressed(workspace) == {GONE}
    assert status(ids[FINE]) == "delivered"
    assert [r.rcpt_tos for r in world.next_hop.received] == [[FINE]]

    # The DSNs are Postfix's own, written by its bounce daemon and sent by its smtp client, to the
    # VERP return path of each message.
    line = world.postfix.wait_for_log("sender non-delivery notification", timeout=10)
    assert "postfix/bounce" in line
    delivered_home = [
        entry
        for entry in world.postfix.log().splitlines()
        if "status=sent" in entry and f"@{RETURN_PATH_DOMAIN}>" in entry
    ]
    assert len(delivered_home) == 2, world.postfix.log()
    homes = {message_id_from_return_path(entry.split("to=<", 1)[1].split(">", 1)[0]) for entry in delivered_home}
    assert homes == {ids[GONE], ids[REFUSED]}


def test_postfix_delaying_then_expiring_is_a_deferred_event_then_an_expired_bounce(world, workspace):
    ids = send(world, SLOW)
    message_id = ids[SLOW]
    assert status(message_id) == "delivered"

    wait = {"postfix": world.postfix, "inbound": world.inbound, "timeout": 120}
    wait_until(
        lambda: MessageEvent.objects.filter(message_id=message_id, type="deferred").exists(),
        "Postfix's delay warning to record a deferred event",
        **wait,
    )
    wait_until(lambda: status(message_id) == "bounced", "Postfix's expiry DSN to bounce the message", **wait)

    assert events(message_id) == [
        ("accepted", None),
        ("queued", None),
        ("sent", None),
        ("delivered", None),
        ("deferred", "soft"),
        ("bounced", "expired"),
    ], times(message_id)
    deferred = MessageEvent.objects.get(message_id=message_id, type="deferred").detail
    assert deferred["enhanced_code"] == "4.2.1"
    expired = MessageEvent.objects.get(message_id=message_id, type="bounced").detail
    assert (expired["bounce_class"], expired["enhanced_code"]) == ("expired", "4.2.1")
    assert expired["reporting_mta"] == POSTFIX_HOST
    assert Message.objects.get(pk=message_id).bounce_class == "expired"
    assert suppressed(workspace) == set()  # a first expiry suppresses nobody
    world.postfix.wait_for_log("status=expired, returned to sender", timeout=10)
