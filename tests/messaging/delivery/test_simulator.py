"""Test mode's delivery: every simulator outcome, its timeline and its webhook, through the real send
API (test key), delivery (eager) and webhook delivery to a real HTTP receiver on loopback."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.delivery.services import deliver_due_messages, deliver_messages
from messaging.models import DeliveryAttempt, Message, MessageContent, Suppression
from messaging.webhooks.services import webhook_endpoint_create
from pufferpost.services import api_key_create
from tests.factories import SenderFactory
from tests.messaging.delivery.pipeline import FROM, make_sendable, timeline
from tests.messaging.webhooks.conftest import Receiver, verify_signature

SIM = "sim.acme.test"


@pytest.fixture
def world(settings, dns, smtp_sink, transactional_db, workspace):
    """A sendable workspace whose live mail would reach the sink, a test key, and a webhook receiver."""
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    settings.PUFFERPOST_SIMULATOR_DOMAIN = SIM  # white-label: any reserved domain
    settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = True
    setup = make_sendable(workspace, dns)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(workspace=workspace, livemode=False)[1]}")
    receiver = Receiver()
    hook = webhook_endpoint_create(workspace=workspace, url=receiver.url, events=[])
    setup.client, setup.receiver, setup.hook = client, receiver, hook
    yield setup
    receiver.stop()


def send_test(world, to, **extra):
    response = world.client.post(
        "/v1/messages",
        {"from": FROM, "to": to, "templateId": world.template.id, "data": {"name": "Jane", "order_id": "o_9"}, **extra},
        format="json",
    )
    assert response.status_code == 202, response.content
    return Message.objects.get(pk=response.json()["id"])


def hooks_for(world, message, count):
    """The webhook POSTs about `message`, each checked for its signature and `test: true`."""
    world.receiver.wait_for(count, timeout=30)
    posts = [r for r in world.receiver.requests if r.json["message"]["id"] == message.pk]
    for post in posts:
        assert verify_signature(world.hook.secret, post.headers["PufferPost-Signature"], post.body)
        assert post.json["test"] is True
    return posts


CASES = [
    # local part, final status, timeline, the SMTP code the simulated receiver gave
    ("delivered", "delivered", ["accepted", "queued", "sent", "delivered"], 250),
    ("bounced", "bounced", ["accepted", "queued", "bounced"], 550),
    ("blocked", "bounced", ["accepted", "queued", "bounced"], 554),
    ("complained", "complained", ["accepted", "queued", "sent", "delivered", "complained"], 250),
    ("unsubscribed", "delivered", ["accepted", "queued", "sent", "delivered", "unsubscribed"], 250),
]


@pytest.mark.parametrize(("local", "status", "events", "code"), CASES, ids=[c[0] for c in CASES])
def test_each_simulator_address_produces_its_outcome_and_webhooks(world, smtp_sink, local, status, events, code):
    message = send_test(world, f"{local}@{SIM}")
    message.refresh_from_db()
    assert message.status == status and message.livemode is False
    assert timeline(message.pk) == events
    posts = hooks_for(world, message, len(events))
    assert sorted(p.json["type"] for p in posts) == sorted(events)
    final = next(p.json for p in posts if p.json["type"] == events[-1])
    assert final["message"]["status"] == status
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.recipients[f"{local}@{SIM}"]["code"] == code
    assert attempt.recipients[f"{local}@{SIM}"]["mx_host"] == "simulator"
    # Nothing left the platform, and simulated outcomes never touch the live suppression list.
    assert smtp_sink.received == []
    assert not Suppression.objects.exists()
    # The timeline reads back through the test key, marked test.
    assert world.client.get(f"/v1/messages/{message.pk}").json()["test"] is True
    assert [e["type"] for e in world.client.get(f"/v1/messages/{message.pk}/events").json()["data"]] == events


def test_bounced_and_blocked_say_what_kind_of_bounce(world):
    hard = send_test(world, f"bounced+signup-42@{SIM}")
    block = send_test(world, f"blocked@{SIM}")
    hard_event = hard.events.get(type="bounced").detail
    block_event = block.events.get(type="bounced").detail
    assert hard_event["code"] == 550 and "5.1.1" in hard_event["response"]
    assert block_event["code"] == 554 and "5.7.1" in block_event["response"] and "policy" in block_event["response"]
    # The same address can be used again: a simulated bounce suppresses nothing.
    again = send_test(world, f"bounced+signup-42@{SIM}")
    again.refresh_from_db()
    assert again.status == "bounced"


def test_deferred_is_deferred_once_then_delivered_on_the_retry(world, smtp_sink):
    message = send_test(world, f"deferred@{SIM}")
    message.refresh_from_db()
    assert message.status == "queued" and message.attempts == 1
    assert timeline(message.pk) == ["accepted", "queued", "deferred"]
    assert message.events.get(type="deferred").detail["code"] == 451
    hooks_for(world, message, 3)

    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    deliver_due_messages(message_ids=[message.pk])
    message.refresh_from_db()
    assert message.status == "delivered"
    assert timeline(message.pk) == ["accepted", "queued", "deferred", "sent", "delivered"]
    posts = hooks_for(world, message, 5)
    assert sorted(p.json["type"] for p in posts) == ["accepted", "deferred", "delivered", "queued", "sent"]
    assert smtp_sink.received == []


def test_an_ordinary_address_is_simulated_delivered_and_signed_with_the_domains_key(world, smtp_sink):
    message = send_test(world, "jane@example.com")
    message.refresh_from_db()
    assert message.status == "delivered" and smtp_sink.received == []
    response = message.events.get(type="delivered").detail["response"]
    assert "Simulated delivery" in response and "(DKIM-signed)" in response
    content = MessageContent.objects.get(message=message)
    assert content.subject == "Order o_9 confirmed" and "Hello Jane" in content.html


def test_a_test_send_from_a_sender_in_review_on_an_unverified_domain_is_simulated_unsigned(world, smtp_sink, workspace):
    SenderFactory(workspace=workspace, from_address="hello@new.acme.test")  # under review, no domain at all
    message = send_test(world, f"delivered@{SIM}", **{"from": "hello@new.acme.test"})
    message.refresh_from_db()
    assert message.status == "delivered"
    assert "not DKIM-signed" in message.events.get(type="delivered").detail["response"]
    assert smtp_sink.received == []


def test_a_live_message_is_never_simulated(world, smtp_sink, workspace):
    live = world.message(to="jane@example.com")
    deliver_messages(message_ids=[live.pk])
    live.refresh_from_db()
    assert live.status == "delivered" and len(smtp_sink.received) == 1
    delivered = next(r for r in world.receiver.wait_for(3) if r.json["type"] == "delivered")
    assert json.loads(delivered.body)["test"] is False
