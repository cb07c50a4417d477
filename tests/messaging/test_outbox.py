from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from messaging import services
from messaging.models import Message, MessageEvent
from messaging.tasks import sweep_outbox
from tests.messaging.conftest import make_sendable
from tests.messaging.factories import MessageFactory


def test_delivery_is_enqueued_only_when_the_transaction_commits(
    api, sendable, body, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post("/v1/messages", body(), format="json")
    assert response.status_code == 202
    assert enqueued == []  # nothing went to the broker inside the transaction
    assert len(callbacks) == 1
    callbacks[0]()
    assert enqueued == [[response.json()["id"]]]


@pytest.mark.django_db(transaction=True)
def test_message_and_accepted_event_are_committed_together_before_the_enqueue(workspace, make_client, monkeypatch):
    sendable = make_sendable(workspace)
    seen = []

    def delay(ids):
        # Runs after commit: a worker picking the task up finds the message and its event.
        seen.append(
            (ids, Message.objects.filter(pk__in=ids).count(), MessageEvent.objects.filter(message_id__in=ids).count())
        )

    monkeypatch.setattr(services.deliver_messages_task, "delay", delay)
    api = make_client(workspace)
    request = {"from": "receipts@mail.acme.com", "to": "jane@example.com", "templateId": sendable.template.id}
    message_id = api.post("/v1/messages", request, format="json").json()["id"]
    assert seen == [([message_id], 1, 1)]


@pytest.mark.django_db(transaction=True)
def test_a_broker_failure_at_commit_keeps_the_202_and_the_sweeper_recovers_it(
    workspace, make_client, monkeypatch, caplog
):
    sendable = make_sendable(workspace)

    def broker_down(ids):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(services.deliver_messages_task, "delay", broker_down)
    api = make_client(workspace)
    request = {"from": "receipts@mail.acme.com", "to": "jane@example.com", "templateId": sendable.template.id}
    response = api.post("/v1/messages", request, format="json")
    assert response.status_code == 202
    message_id = response.json()["id"]
    assert Message.objects.get(pk=message_id).status == "accepted"
    assert "outbox sweeper" in caplog.text

    recovered = []
    monkeypatch.setattr(services.deliver_messages_task, "delay", lambda ids: recovered.append(ids))
    assert sweep_outbox.delay().get() == 0  # too young to be considered lost
    Message.objects.filter(pk=message_id).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert sweep_outbox.delay().get() == 1
    assert recovered == [[message_id]]
    assert sweep_outbox.delay().get() == 0  # touched: not re-enqueued again on the next beat


def test_the_sweeper_ignores_messages_delivery_has_claimed(workspace, enqueued, django_capture_on_commit_callbacks):
    old = timezone.now() - timedelta(hours=1)
    waiting = MessageFactory(workspace=workspace)
    claimed = MessageFactory(workspace=workspace, status="queued")
    done = MessageFactory(workspace=workspace, status="delivered")
    Message.objects.filter(pk__in=[waiting.pk, claimed.pk, done.pk]).update(updated_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.message_outbox_sweep(older_than_seconds=60) == 1
    assert enqueued == [[waiting.pk]]


def test_the_sweeper_is_scheduled_on_the_default_queue(settings):
    from pufferpost.celery import app

    assert settings.CELERY_BEAT_SCHEDULE["messaging-outbox-sweep"]["task"] == "messaging.tasks.sweep_outbox"
    assert app.amqp.router.route({}, "messaging.tasks.sweep_outbox")["queue"].name == "default"
    assert app.amqp.router.route({}, "messaging.delivery.tasks.deliver_messages")["queue"].name == "delivery"
