"""Shaping, backoff and TLS policy, proven against the receiving world (what it logged, not only outcomes)."""

import html
import json
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.db import connection as db_connection
from django.utils import timezone

from messaging.delivery.services import deliver_due_messages, deliver_messages
from messaging.models import Message, MessageContent, MessageEvent
from pufferpost import shaping
from pufferpost.localdev import world as w
from pufferpost.shaping import Limits, Shaper
from tests.messaging.delivery.pipeline import FROM, make_sendable


@pytest.fixture
def sendable(settings, dns, workspace):
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns)


@pytest.fixture
def shaping_file(settings, tmp_path):
    def write(data: dict):
        path = tmp_path / f"shaping-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(data))
        settings.PUFFERPOST_SHAPING_FILE = str(path)
        return path

    return write


def statuses(messages) -> list[str]:
    return [Message.objects.get(pk=m.pk).status for m in messages]


def make_due(messages) -> None:
    Message.objects.filter(pk__in=[m.pk for m in messages], status="queued").update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def deliver_until_settled(messages, *, rounds=30) -> None:
    """Retry what is still queued, as the countdowns would, until nothing is (bounded)."""
    for _ in range(rounds):
        queued = [m.pk for m in messages if Message.objects.get(pk=m.pk).status == "queued"]
        if not queued:
            return
        time.sleep(0.2)
        make_due(messages)
        deliver_due_messages(message_ids=queued)


def events(message, kind="deferred"):
    return list(MessageEvent.objects.filter(message_id=message.pk, type=kind).order_by("occurred_at", "id"))


# -- the policy --


def test_destinations_are_mx_rollups_with_presets_and_a_default():
    policy = shaping.Policy()
    assert policy.destination(["aspmx.l.google.com", "alt1.aspmx.l.google.com"]) == (
        "google",
        Limits(5, 50, tls_required=True),
    )
    assert policy.destination(["contoso-com.mail.protection.outlook.com"])[0] == "microsoft"
    assert policy.destination(["mta5.am0.yahoodns.net"]) == ("yahoo", Limits(10, 20))
    assert policy.destination(["mx01.mail.icloud.com"]) == ("apple", Limits(10, 5))
    assert policy.destination(["mx.b.test", "mx.a.test"]) == ("mx/mx.a.test,mx.b.test", Limits(10, 100))
    assert policy.destination(["notgoogle.com"])[0] != "google"  # a suffix matches whole labels only


def test_operators_change_limits_and_patterns_in_a_file(shaping_file):
    shaping_file(
        {
            "destinations": {
                "google": {"connections": 3, "per_minute": 600, "burst": 4},
                "fastmail": {"mx_suffixes": ["messagingengine.com"], "connections": 4, "tls": "required"},
                "default": {"connections": 2, "per_hour": 1000},
            },
            "throttle_patterns": ["slow down"],
            "backoff": {"pause_seconds": 5},
        }
    )
    policy = shaping.policy()
    assert policy.destination(["aspmx.l.google.com"]) == ("google", Limits(3, 50, 600, None, True, burst=4))
    assert policy.destination(["aspmx.l.google.com"])[1].burst_size() == 4
    assert policy.destination(["mx.small.test"])[1].burst_size() == 1  # no rate: one at a time
    assert policy.destination(["in1-smtp.messagingengine.com"]) == ("fastmail", Limits(4, 100, None, None, True))
    assert policy.destination(["mx.small.test"])[1] == Limits(2, 100, None, 1000)
    assert policy.reaction(451, "4.7.0 please slow down")[0] == "throttle"
    assert policy.backoff.pause_seconds == 5


def test_throttle_and_greylist_replies_are_told_apart_from_mailbox_trouble():
    policy = shaping.Policy()
    assert policy.reaction(421, w.GOOGLE_THROTTLE.format(client="127.0.0.1"))[:2] == ("throttle", r"4\.7\.28")
    assert policy.reaction(451, "4.7.650 The mail server has been temporarily rate limited")[0] == "throttle"
    assert policy.reaction(421, "4.7.0 [TSS04] Messages temporarily deferred")[0] == "throttle"
    assert policy.reaction(421, "RP-001 (COL004) Unfortunately, some messages could not be delivered")[0] == "throttle"
    assert policy.reaction(451, "4.7.1 Greylisted, please try again in 30 seconds") == (
        "greylist",
        "greylist",
        30.0,
    )
    # One mailbox's trouble is not the sender's pace; a bounce is not a throttle.
    assert policy.reaction(451, "4.2.1 <a@b.test>: Mailbox temporarily unavailable, try again later") is None
    assert policy.reaction(550, "5.7.1 too many complaints") is None


# -- the counters --


def test_connection_slots_are_shared_and_a_dead_workers_slot_frees_after_its_lease(settings):
    settings.PUFFERPOST_SHAPING_LEASE = 0.5
    limits = Limits(connections=2)
    one, two = Shaper("127.0.0.5"), Shaper("127.0.0.5")  # two workers, one source address
    assert one.admit("google", limits, "a", new_connection=True).ok
    assert two.admit("google", limits, "b", new_connection=True).ok
    third = two.admit("google", limits, "c", new_connection=True)
    assert (third.ok, third.reason) == (False, "connections")
    assert Shaper("127.0.0.6").admit("google", limits, "d", new_connection=True).ok  # another source
    time.sleep(0.6)  # the workers holding "a" and "b" died
    assert two.admit("google", limits, "c", new_connection=True).ok


def test_messages_per_minute_are_paced_by_the_shared_budget():
    limits = Limits(per_minute=2)
    shaper = Shaper()
    assert shaper.admit("tail", limits, "a", new_connection=True).ok
    held = Shaper().admit("tail", limits, "b", new_connection=True)
    assert not held.ok and held.reason == "per_minute" and 25 < held.wait <= 30


def test_the_pacing_lets_a_seconds_worth_through_back_to_back():
    limits = Limits(per_minute=180)  # 3 a second: a burst of 3, then one every third of a second
    shaper = Shaper()
    assert [shaper.admit("tail", limits, "a", new_connection=False).ok for _ in range(3)] == [True] * 3
    held = shaper.admit("tail", limits, "a", new_connection=False)
    assert not held.ok and held.reason == "per_minute" and 0.2 < held.wait <= 0.34


def test_no_sliding_minute_holds_more_than_per_minute_whatever_the_burst():
    limits = Limits(per_minute=2, burst=5)  # the pacing alone would let five through
    shaper = Shaper()
    assert shaper.admit("tail", limits, "a", new_connection=False).ok
    assert shaper.admit("tail", limits, "a", new_connection=False).ok
    third = shaper.admit("tail", limits, "a", new_connection=False, ticket="msg_third")
    assert not third.ok and third.reason == "per_minute" and 59 < third.wait <= 60
    assert not shaper.probe("tail", limits, "msg_probe").ok  # a probe sees the cap too


def test_a_booked_message_back_late_keeps_its_slot(settings):
    assert settings.PUFFERPOST_SHAPING_BOOKING_LATE >= 60  # the default: a busy worker loses nothing
    limits = Limits(per_minute=60)  # one a second
    shaper = Shaper()
    assert shaper.admit("tail", limits, "a", new_connection=False).ok
    booked = shaper.admit("tail", limits, "a", new_connection=False, ticket="msg_late")
    assert not booked.ok and booked.reason == "per_minute" and 0.9 < booked.wait <= 1.0
    time.sleep(booked.wait + 2.5)  # its worker was busy: back 2.5 s after its slot
    back = shaper.admit("tail", limits, "a", new_connection=False, ticket="msg_late")
    assert (back.ok, back.reason) == (True, "booked")


def test_a_booked_message_back_after_the_lateness_asks_again(settings):
    settings.PUFFERPOST_SHAPING_BOOKING_LATE = 0.2
    limits = Limits(per_minute=60)
    shaper = Shaper()
    assert shaper.admit("tail", limits, "a", new_connection=False).ok
    booked = shaper.admit("tail", limits, "a", new_connection=False, ticket="msg_later")
    time.sleep(booked.wait + 0.5)
    back = shaper.admit("tail", limits, "a", new_connection=False, ticket="msg_later")
    assert back.reason != "booked"  # its slot was given up: it was paced afresh


def test_lost_redis_state_is_conservative_and_unreachable_redis_sends_nothing(settings, redis_client, closed_port):
    settings.PUFFERPOST_SHAPING_RECOVERY = 30
    limits = Limits(connections=5, per_minute=400)
    shaper = Shaper()
    first = shaper.admit("google", limits, "a", new_connection=True)
    assert (first.ok, first.reason) == (True, "recovering")
    second = shaper.admit("google", limits, "b", new_connection=True)
    assert (second.ok, second.reason) == (False, "connections")  # one connection until the state is rebuilt

    blind = Shaper()
    blind.client = redis.Redis(host="127.0.0.1", port=closed_port, socket_connect_timeout=0.5)
    blind._admit = blind.client.register_script(shaping._ADMIT)
    refused = blind.admit("google", limits, "c", new_connection=True)
    assert (refused.ok, refused.reason) == (False, "shaping_unavailable") and refused.wait > 0


# -- against the world --


def test_connection_caps_hold_across_concurrent_workers(transactional_db, sendable, receiving_world, shaping_file):
    world = receiving_world(w.google(domains=3, max_connections=2, data_delay=0.05), *w.long_tail(2))
    shaping_file({"destinations": {"google": {"connections": 2, "per_connection": 4}}})
    addresses = [f"u{i}@workspace{i % 3}.test" for i in range(24)] + ["a@tail0.test", "b@tail1.test"]
    messages = [sendable.message(to=a) for a in addresses]
    batches = [messages[i::4] for i in range(4)]

    def worker(batch):
        try:
            deliver_messages(message_ids=[m.pk for m in batch])
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    deliver_until_settled(messages)

    assert statuses(messages) == ["delivered"] * len(messages)
    assert world.log.max_concurrent("google") <= 2
    assert world.log.max_messages_per_connection("google") <= 4
    assert not world.log.replies_matching("Too many connections")
    waited = [e for m in messages for e in events(m) if e.detail.get("rule", "").startswith("shaping:")]
    assert waited and all(e.detail["destination"] == "google" for e in waited)


def test_a_throttle_backs_the_destination_off_and_the_long_tail_goes_on(db, sendable, receiving_world, shaping_file):
    world = receiving_world(w.google(domains=1, rate_per_minute=3, penalty_seconds=600), *w.long_tail(2))
    shaping_file({"backoff": {"pause_seconds": 600}})
    google = [sendable.message(to=f"g{i}@gmail.test") for i in range(8)]
    tail = [sendable.message(to=f"t{i}@tail{i % 2}.test") for i in range(4)]
    deliver_messages(message_ids=[m.pk for m in google + tail])

    assert statuses(google[:3]) == ["delivered"] * 3 and statuses(tail) == ["delivered"] * 4
    assert statuses(google[3:]) == ["queued"] * 5
    (throttled,) = events(google[3])
    assert throttled.detail["rule"] == r"throttle:4\.7\.28" and throttled.detail["code"] == 421
    assert throttled.detail["next_attempt_at"] > (timezone.now() + timedelta(seconds=500)).isoformat()
    (waiting,) = events(google[4])
    assert waiting.detail["rule"] == "shaping:backoff" and waiting.detail["destination"] == "google"
    throttled_at = world.log.replies_matching("4.7.28")[0].at

    make_due(google)  # even when due, the backoff holds: no new connection to the destination
    deliver_due_messages(message_ids=[m.pk for m in google[3:]])
    assert statuses(google[3:]) == ["queued"] * 5
    assert [c for c in world.log.connections if c.provider == "google" and c.started > throttled_at] == []
    assert len(world.log.replies_matching("4.7.28")) == 1


def test_deliveries_after_a_backoff_walk_it_back(db, sendable, receiving_world, shaping_file, redis_client):
    receiving_world(*w.long_tail(1))
    shaping_file({"backoff": {"pause_seconds": 0.3, "recovery_successes": 2, "per_minute": 600}})
    shaper = Shaper()
    destination = "mx/mx.tail0.test"
    backoff_key = shaper._keys(destination)[3]
    shaper.throttled(destination)  # a throttle reply, as another worker saw it
    time.sleep(0.4)  # the pause is over: one connection and the backoff rate until 2 deliveries
    messages = [sendable.message(to=f"u{i}@tail0.test") for i in range(2)]
    for message in messages:  # paced at the backoff's 600 a minute: one every 0.1 s
        deliver_messages(message_ids=[message.pk])
        assert redis_client.exists(backoff_key) == (message is messages[0])
        time.sleep(0.15)
    assert statuses(messages) == ["delivered", "delivered"]
    assert not redis_client.exists(backoff_key)  # walked back: full limits again
    assert shaper.admit(destination, Limits(), "lease", new_connection=True).reason == "ok"


def test_greylisted_mail_is_retried_after_the_greylist_delay(db, sendable, receiving_world):
    world = receiving_world(w.microsoft(domains=0, greylist_seconds=1))
    message = sendable.message(to="jane@outlook.test")
    deliver_messages(message_ids=[message.pk])
    (deferred,) = events(message)
    assert deferred.detail["rule"].startswith("greylist:")
    delay = (Message.objects.get(pk=message.pk).next_attempt_at - deferred.occurred_at).total_seconds()
    assert delay < 5  # the server's delay, not the generic backoff (minutes)
    time.sleep(1.1)
    make_due([message])
    deliver_due_messages(message_ids=[message.pk])
    assert statuses([message]) == ["delivered"]
    assert len(world.log.accepted("microsoft")) == 1


def test_tls_is_recorded_on_sent_and_required_destinations_never_get_plaintext(db, sendable, receiving_world):
    world = receiving_world(w.google(domains=0), w.Provider("plain", ["mx.plain.test"], ["plain.test"], tls=False))
    secure = sendable.message(to="jane@gmail.test")
    plain = sendable.message(to="joe@plain.test")
    deliver_messages(message_ids=[secure.pk, plain.pk])
    sent = MessageEvent.objects.get(message_id=secure.pk, type="sent")
    assert sent.detail["tls"] == {"used": True, "version": "TLSv1.3", "verified": True}
    assert MessageEvent.objects.get(message_id=plain.pk, type="sent").detail["tls"] == {
        "used": False,
        "version": "",
        "verified": False,
    }

    world.host_down("google")
    world.providers["google"].tls = False  # the Google-like destination stops offering STARTTLS
    world.host_up("google")
    later = sendable.message(to="ann@gmail.test")
    deliver_messages(message_ids=[later.pk])
    (deferred,) = events(later)
    assert deferred.detail["rule"] == "tls_required" and "STARTTLS" in deferred.detail["response"]
    assert world.log.plaintext_transactions("google") == []


def test_a_reputation_block_does_not_stop_the_rest_of_the_queue(db, sendable, receiving_world):
    world = receiving_world(
        w.google(domains=1, reputation_blocked={FROM.rpartition("@")[2]}), w.microsoft(domains=0), *w.long_tail(2)
    )
    blocked = [sendable.message(to=f"g{i}@gmail.test") for i in range(3)]
    rest = [
        sendable.message(to="m@outlook.test"),
        sendable.message(to="t@tail0.test"),
        sendable.message(to="u@tail1.test"),
    ]
    deliver_messages(message_ids=[m.pk for m in blocked + rest])
    assert statuses(blocked) == ["bounced"] * 3
    assert statuses(rest) == ["delivered"] * 3
    assert "very low reputation" in Message.objects.get(pk=blocked[0].pk).last_response
    assert len(world.log.accepted()) == 3


def test_an_unreachable_host_is_skipped_for_a_while(db, sendable, receiving_world, settings):
    world = receiving_world(*w.long_tail(2))
    world.host_down("tail0")
    first = sendable.message(to="a@tail0.test")
    deliver_messages(message_ids=[first.pk])
    assert events(first)[0].detail["rule"] == "unreachable"
    second = sendable.message(to="b@tail0.test")
    other = sendable.message(to="c@tail1.test")
    deliver_messages(message_ids=[second.pk, other.pk])
    (skipped,) = events(second)
    assert skipped.detail["rule"] == "circuit:hosts_down"
    assert statuses([other]) == ["delivered"]


def test_the_admin_shows_each_destinations_limits_and_state(admin_client, client, shaping_file):
    shaping_file({"destinations": {"google": {"connections": 3}}})
    shaper = Shaper("127.0.0.7")
    assert shaper.admit("google", Limits(connections=3), "lease-1", new_connection=True).ok
    shaper.throttled("google")
    page = admin_client.get("/admin/shaping/")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    row = next(line for line in text.split("<tr>") if "127.0.0.7" in line and ">google<" in line)
    assert '"connections": 3' in row and '"tls": "required"' in row
    assert "<td>1</td>" in row and '"paused_until": "20' in row
    assert client.get("/admin/shaping/").status_code == 302  # staff only


def test_egress_pools_bind_the_source_address_and_helo_and_budget_per_address(
    db, sendable, receiving_world, shaping_file, other_workspace
):
    world = receiving_world(w.google(domains=1, max_connections=1))
    shaping_file(
        {
            "destinations": {"google": {"connections": 1}},
            "pools": {
                "transactional": [
                    {"address": "127.0.0.2", "helo": "mta2.acme.test"},
                    {"address": "127.0.0.3", "helo": "mta3.acme.test"},
                ]
            },
            "workspaces": {sendable.workspace.id: "transactional"},
        }
    )
    messages = [sendable.message(to=f"g{i}@gmail.test") for i in range(12)]
    for message in messages:  # one batch each, as single sends arrive
        deliver_messages(message_ids=[message.pk])
    deliver_until_settled(messages)
    assert statuses(messages) == ["delivered"] * 12
    helo = {c.client: c.helo for c in world.log.connections if not c.refused}
    assert helo == {"127.0.0.2": "mta2.acme.test", "127.0.0.3": "mta3.acme.test"}
    assert {t.client for t in world.log.accepted("google")} == {"127.0.0.2", "127.0.0.3"}
    # Budgets are per source address: each address may hold Google's one connection.
    assert Shaper("127.0.0.2").admit("google", Limits(connections=1), "x", new_connection=True).ok
    assert Shaper("127.0.0.3").admit("google", Limits(connections=1), "y", new_connection=True).ok
    assert not Shaper("127.0.0.3").admit("google", Limits(connections=1), "z", new_connection=True).ok


def test_a_workspace_outside_every_pool_uses_the_hosts_default_address(db, sendable, receiving_world, shaping_file):
    world = receiving_world(*w.long_tail(1))
    shaping_file({"pools": {"p": ["127.0.0.4"]}, "workspaces": {"wsp_someone_else": "p"}})
    message = sendable.message(to="a@tail0.test")
    deliver_messages(message_ids=[message.pk])
    assert statuses([message]) == ["delivered"]
    assert [c.client for c in world.log.connections] == ["127.0.0.1"]


def test_a_paced_backlog_is_rescheduled_one_step_apart(db, sendable, receiving_world, shaping_file):
    receiving_world(*w.long_tail(1))
    shaping_file({"destinations": {"small": {"mx_suffixes": ["tail0.test"], "per_minute": 6}}})
    messages = [sendable.message(to=f"u{i}@tail0.test") for i in range(5)]
    deliver_messages(message_ids=[m.pk for m in messages])
    assert statuses(messages) == ["delivered"] + ["queued"] * 4
    due = sorted(Message.objects.get(pk=m.pk).next_attempt_at for m in messages[1:])
    gaps = [(b - a).total_seconds() for a, b in zip(due, due[1:], strict=False)]
    assert all(9.9 <= g <= 10.1 for g in gaps), gaps  # 6/min: each its own slot ten seconds on, not all at once


def test_a_paced_backlog_is_booked_one_schedule_across_workers_and_sent_at_its_slots(
    db, sendable, receiving_world, shaping_file, settings
):
    settings.PUFFERPOST_SHAPING_BOOKING_LATE = 30  # a loaded test machine may bring a message back late
    world = receiving_world(*w.long_tail(1))
    shaping_file({"destinations": {"small": {"mx_suffixes": ["tail0.test"], "per_minute": 15}}})
    first = [sendable.message(to=f"a{i}@tail0.test") for i in range(3)]
    second = [sendable.message(to=f"b{i}@tail0.test") for i in range(2)]
    deliver_messages(message_ids=[m.pk for m in first])  # two workers' batches, one budget
    deliver_messages(message_ids=[m.pk for m in second])
    messages = first + second
    assert statuses(messages).count("delivered") == 1
    waiting = sorted(
        (Message.objects.get(pk=m.pk) for m in messages if Message.objects.get(pk=m.pk).status == "queued"),
        key=lambda m: m.next_attempt_at,
    )
    gaps = [(b.next_attempt_at - a.next_attempt_at).total_seconds() for a, b in zip(waiting, waiting[1:], strict=False)]
    assert len(waiting) == 4 and all(3.9 <= g <= 4.1 for g in gaps), gaps  # one schedule: distinct slots 4 s apart
    for message in waiting:  # each comes back at its slot, as its countdown would bring it
        time.sleep(max(0.0, (message.next_attempt_at - timezone.now()).total_seconds()))
        deliver_due_messages(message_ids=[message.pk])
    assert statuses(messages) == ["delivered"] * 5
    # Booked once: one wait each, never turned away again (no re-claim, no re-render per second).
    assert all(len(events(m)) == 1 for m in waiting)
    assert all(events(m)[0].detail["rule"] == "shaping:per_minute" for m in waiting)
    assert len(world.log.accepted("tail0")) == 5 and world.log.max_per_minute("tail0") <= 16


def test_a_message_that_must_wait_is_not_built(db, sendable, receiving_world, shaping_file):
    receiving_world(*w.long_tail(1))
    shaping_file({"destinations": {"small": {"mx_suffixes": ["tail0.test"], "per_minute": 6}}})
    messages = [sendable.message(to=f"u{i}@tail0.test") for i in range(3)]
    deliver_messages(message_ids=[m.pk for m in messages])
    assert statuses(messages) == ["delivered", "queued", "queued"]
    # The budget was asked before rendering and signing: nothing was built for the waiting ones.
    assert [MessageContent.objects.filter(message_id=m.pk).exists() for m in messages] == [True, False, False]


def test_on_a_connection_already_open_a_message_asks_the_budget_once(
    db, sendable, receiving_world, shaping_file, monkeypatch
):
    world = receiving_world(*w.long_tail(1))
    shaping_file({"destinations": {"small": {"mx_suffixes": ["tail0.test"], "per_minute": 60, "burst": 3}}})
    asked = []
    ask = Shaper._ask

    def counted(self, destination, limits, lease, *, new_connection, ticket, probe):
        asked.append("probe" if probe else "admit, new connection" if new_connection else "admit")
        return ask(self, destination, limits, lease, new_connection=new_connection, ticket=ticket, probe=probe)

    monkeypatch.setattr(Shaper, "_ask", counted)
    messages = [sendable.message(to=f"u{i}@tail0.test") for i in range(5)]
    deliver_messages(message_ids=[m.pk for m in messages])
    # The first opens the connection (a probe, then its admission); each later one is admitted on
    # that connection by the probe itself. The burst of 3 holds: the fourth is booked a slot.
    assert asked == ["probe", "admit, new connection", "admit", "admit", "admit", "admit"]
    assert statuses(messages) == ["delivered"] * 3 + ["queued"] * 2
    assert len(world.log.accepted("tail0")) == 3
    assert [MessageContent.objects.filter(message_id=m.pk).exists() for m in messages] == [True] * 3 + [False] * 2
