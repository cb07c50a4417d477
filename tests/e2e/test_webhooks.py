"""End to end: a committed lifecycle change reaches a loopback receiver through real Celery processes."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from messaging.lifecycle import message_transition
from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from tests.helpers import wait_for
from tests.messaging.webhooks.conftest import verify_signature

pytestmark = pytest.mark.e2e


def wait_for_status(delivery_filter, status, timeout=20.0):
    def reached():
        delivery = WebhookDelivery.objects.filter(**delivery_filter).first()
        return delivery if delivery is not None and delivery.status == status else None

    return wait_for(
        reached,
        what=f"a delivery to reach {status}",
        timeout=timeout,
        detail=lambda: list(WebhookDelivery.objects.values()),
    )


def test_a_committed_transition_is_posted_signed_by_a_worker(processes, receiver, message, workspace, settings):
    settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = True
    hook = webhook_endpoint_create(workspace=workspace, url=receiver.url, events=["queued"])
    processes.worker(PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE="true")

    with transaction.atomic():
        message_transition(message_id=message.pk, to_status="queued")

    [request] = receiver.wait_for(1, timeout=30)
    assert verify_signature(hook.secret, request.headers["PufferPost-Signature"], request.body)
    assert request.json["type"] == "queued"
    assert request.json["message"]["id"] == message.pk
    delivery = wait_for_status({"endpoint": hook}, "succeeded")
    assert delivery.event_id == request.json["id"]
    assert delivery.attempt_log.get().response_status == 200


def test_beat_picks_up_a_due_retry(processes, receiver, message, workspace, settings):
    settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = True
    receiver.script.append({"status": 500})
    hook = webhook_endpoint_create(workspace=workspace, url=receiver.url, events=[])
    processes.worker(PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE="true")
    processes.beat(PUFFERPOST_WEBHOOKS_SWEEP_INTERVAL="0.5")

    with transaction.atomic():
        message_transition(message_id=message.pk, to_status="queued")
    receiver.wait_for(1, timeout=30)
    delivery = wait_for_status({"endpoint": hook, "attempts": 1}, "pending")
    # The clock moves on: the retry is due and nothing but beat knows about it.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    first, second = receiver.wait_for(2, timeout=30)
    assert first.body == second.body
    delivery = wait_for_status({"pk": delivery.pk}, "succeeded")
    assert [a.response_status for a in delivery.attempt_log.all()] == [500, 200]
