"""Publishing events as deliveries, signing, retrying and recording attempts (tasks run eagerly)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from messaging.lifecycle import message_event_record, message_transition
from messaging.models import EventType
from messaging.webhooks import services
from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import (
    EVENT_TYPES,
    RETRY_DELAYS,
    webhook_deliveries_due_enqueue,
    webhook_deliveries_prune,
    webhook_delivery_attempt,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_events_publish,
    webhook_platform_event_publish,
)
from tests.messaging.webhooks.conftest import verify_signature


def make_due(delivery=None):
    """Move pending deliveries' next try into the past, as the clock would."""
    rows = WebhookDelivery.objects.filter(status="pending")
    if delivery is not None:
        rows = rows.filter(pk=delivery.pk)
    rows.update(next_attempt_at=timezone.now() - timedelta(minutes=5))


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """`webhook_events_publish` with its after-commit enqueue run (the test never commits)."""

    def run(event_ids):
        with django_capture_on_commit_callbacks(execute=True):
            return webhook_events_publish(event_ids=event_ids)

    return run


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return webhook_deliveries_due_enqueue()

    return run


@pytest.fixture
def hook(workspace, receiver, allow_private):
    return webhook_endpoint_create(workspace=workspace, url=receiver.url, events=[])


def test_every_event_type_arrives_signed(
    hook, receiver, message, workspace, django_capture_on_commit_callbacks, publish
):
    with django_capture_on_commit_callbacks(execute=True):
        for event_type in EventType.values:
            message_event_record(message=message, type=event_type)
        webhook_platform_event_publish(
            workspace=workspace,
            type="domain.verification_lost",
            occurred_at=datetime(2026, 6, 9, 10, 15, tzinfo=UTC),
            subject={"id": "dom_01J9Z3K7Q2N8M4V6XB0R5T9AHC", "domain": "mail.acme.com"},
        )
        for rotation in ("domain.dkim_rotation_started", "domain.dkim_rotation_completed"):
            webhook_platform_event_publish(
                workspace=workspace,
                type=rotation,
                occurred_at=timezone.now(),
                subject={"id": "dom_01J9Z3K7Q2N8M4V6XB0R5T9AHC", "domain": "mail.acme.com", "selector": "mlr2"},
            )
        webhook_platform_event_publish(
            workspace=workspace.pk,
            type="sender.paused",
            occurred_at=timezone.now(),
            subject={"id": "snd_01J9Z3K7Q2N8M4V6XB0R5T9AHC", "from_address": "no-reply@mail.acme.com"},
        )
    requests = receiver.wait_for(len(EVENT_TYPES))
    assert sorted(r.json["type"] for r in requests) == sorted(EVENT_TYPES)
    for request in requests:
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "Webhooks/1.0"
        assert verify_signature(hook.secret, request.headers["PufferPost-Signature"], request.body)
        assert not verify_signature("whsec_wrong", request.headers["PufferPost-Signature"], request.body)
        assert request.json["id"].startswith("evt_")
        assert set(request.json) >= {"id", "type", "occurred_at", "recorded_at"}
    by_type = {r.json["type"]: r.json for r in requests}
    delivered = by_type["delivered"]
    assert delivered["message"] == {
        "id": message.pk,
        "status": "accepted",
        "from": message.from_address,
        "to": "jane@example.com",
        "subject": "",
        "template_id": message.template_id,
        "metadata": {"order_id": "o_9"},
        "tags": [],
        "created_at": message.created_at.astimezone(UTC).isoformat(timespec="seconds"),
    }
    assert by_type["domain.verification_lost"]["domain"]["domain"] == "mail.acme.com"
    assert by_type["domain.verification_lost"]["occurred_at"] == "2026-06-09T10:15:00+00:00"
    assert "message" not in by_type["sender.paused"]
    assert by_type["sender.paused"]["sender"]["from_address"] == "no-reply@mail.acme.com"
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}


def test_a_tampered_body_fails_verification(hook, receiver, message, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message_transition(message_id=message.pk, to_status="queued")
    [request] = receiver.wait_for(1)
    header = request.headers["PufferPost-Signature"]
    assert verify_signature(hook.secret, header, request.body)
    assert not verify_signature(hook.secret, header, request.body.replace(b"queued", b"bounced"))
    stale = header.replace(header.split(",")[0], "t=1000000000")
    assert not verify_signature(hook.secret, stale, request.body)


def test_an_endpoint_gets_only_the_types_it_subscribed_to(
    workspace, receiver, allow_private, message, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(workspace=workspace, url=receiver.url, events=["delivered"])
    with django_capture_on_commit_callbacks(execute=True):
        for status in ("queued", "sent", "delivered", "bounced"):
            message_transition(message_id=message.pk, to_status=status)
    [request] = receiver.wait_for(1)
    assert request.json["type"] == "delivered"
    assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == ["delivered"]


def test_events_of_another_workspace_are_not_sent(
    other_workspace, receiver, allow_private, message, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(workspace=other_workspace, url=receiver.url, events=[])
    with django_capture_on_commit_callbacks(execute=True):
        message_transition(message_id=message.pk, to_status="queued")
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()


def test_a_500_is_retried_and_the_log_shows_both_attempts(hook, receiver, message, api, publish, sweep):
    receiver.script.append({"status": 500, "body": b"database is down"})
    event = message_event_record(message=message, type="opened")
    [delivery_id] = publish([event.pk])
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_response_status == 500
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert RETRY_DELAYS[0] * 0.85 < wait < RETRY_DELAYS[0] * 1.15

    assert sweep() == 0  # not due yet
    make_due(delivery)
    assert sweep() == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2 and delivery.next_attempt_at is None
    first, second = receiver.wait_for(2)
    assert first.body == second.body  # the same event, byte for byte; receivers dedupe on its id

    [row] = api.get(f"/v1/webhooks/{hook.pk}/deliveries").json()["data"]
    assert row["status"] == "succeeded" and row["event_id"] == event.pk
    assert [(a["response_status"], a["response_body"], a["error"]) for a in row["attempts"]] == [
        (500, "database is down", "HTTP 500"),
        (200, "ok", ""),
    ]


def test_a_timeout_is_retried(hook, receiver, message, settings, publish, sweep):
    settings.PUFFERPOST_WEBHOOKS_TIMEOUT = 0.3
    receiver.script.append({"delay": 1.0})
    event = message_event_record(message=message, type="clicked")
    [delivery_id] = publish([event.pk])
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "pending" and "timed out" in delivery.last_error
    assert delivery.last_response_status is None
    make_due()
    sweep()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert [a.error != "" for a in delivery.attempt_log.all()] == [True, False]


def test_a_redirect_is_not_followed(hook, receiver, message, publish):
    receiver.script.append({"status": 301, "headers": {"Location": f"{receiver.url}/moved"}})
    event = message_event_record(message=message, type="opened")
    [delivery_id] = publish([event.pk])
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert [r.path for r in receiver.requests] == ["/hooks"]
    assert delivery.status == "pending" and delivery.last_response_status == 301
    assert "redirects are not followed" in delivery.last_error


def test_a_name_resolving_to_loopback_fails_at_connect_time_without_the_setting(
    workspace, receiver, message, dns, settings, django_capture_on_commit_callbacks, publish
):
    dns.publish("hooks.customer.test", "A", "127.0.0.1")
    settings.DEBUG = True  # plain http for the loopback receiver; private addresses still refused
    hook = webhook_endpoint_create(
        workspace=workspace, url=f"http://hooks.customer.test:{receiver.port}/hooks", events=[]
    )
    with django_capture_on_commit_callbacks(execute=True):
        message_transition(message_id=message.pk, to_status="queued")
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    assert receiver.requests == []
    # A refused destination is permanent: not retried.
    assert delivery.status == "failed" and delivery.attempts == 1 and delivery.next_attempt_at is None
    assert "private or reserved" in delivery.last_error

    settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = True
    with django_capture_on_commit_callbacks(execute=True):
        message_transition(message_id=message.pk, to_status="sent")
    [request] = receiver.wait_for(1)
    assert request.headers["Host"] == f"hooks.customer.test:{receiver.port}"


def test_a_delivery_fails_after_the_retry_window(hook, receiver, message, publish, sweep):
    receiver.script.extend({"status": 503} for _ in range(len(RETRY_DELAYS) + 1))
    event = message_event_record(message=message, type="opened")
    [delivery_id] = publish([event.pk])
    for _ in RETRY_DELAYS:
        make_due()
        sweep()
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "failed" and delivery.attempts == len(RETRY_DELAYS) + 1
    assert delivery.attempt_log.count() == len(RETRY_DELAYS) + 1
    assert sum(RETRY_DELAYS) * 0.9 >= 24 * 3600  # retried for at least 24 hours, jitter included
    make_due()
    assert sweep() == 0


def test_a_delivery_is_claimed_once(hook, receiver, message, publish):
    receiver.script.append({"status": 500})
    event = message_event_record(message=message, type="opened")
    [delivery_id] = publish([event.pk])  # attempt 1, retry scheduled
    assert webhook_delivery_attempt(delivery_id=delivery_id) is None  # not due: nothing sent
    make_due()
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        next_attempt_at=timezone.now() + timedelta(seconds=70)
    )  # what a claim by another worker looks like
    assert webhook_delivery_attempt(delivery_id=delivery_id) is None
    assert len(receiver.requests) == 1


def test_publishing_twice_creates_one_delivery(hook, receiver, message, publish):
    receiver.script.append({"status": 500})
    event = message_event_record(message=message, type="opened")
    publish([event.pk])
    assert publish([event.pk]) == []  # already attempted; nothing new
    assert WebhookDelivery.objects.count() == 1


def test_a_lost_task_is_picked_up_by_the_sweeper(hook, receiver, message, monkeypatch, publish, sweep):
    monkeypatch.setattr(services, "_enqueue", lambda ids: None)  # the broker lost the task
    event = message_event_record(message=message, type="opened")
    [delivery_id] = publish([event.pk])
    monkeypatch.undo()
    assert receiver.requests == []
    assert sweep() == 0  # fresh: its own task gets a head start
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now() - timedelta(minutes=2))
    assert sweep() == 1
    assert WebhookDelivery.objects.get(pk=delivery_id).status == "succeeded"
    assert len(receiver.requests) == 1


def test_deleting_an_endpoint_gives_up_its_pending_deliveries(hook, receiver, message, api, publish, sweep):
    receiver.script.append({"status": 500})
    event = message_event_record(message=message, type="opened")
    publish([event.pk])
    webhook_endpoint_delete(endpoint=hook)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.next_attempt_at is None
    make_due()
    assert sweep() == 0
    later = message_event_record(message=message, type="clicked")
    assert publish([later.pk]) == []
    assert len(receiver.requests) == 1


def test_the_body_is_compact_json_with_the_event_id(hook, receiver, message, publish):
    event = message_event_record(message=message, type="opened")
    publish([event.pk])
    [request] = receiver.wait_for(1)
    assert json.loads(request.body)["id"] == event.pk
    assert b": " not in request.body


def test_unknown_platform_event_types_are_refused(workspace, publish):
    with pytest.raises(ValueError):
        webhook_platform_event_publish(workspace=workspace, type="delivered", occurred_at=timezone.now(), subject={})


def test_finished_deliveries_are_pruned_after_the_retention(hook, receiver, message, publish, settings):
    settings.PUFFERPOST_WEBHOOKS_RETENTION_DAYS = 30
    receiver.script.append({"status": 500})
    first = message_event_record(message=message, type="opened")
    second = message_event_record(message=message, type="clicked")
    publish([first.pk])  # fails once: pending
    publish([second.pk])  # succeeds
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=31))
    assert webhook_deliveries_prune() == 1
    assert list(WebhookDelivery.objects.values_list("event_id", flat=True)) == [first.pk]


def test_a_non_ascii_path_is_delivered_percent_encoded(
    workspace, receiver, allow_private, message, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(workspace=workspace, url=f"{receiver.url}/bücher", events=[])
    with django_capture_on_commit_callbacks(execute=True):
        message_transition(message_id=message.pk, to_status="queued")
    [request] = receiver.wait_for(1)
    assert request.path == "/hooks/b%C3%BCcher"
    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == ["succeeded"]


def test_a_stored_url_no_request_can_be_made_to_fails_with_detail_instead_of_staying_pending(
    workspace, receiver, allow_private, message, django_capture_on_commit_callbacks
):
    # A row saved before creation checked the URL: the attempt is recorded as a permanent failure.
    webhook_endpoint_create(workspace=workspace, url="http://hooks..acme.test/x", events=[])
    with django_capture_on_commit_callbacks(execute=True):
        message_transition(message_id=message.pk, to_status="queued")
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "not a valid host name" in delivery.last_error
    assert delivery.next_attempt_at is None
    assert receiver.requests == []
