import json
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.feedback.reputation import _sender_pause, sender_reputation_evaluate, sender_reputation_stats
from messaging.feedback.services import feedback_bounce_record, feedback_complaint_record
from messaging.models import Message
from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from senders.models import Sender, SenderStateChange


def _traffic(make_message, *, volume, bounced=0, complained=0):
    """`volume` counted messages from the sender, of which `bounced` bounced and `complained` complained."""
    if bounced:
        make_message(status="bounced", count=bounced)
    if complained:
        make_message(status="complained", count=complained)
    make_message(status="delivered", count=volume - bounced - complained)


def _state(sender):
    sender.refresh_from_db()
    return sender.state


@pytest.mark.parametrize(
    ("bounced", "paused"),
    [(4, False), (5, False), (6, True)],
    ids=["just-below-5%", "exactly-5%", "just-above-5%"],
)
def test_the_bounce_rate_pauses_only_when_strictly_above_the_threshold(make_message, sender, bounced, paused):
    _traffic(make_message, volume=100, bounced=bounced)

    assert sender_reputation_evaluate(sender_id=sender.pk) is paused
    assert _state(sender) == ("paused" if paused else "active")


@pytest.mark.parametrize(
    ("volume", "paused"),
    [(1001, False), (1000, False), (999, True)],
    ids=["just-below-0.1%", "exactly-0.1%", "just-above-0.1%"],
)
def test_the_complaint_rate_pauses_only_when_strictly_above_the_threshold(make_message, sender, volume, paused):
    _traffic(make_message, volume=volume, complained=1)

    assert sender_reputation_evaluate(sender_id=sender.pk) is paused
    assert _state(sender) == ("paused" if paused else "active")


@pytest.mark.parametrize("kind", ["bounced", "complained"])
@pytest.mark.parametrize(("volume", "paused"), [(99, False), (100, True)], ids=["below-min-volume", "at-min-volume"])
def test_nothing_is_judged_below_the_minimum_volume(make_message, sender, kind, volume, paused):
    _traffic(make_message, volume=volume, **{kind: 30})

    assert sender_reputation_evaluate(sender_id=sender.pk) is paused


def test_the_workspaces_own_thresholds_apply(make_message, sender, workspace):
    workspace.bounce_rate_threshold = "0.2000"
    workspace.reputation_min_volume = 10
    workspace.save()
    _traffic(make_message, volume=10, bounced=2)
    assert not sender_reputation_evaluate(sender_id=sender.pk)

    make_message(status="bounced")
    assert sender_reputation_evaluate(sender_id=sender.pk)


def test_the_pause_is_recorded_with_its_reason_and_the_system_as_actor(make_message, sender):
    _traffic(make_message, volume=120, bounced=7)
    endpoint = webhook_endpoint_create(workspace=sender.workspace, url="https://hooks.example.org/in", events=[])

    assert sender_reputation_evaluate(sender_id=sender.pk)

    sender.refresh_from_db()
    reason = "Auto-paused: bounce rate 5.83% over the last 120 messages (7 days) exceeds 5.0%"
    assert (sender.state, sender.state_reason) == ("paused", reason)
    change = SenderStateChange.objects.get(sender=sender)
    assert (change.from_state, change.to_state, change.reason, change.actor_label, change.actor) == (
        "active",
        "paused",
        reason,
        "system",
        None,
    )
    # One sender.paused webhook event, written with the pause.
    [delivery] = WebhookDelivery.objects.filter(endpoint=endpoint)
    payload = json.loads(delivery.payload)
    assert (delivery.event_type, payload["type"]) == ("sender.paused", "sender.paused")
    assert payload["sender"] == {
        "id": sender.pk,
        "from_address": "news@mail.acme.test",
        "state": "paused",
        "state_reason": reason,
        "updated_at": sender.updated_at.isoformat(timespec="seconds"),
    }


def test_a_complaint_pause_names_the_complaint_rate(make_message, sender):
    _traffic(make_message, volume=500, complained=1)
    message = make_message(status="delivered", to="bob@example.org")
    assert feedback_complaint_record(message_id=message.pk, recipient="bob@example.org")

    sender.refresh_from_db()
    assert sender.state_reason == "Auto-paused: complaint rate 0.4% over the last 501 messages (7 days) exceeds 0.1%"


def test_a_paused_sender_stays_paused_and_is_not_paused_again(make_message, sender):
    _traffic(make_message, volume=100, bounced=10)
    sender.state, sender.state_reason = "paused", "Paused by staff: investigating"
    sender.save()

    assert not sender_reputation_evaluate(sender_id=sender.pk)

    sender.refresh_from_db()
    assert (sender.state, sender.state_reason) == ("paused", "Paused by staff: investigating")
    assert not SenderStateChange.objects.exists()


def test_a_sender_under_review_is_left_alone(make_message, sender):
    _traffic(make_message, volume=100, bounced=10)
    sender.state = "under_review"
    sender.save()

    assert not sender_reputation_evaluate(sender_id=sender.pk)
    assert _state(sender) == "under_review"


def test_only_messages_in_the_window_that_left_the_platform_count(make_message, sender):
    _traffic(make_message, volume=100, bounced=3)
    old = make_message(status="bounced", count=20)
    Message.objects.filter(pk__in=[m.pk for m in old]).update(created_at=timezone.now() - timedelta(days=8))
    for status in ("accepted", "queued", "suppressed", "errored"):
        make_message(status=status, count=5)

    stats = sender_reputation_stats(sender_id=sender.pk, since=timezone.now() - timedelta(days=7))

    assert (stats.volume, stats.bounced, stats.complained) == (100, 3, 0)
    assert not sender_reputation_evaluate(sender_id=sender.pk)


def test_the_window_is_a_setting(make_message, sender, settings):
    _traffic(make_message, volume=100)
    old = make_message(status="bounced", count=10)
    Message.objects.filter(pk__in=[m.pk for m in old]).update(created_at=timezone.now() - timedelta(days=8))
    assert not sender_reputation_evaluate(sender_id=sender.pk)

    settings.PUFFERPOST_REPUTATION_WINDOW_DAYS = 9
    assert sender_reputation_evaluate(sender_id=sender.pk)


def test_an_evaluation_is_one_aggregate_query(make_message, sender, django_assert_num_queries):
    _traffic(make_message, volume=100, bounced=5)
    with django_assert_num_queries(2):  # the sender (with its workspace), then one COUNT … FILTER
        sender_reputation_evaluate(sender_id=sender.pk)


def test_the_bounce_that_crosses_the_threshold_pauses_the_sender(make_message, sender):
    _traffic(make_message, volume=100, bounced=5)
    message = make_message(status="delivered", to="last@example.org")
    # 5 of 101 is under 5 %; this bounce makes it 6 of 101.

    assert feedback_bounce_record(message_id=message.pk, recipient="last@example.org", status="5.1.1")

    sender.refresh_from_db()
    assert sender.state == "paused"
    assert sender.state_reason.startswith("Auto-paused: bounce rate 5.94% over the last 101 messages")


def test_a_sender_paused_by_staff_meanwhile_is_not_paused_twice(make_message, sender):
    _traffic(make_message, volume=100, bounced=10)
    # Staff pause the sender between the evaluation's read and its state change.
    Sender.objects.filter(pk=sender.pk).update(state="paused", state_reason="Paused by staff")

    assert not _sender_pause(sender=sender, reason="Auto-paused: …")

    sender.refresh_from_db()
    assert sender.state_reason == "Paused by staff"
    assert not SenderStateChange.objects.exists()
