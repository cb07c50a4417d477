"""`GET /v1/stats` against the events themselves: mail sent through the real API, delivered to a
loopback MX (live) and to the simulator (test key), then every count the endpoint answers is
compared with a count of the events table; plus the rollup's invariants, its rebuild, tenancy and
every bad input."""

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from rest_framework.test import APIClient

from messaging import lifecycle
from messaging.models import EventRollup, Message, MessageEvent
from messaging.rollup import event_rollup_rebuild
from messaging.stats import COUNT_KEYS
from pufferpost.services import api_key_create
from tests.factories import TemplateFactory, TemplateVersionFactory, WorkspaceFactory
from tests.helpers import assert_envelope, violations
from tests.messaging.delivery.conftest import SmtpSink
from tests.messaging.delivery.pipeline import FROM, make_sendable
from tests.messaging.factories import MessageFactory, UnsubscribeGroupFactory
from tests.senders.factories import ActiveSenderFactory

SIM = "sim.acme.test"


def key_client(workspace, *, livemode=True, scopes=None):
    client = APIClient()
    secret = api_key_create(workspace=workspace, livemode=livemode, scopes=scopes)[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def world(settings, dns, transactional_db, workspace):
    """A sendable workspace whose live mail reaches a loopback MX, with a live and a test key."""
    sink = SmtpSink().start()
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    settings.PUFFERPOST_SIMULATOR_DOMAIN = SIM
    setup = make_sendable(workspace, dns)
    setup.sink = sink
    setup.live = key_client(workspace)
    setup.test = key_client(workspace, livemode=False)
    setup.group = UnsubscribeGroupFactory(workspace=workspace, name="Receipts")
    other = TemplateFactory(workspace=workspace, name="Welcome", slug="welcome")
    TemplateVersionFactory(template=other, version=1, subject="Welcome", html="<p>Hi</p>", text="Hi")
    other.latest_version = 1
    other.save()
    setup.other_template = other
    yield setup
    sink.stop()


def send(world, client, to, *, template=None, group=None):
    body = {
        "from": FROM,
        "to": to,
        "templateId": (template or world.template).id,
        "data": {"name": "J", "order_id": "1"},
    }
    if group is not None:
        body["unsubscribeGroup"] = group.id
    response = client.post("/v1/messages", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def raw_counts(workspace, *, livemode, since=None, until=None, **message_filters) -> dict[str, int]:
    """The same counts straight from the events table (no rollup involved)."""
    events = MessageEvent.objects.filter(workspace=workspace, message__livemode=livemode)
    if since is not None:
        events = events.filter(occurred_at__gte=since, occurred_at__lt=until)
    events = events.filter(**{f"message__{name}": value for name, value in message_filters.items()})
    counts = dict.fromkeys(COUNT_KEYS, 0)
    for row in events.values("type").annotate(n=Count("id")):
        counts[row["type"]] = row["n"]
    counts["blocked"] = events.filter(type="bounced", message__bounce_class="block").count()
    return counts


def stats(client, **params):
    response = client.get("/v1/stats", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_stats_equal_the_counts_of_the_events_table_for_live_and_test_mail(world):
    # Live: three delivered (two in the group, one with another template), one refused by the MX.
    world.sink.refuse("gone@example.com")
    live_ids = [
        send(world, world.live, "jane@example.com", group=world.group),
        send(world, world.live, "joe@example.com", group=world.group),
        send(world, world.live, "ann@example.org", template=world.other_template),
        send(world, world.live, "gone@example.com"),
    ]
    # Test mode: every simulator outcome.
    for local in ("delivered", "bounced", "blocked", "complained", "unsubscribed", "deferred"):
        send(world, world.test, f"{local}@{SIM}", group=world.group if local == "complained" else None)
    assert Message.objects.filter(pk__in=live_ids, status="delivered").count() == 3
    assert Message.objects.get(to="gone@example.com").status == "bounced"

    for client, livemode in ((world.live, True), (world.test, False)):
        body = stats(client, interval="hour")
        assert body["totals"]["counts"] == raw_counts(world.workspace, livemode=livemode)
        assert sum(bucket["counts"]["accepted"] for bucket in body["data"]) == (4 if livemode else 6)
        for bucket in body["data"]:
            start, end = datetime.fromisoformat(bucket["start"]), datetime.fromisoformat(bucket["end"])
            assert bucket["counts"] == raw_counts(world.workspace, livemode=livemode, since=start, until=end)

    live = stats(world.live)["totals"]
    assert live["counts"]["delivered"] == 3 and live["counts"]["bounced"] == 1 and live["counts"]["blocked"] == 0
    assert live["rates"] == {"delivery_rate": 0.75, "bounce_rate": 0.25, "block_rate": 0.0, "complaint_rate": 0.0}
    test = stats(world.test)["totals"]
    # delivered@, complained@ and unsubscribed@ were delivered; bounced@ and blocked@ bounced.
    assert (test["counts"]["delivered"], test["counts"]["bounced"], test["counts"]["blocked"]) == (3, 2, 1)
    assert test["counts"]["complained"] == 1 and test["counts"]["deferred"] >= 1
    assert test["rates"] == {"delivery_rate": 0.6, "bounce_rate": 0.2, "block_rate": 0.2, "complaint_rate": 0.3333}


def test_each_filter_counts_only_its_mail(world):
    send(world, world.live, "jane@example.com", group=world.group)
    send(world, world.live, "ann@example.org", template=world.other_template)
    send(world, world.live, "joe@example.com")
    other_sender = ActiveSenderFactory(workspace=world.workspace, from_address="news@mail.acme.test")

    cases = [
        ({"senderId": world.sender.id}, {"sender_id": world.sender.id}),
        ({"senderId": other_sender.id}, {"sender_id": other_sender.id}),
        ({"templateId": world.template.id}, {"template_id": world.template.id}),
        ({"templateId": world.other_template.id}, {"template_id": world.other_template.id}),
        ({"unsubscribeGroupId": world.group.id}, {"unsubscribe_group_id": world.group.id}),
        (
            {"templateId": world.template.id, "unsubscribeGroupId": world.group.id},
            {"template_id": world.template.id, "unsubscribe_group_id": world.group.id},
        ),
    ]
    for params, message_filters in cases:
        body = stats(world.live, **params)
        assert body["totals"]["counts"] == raw_counts(world.workspace, livemode=True, **message_filters), params
        assert body["filters"] == {
            "sender_id": params.get("senderId"),
            "template_id": params.get("templateId"),
            "unsubscribe_group_id": params.get("unsubscribeGroupId"),
        }
    assert stats(world.live, unsubscribeGroupId=world.group.id)["totals"]["counts"]["accepted"] == 1
    assert stats(world.live, senderId=other_sender.id)["totals"]["counts"]["accepted"] == 0


def test_another_workspace_sees_none_of_it_and_cannot_name_its_ids(world, other_workspace):
    send(world, world.live, "jane@example.com", group=world.group)
    outsider = key_client(other_workspace, scopes=["messages:read"])

    body = stats(outsider)
    assert set(body["totals"]["counts"].values()) == {0}
    for param, value, code in (
        ("senderId", world.sender.id, "sender_not_found"),
        ("templateId", world.template.id, "template_not_found"),
        ("unsubscribeGroupId", world.group.id, "unsubscribe_group_not_found"),
    ):
        theirs = assert_envelope(outsider.get("/v1/stats", {param: value}), 422, "validation_failed")
        unknown = assert_envelope(outsider.get("/v1/stats", {param: value[:4] + "0" * 26}), 422, "validation_failed")
        assert violations(theirs) == violations(unknown) == {(param, code)}
        assert theirs["violations"][0]["message"] == unknown["violations"][0]["message"]


def test_stats_need_the_messages_read_scope(world):
    assert_envelope(key_client(world.workspace, scopes=["senders:read"]).get("/v1/stats"), 403, "missing_scope")
    assert_envelope(APIClient().get("/v1/stats"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"interval": "week"}, "interval", "invalid_choice"),
        ({"from": "yesterday"}, "from", "invalid_timestamp"),
        ({"to": "2026-13-01T00:00:00Z"}, "to", "invalid_timestamp"),
        ({"from": "2026-12-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to", "invalid_range"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to", "invalid_range"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to", "range_too_long"),
        (
            {"from": "2026-09-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "interval": "hour"},
            "interval",
            "too_many_buckets",
        ),
        ({"timezone": "Mars/Olympus"}, "timezone", "invalid_timezone"),
        ({"timezone": "localtime"}, "timezone", "invalid_timezone"),
        ({"timezone": "Asia/Kolkata"}, "timezone", "unsupported_timezone"),
        # Lord Howe is +10:30 in the southern winter, +11 in summer: refused for June, taken for December.
        (
            {"timezone": "Australia/Lord_Howe", "from": "2026-06-01T00:00:00Z", "to": "2026-06-10T00:00:00Z"},
            "timezone",
            "unsupported_timezone",
        ),
        ({"senderId": "snd_\x00"}, "senderId", "sender_not_found"),
        ({"to": "0001-01-02T00:00:00Z"}, "to", "invalid_timestamp"),
        ({"from": "9999-12-30T00:00:00Z", "to": "9999-12-31T23:00:00Z"}, "to", "invalid_timestamp"),
    ],
)
def test_bad_input_is_a_422_naming_the_parameter(api, params, field, code):
    error = assert_envelope(api.get("/v1/stats", params), 422, "validation_failed")
    assert violations(error) == {(field, code)}


def test_several_bad_parameters_are_named_at_once(api):
    error = assert_envelope(
        api.get("/v1/stats", {"interval": "week", "timezone": "x", "from": "y"}), 422, "validation_failed"
    )
    assert violations(error) == {
        ("interval", "invalid_choice"),
        ("timezone", "invalid_timezone"),
        ("from", "invalid_timestamp"),
    }


def record(message, type_, at):
    """An event through the lifecycle service, at a chosen time (as a DSN or tracking hit would be)."""
    lifecycle.message_event_record(message=message, type=type_, occurred_at=at)


def test_days_follow_the_asked_timezone_and_every_bucket_is_listed(db, api, workspace):
    message = MessageFactory(workspace=workspace)
    Message.objects.filter(pk=message.pk).update(created_at=datetime(2026, 10, 1, tzinfo=UTC))
    MessageEvent.objects.filter(message=message).update(occurred_at=datetime(2026, 10, 1, tzinfo=UTC))
    message.refresh_from_db()  # accepted before every event below, so none is moved to its acceptance
    # Recorded in the order they happened: a reported time is never put before the message's
    # latest event (messaging.lifecycle), so an out-of-order record would move.
    record(message, "opened", datetime(2026, 10, 25, 22, 30, tzinfo=UTC))  # 23:30 CET, still the 25th
    record(message, "clicked", datetime(2026, 11, 30, 22, 59, tzinfo=UTC))
    # 23:30 UTC on 30 November is already 1 December in Berlin (UTC+1).
    record(message, "opened", datetime(2026, 11, 30, 23, 30, tzinfo=UTC))
    record(message, "opened", datetime(2026, 12, 2, 9, 0, tzinfo=UTC))

    berlin = stats(
        api, **{"from": "2026-11-30T10:00:00+01:00", "to": "2026-12-02T12:00:00+01:00", "timezone": "Europe/Berlin"}
    )
    assert (berlin["from"], berlin["to"]) == ("2026-11-29T23:00:00+00:00", "2026-12-02T23:00:00+00:00")
    assert [(b["start"], b["counts"]["opened"], b["counts"]["clicked"]) for b in berlin["data"]] == [
        ("2026-11-29T23:00:00+00:00", 0, 1),
        ("2026-11-30T23:00:00+00:00", 1, 0),
        ("2026-12-01T23:00:00+00:00", 1, 0),
    ]
    assert berlin["data"][0]["rates"] == dict.fromkeys(("delivery_rate", "bounce_rate", "block_rate", "complaint_rate"))

    utc = stats(api, **{"from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00Z"})
    assert [(b["start"], b["counts"]["opened"], b["counts"]["clicked"]) for b in utc["data"]] == [
        ("2026-11-30T00:00:00+00:00", 1, 1)
    ]
    hourly = stats(api, **{"from": "2026-11-30T22:00:00Z", "to": "2026-12-01T00:00:00Z", "interval": "hour"})
    assert [(b["start"], b["counts"]["opened"], b["counts"]["clicked"]) for b in hourly["data"]] == [
        ("2026-11-30T22:00:00+00:00", 0, 1),
        ("2026-11-30T23:00:00+00:00", 1, 0),
    ]
    # A DST change inside the period: Berlin's 25-hour day in October is one bucket.
    october = stats(
        api, **{"from": "2026-10-25T00:00:00+02:00", "to": "2026-10-26T00:00:00+01:00", "timezone": "Europe/Berlin"}
    )
    assert [(b["start"], b["end"], b["counts"]["opened"]) for b in october["data"]] == [
        ("2026-10-24T22:00:00+00:00", "2026-10-25T23:00:00+00:00", 1)
    ]


def test_a_period_is_read_in_one_query_on_the_rollup(db, api, workspace, django_assert_max_num_queries):
    message = MessageFactory(workspace=workspace)
    for hour in range(48):
        record(message, "opened", timezone.now() - timedelta(hours=hour))
    with django_assert_max_num_queries(3):  # the key lookup, the rollup read, nothing per bucket
        body = stats(api, interval="hour")
    assert body["totals"]["counts"]["opened"] == 48


def rollup_rows(**filters) -> Counter:
    return Counter(
        {
            (r.workspace_id, r.livemode, r.bucket, r.type, r.sender_id, r.template_id, r.group_id, r.bounce_class): r.n
            for r in EventRollup.objects.filter(**filters)
        }
    )


def test_a_transition_retried_or_rolled_back_counts_nothing_more(db, workspace):
    message = MessageFactory(workspace=workspace)
    assert lifecycle.message_transition(message_id=message.pk, to_status="queued")
    before = rollup_rows()
    assert sum(before.values()) == 1

    # The same write again (a redelivered task): the status already moved, no event, no count.
    assert not lifecycle.message_transition(message_id=message.pk, to_status="queued")
    # A transaction that records an event and then fails: the count goes with the event.
    with pytest.raises(RuntimeError), transaction.atomic():
        lifecycle.message_transition(message_id=message.pk, to_status="sent")
        raise RuntimeError("worker died")

    assert rollup_rows() == before
    assert MessageEvent.objects.filter(message=message, type__in=["queued", "sent"]).count() == 1


def test_test_and_live_events_are_counted_apart(db, workspace):
    live = MessageFactory(workspace=workspace)
    test = MessageFactory(
        workspace=workspace,
        livemode=False,
        sender=live.sender,
        template=live.template,
        template_version=live.template_version,
    )
    lifecycle.messages_transition_bulk(message_ids=[live.pk, test.pk], to_status="queued")

    assert sorted((key[1], n) for key, n in rollup_rows(type="queued").items()) == [(False, 1), (True, 1)]


def test_the_rebuild_recounts_what_the_workers_counted_and_is_idempotent(world):
    send(world, world.live, "jane@example.com", group=world.group)
    world.sink.refuse("gone@example.com")
    send(world, world.live, "gone@example.com")
    send(world, world.test, f"blocked@{SIM}")
    kept_by_workers = rollup_rows()
    assert kept_by_workers

    EventRollup.objects.all().delete()
    out = io.StringIO()
    call_command("rollup_events", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["rows"] == len(kept_by_workers)
    assert rollup_rows() == kept_by_workers
    call_command("rollup_events", stdout=io.StringIO())
    assert rollup_rows() == kept_by_workers

    # --since recounts only from that hour on and keeps older rows (retention may have dropped their events).
    old = EventRollup.objects.create(
        workspace=world.workspace, livemode=True, bucket=datetime(2026, 1, 1, tzinfo=UTC), type="delivered",
        sender_id=world.sender.id, n=7,
    )  # fmt: skip
    first, _ = event_rollup_rebuild(since=timezone.now() - timedelta(days=1))
    assert first > old.bucket and EventRollup.objects.filter(pk=old.pk).exists()
    assert rollup_rows(bucket__gte=first) == kept_by_workers


def test_the_rebuild_refuses_a_bad_since():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since: use an ISO 8601 time"):
        call_command("rollup_events", "--since", "last week")


def test_an_empty_events_table_rebuilds_nothing(db):
    assert event_rollup_rebuild() == (None, 0)
    assert WorkspaceFactory() and not EventRollup.objects.exists()
