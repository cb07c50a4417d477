"""Bounded feedback: padded reports, per-message caps, the paginated timeline and its order."""

import re
from datetime import timedelta
from email.utils import format_datetime

from messaging.feedback.services import MESSAGE_MAX_DELAY_EVENTS, feedback_report_process
from messaging.lifecycle import message_event_record
from messaging.models import MessageEvent
from tests.messaging.feedback import samples


def _deferred(message):
    return list(
        MessageEvent.objects.filter(message=message, type="deferred").values_list("detail__recipient", flat=True)
    )


def test_a_padded_delay_report_counts_only_the_messages_own_recipients(make_message):
    message = make_message(status="delivered", to="jane@example.org", cc=["audit@acme.test"])
    strangers = [f"nobody{i}@example.net" for i in range(5000)]
    raw = samples.postfix_delayed_dsn(message.pk, recipients=["jane@example.org", *strangers])
    assert len(raw) > 400_000

    feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    assert _deferred(message) == ["jane@example.org"]


def test_entries_past_the_report_cap_are_not_read(make_message):
    message = make_message(status="delivered", to="jane@example.org")
    raw = samples.postfix_delayed_dsn(message.pk, recipients=[*(f"x{i}@example.net" for i in range(60)), message.to])

    feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    assert _deferred(message) == []


def test_a_message_collects_a_bounded_number_of_delay_reports(make_message):
    message = make_message(status="delivered")

    for n in range(MESSAGE_MAX_DELAY_EVENTS + 10):
        raw = samples.postfix_delayed_dsn(message.pk, report_id=f"<delay-{n}@mx.example.org>")
        feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    assert len(_deferred(message)) == MESSAGE_MAX_DELAY_EVENTS


def test_a_bounce_whose_report_date_is_before_acceptance_sorts_after_accepted(make_message, api):
    message = make_message(status="delivered")
    accepted = message_event_record(message=message, type="accepted", occurred_at=message.created_at)
    earlier = format_datetime((message.created_at - timedelta(seconds=1)).replace(microsecond=0))
    raw = re.sub(rb"(?m)^Date: .*$", f"Date: {earlier}".encode(), samples.postfix_dsn(message.pk), count=1)

    feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    bounced = MessageEvent.objects.get(message=message, type="bounced")
    assert bounced.occurred_at >= accepted.occurred_at
    types = [e["type"] for e in api.get(f"/v1/messages/{message.pk}/events").json()["data"]]
    assert types == ["accepted", "bounced"]


def test_events_with_the_same_time_order_by_when_they_were_recorded(make_message, api):
    message = make_message(status="delivered")
    same = message.created_at + timedelta(seconds=5)
    first = message_event_record(message=message, type="deferred", occurred_at=same, detail={"n": 1})
    second = message_event_record(message=message, type="deferred", occurred_at=same, detail={"n": 2})
    # Ids are random within a millisecond: force the id order against the recording order.
    if first.pk < second.pk:
        MessageEvent.objects.filter(pk=first.pk).update(recorded_at=second.recorded_at + timedelta(seconds=1))
        expected = [2, 1]
    else:
        expected = [1, 2]

    data = api.get(f"/v1/messages/{message.pk}/events").json()["data"]
    assert [e["detail"]["n"] for e in data] == expected


def _timeline(make_message, count):
    message = make_message(status="delivered")
    start = message.created_at
    MessageEvent.objects.bulk_create(
        [
            MessageEvent(
                message=message,
                workspace_id=message.workspace_id,
                type="opened",
                occurred_at=start + timedelta(seconds=i // 3),  # ties, broken by recorded_at then id
                detail={"n": i},
            )
            for i in range(count)
        ]
    )
    return message


def test_the_timeline_first_page_keeps_the_guides_shape(make_message, api):
    message = _timeline(make_message, 3)

    body = api.get(f"/v1/messages/{message.pk}/events").json()

    assert set(body) == {"data", "next_cursor"}
    assert body["next_cursor"] is None
    assert [e["type"] for e in body["data"]] == ["opened"] * 3
    assert set(body["data"][0]) == {"id", "type", "occurred_at", "recorded_at", "detail"}


def test_the_timeline_pages_with_a_cursor_oldest_first(make_message, api):
    message = _timeline(make_message, 250)
    url = f"/v1/messages/{message.pk}/events"

    first = api.get(url).json()
    assert len(first["data"]) == 100 and first["next_cursor"]

    seen, cursor = [], None
    while True:
        body = api.get(url, {"limit": 70, **({"cursor": cursor} if cursor else {})}).json()
        seen += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 250
    assert len({e["id"] for e in seen}) == 250
    keys = [(e["occurred_at"], e["recorded_at"], e["id"]) for e in seen]
    assert keys == sorted(keys)
    assert [e["id"] for e in seen[:100]] == [e["id"] for e in first["data"]]


def test_a_bad_limit_or_cursor_is_a_clear_422(make_message, api):
    message = _timeline(make_message, 5)
    other = _timeline(make_message, 5)
    url = f"/v1/messages/{message.pk}/events"
    foreign = api.get(f"/v1/messages/{other.pk}/events", {"limit": 2}).json()["next_cursor"]

    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "garbage"}, {"cursor": foreign}):
        response = api.get(url, params)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"] == "validation_failed"
