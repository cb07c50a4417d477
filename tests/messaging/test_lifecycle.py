import pytest

from messaging.lifecycle import message_event_record, message_transition, on_events_recorded
from messaging.models import MessageEvent
from messaging.return_path import message_id_from_return_path, return_path_for, verp_local_part
from pufferpost.ids import new_id
from tests.messaging.factories import MessageFactory


@pytest.fixture
def message(workspace):
    return MessageFactory(workspace=workspace)


def test_a_transition_moves_forward_once_and_records_one_event(message):
    assert message_transition(message_id=message.pk, to_status="queued")
    assert not message_transition(message_id=message.pk, to_status="queued")
    message.refresh_from_db()
    assert message.status == "queued"
    assert list(MessageEvent.objects.filter(message=message).values_list("type", flat=True)) == ["accepted", "queued"]


def test_a_status_never_moves_backwards(message):
    for status in ("queued", "sent", "delivered"):
        assert message_transition(message_id=message.pk, to_status=status)
    assert not message_transition(message_id=message.pk, to_status="queued")
    assert not message_transition(message_id=message.pk, to_status="errored")
    # A late DSN may still turn a delivered message into a bounce.
    assert message_transition(message_id=message.pk, to_status="bounced", detail={"code": 550})
    message.refresh_from_db()
    assert message.status == "bounced"


def test_extra_fields_are_written_with_the_transition(message):
    message_transition(message_id=message.pk, to_status="queued", subject="Hello Jane")
    message.refresh_from_db()
    assert message.subject == "Hello Jane"


def test_listeners_hear_about_events_inside_the_recording_transaction(message):
    heard = []

    def listener(event_ids):
        # The event is visible here, in the same transaction, before anything commits.
        heard.extend(MessageEvent.objects.filter(pk__in=event_ids).values_list("type", flat=True))

    on_events_recorded(listener)
    try:
        message_event_record(message=message, type="deferred", detail={"code": 451})
        message_transition(message_id=message.pk, to_status="queued")
        assert heard == ["deferred", "queued"]
    finally:
        from messaging import lifecycle

        lifecycle._listeners.remove(listener)


def test_unknown_event_types_are_refused(message):
    with pytest.raises(ValueError):
        message_event_record(message=message, type="teleported")


def test_return_paths_round_trip_even_lowercased():
    message_id = new_id("msg")
    address = return_path_for(message_id=message_id, from_address="no-reply@mail.acme.com")
    assert address == f"{verp_local_part(message_id=message_id)}@mail.acme.com"
    assert message_id_from_return_path(address) == message_id
    assert message_id_from_return_path(f"<{address.lower()}>") == message_id
    assert message_id_from_return_path("someone@mail.acme.com") is None


def test_delivering_in_one_pass_records_sent_then_delivered_for_exactly_the_claimed_queued_messages(workspace):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.lifecycle import messages_deliver_bulk
    from messaging.models import EventRollup, Message

    token = timezone.now()
    mine = [MessageFactory(workspace=workspace, status="queued", claimed_at=token) for _ in range(2)]
    reclaimed = MessageFactory(workspace=workspace, status="queued", claimed_at=token + timedelta(seconds=1))
    already_sent = MessageFactory(workspace=workspace, status="sent", claimed_at=token)
    messages = [*mine, reclaimed, already_sent]
    for message in messages:
        message.attempts, message.last_response, message.next_attempt_at = 1, "250 ok", None
    started, ended = token + timedelta(milliseconds=5), token + timedelta(milliseconds=9)
    heard = []
    on_events_recorded(lambda event_ids: heard.append(list(event_ids)))
    try:
        moved = messages_deliver_bulk(
            messages=messages,
            token=token,
            sent_at={m.pk: started for m in messages},
            sent_details={m.pk: {"mx_host": "mx.example.com"} for m in messages},
            delivered_at={m.pk: ended for m in messages},
            details={m.pk: {"code": 250} for m in messages},
        )
    finally:
        from messaging import lifecycle

        lifecycle._listeners.pop()
    assert sorted(moved) == sorted(m.pk for m in mine)
    states = dict(Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("pk", "status"))
    assert [states[m.pk] for m in messages] == ["delivered", "delivered", "queued", "sent"]
    assert Message.objects.get(pk=mine[0].pk).last_response == "250 ok"
    assert Message.objects.get(pk=reclaimed.pk).last_response == ""
    for message in mine:
        events = list(
            MessageEvent.objects.filter(message=message)
            .exclude(type="accepted")
            .values_list("type", "occurred_at", "detail")
        )
        assert events == [("sent", started, {"mx_host": "mx.example.com"}), ("delivered", ended, {"code": 250})]
    assert not MessageEvent.objects.filter(message__in=[reclaimed, already_sent], type__in=["sent", "delivered"])
    # Every event reaches the listeners (webhooks) and the rollup, once.
    new = set(
        MessageEvent.objects.filter(message__in=mine, type__in=["sent", "delivered"]).values_list("pk", flat=True)
    )
    assert len(heard) == 1 and set(heard[0]) == new and len(heard[0]) == 4
    counted = {"sent": 0, "delivered": 0}
    for event_type, n in EventRollup.objects.filter(workspace_id=workspace.pk, type__in=counted).values_list(
        "type", "n"
    ):
        counted[event_type] += n
    assert counted == {"sent": 2, "delivered": 2}
