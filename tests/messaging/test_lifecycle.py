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
