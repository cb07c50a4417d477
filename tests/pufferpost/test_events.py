import pytest
from django.db import transaction
from django.utils import timezone

from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from pufferpost import events
from senders.models import SenderState
from senders.services import sender_pause
from tests.senders.factories import ActiveSenderFactory


@pytest.fixture
def isolated(monkeypatch):
    """A private subscriber table, so these tests neither see nor leave the apps' subscribers."""
    table = events.defaultdict(list)
    monkeypatch.setattr(events, "_subscribers", table)
    return table


def test_publish_calls_each_subscriber_of_the_kind_in_order_with_the_event(isolated):
    heard = []
    events.subscribe("thing.happened")(lambda **event: heard.append(("first", event)))
    events.subscribe("thing.happened")(lambda **event: heard.append(("second", event["kind"])))
    events.subscribe("other.thing")(lambda **event: heard.append(("other", event)))
    now = timezone.now()

    events.publish("thing.happened", workspace_id="ws_1", occurred_at=now, subject={"id": "x"})

    assert heard == [
        ("first", {"kind": "thing.happened", "workspace_id": "ws_1", "occurred_at": now, "subject": {"id": "x"}}),
        ("second", "thing.happened"),
    ]


def test_subscribing_twice_registers_once_and_a_kind_nobody_hears_is_a_no_op(isolated):
    heard = []

    def listener(**event):
        heard.append(event["subject"])

    events.subscribe("thing.happened")(listener)
    events.subscribe("thing.happened")(listener)
    events.publish("thing.happened", workspace_id="ws_1", occurred_at=timezone.now(), subject={"n": 1})
    events.publish("nobody.listens", workspace_id="ws_1", occurred_at=timezone.now(), subject={"n": 2})

    assert heard == [{"n": 1}]


def test_messaging_subscribes_webhooks_to_every_platform_event():
    from messaging.webhooks.services import PLATFORM_EVENT_SUBJECTS, webhook_platform_event_received

    for kind in PLATFORM_EVENT_SUBJECTS:
        assert events._subscribers[kind] == [webhook_platform_event_received]


def test_a_platform_events_webhook_deliveries_roll_back_with_the_change_that_published_it(db):
    sender = ActiveSenderFactory()
    endpoint = webhook_endpoint_create(workspace=sender.workspace, url="https://hooks.example.org/in", events=[])

    with pytest.raises(RuntimeError), transaction.atomic():
        sender_pause(sender=sender, reason="Abuse report")
        assert WebhookDelivery.objects.filter(endpoint=endpoint, event_type="sender.paused").count() == 1
        raise RuntimeError("the surrounding change fails")

    sender.refresh_from_db()
    assert sender.state == SenderState.ACTIVE
    assert not WebhookDelivery.objects.filter(endpoint=endpoint).exists()
