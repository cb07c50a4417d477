import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from messaging import services
from messaging.models import IdempotencyRecord, Message
from messaging.tasks import purge_idempotency_records
from tests.helpers import assert_envelope
from tests.messaging.conftest import make_sendable


def send(api, body, key):
    return api.post("/v1/messages", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_replays_the_first_202(api, sendable, body):
    first = send(api, body(), "order-9-confirmation")
    second = send(api, body(), "order-9-confirmation")
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1


def test_the_fingerprint_normalises_emails_and_ignores_key_order(api, sendable, body):
    first = send(api, body(data={"a": 1, "b": 2}), "k")
    second = send(api, body(to="JANE@example.com ", data={"b": 2, "a": 1}), "k")
    assert second.status_code == 202 and second.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "change",
    [
        {"to": "sam@example.com"},
        {"data": {"name": "Sam"}},
        {"template": "x"},
        {"from": "other@mail.acme.com"},
        {"templateId": "tpl_01J9Y0AA11BB22CC33DD44EE55"},
    ],
)
def test_same_key_with_a_different_body_is_409(api, sendable, body, change):
    send(api, body(), "k")
    assert_envelope(send(api, body(**change), "k"), 409, "idempotency_key_reused")
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "change", [{"metadata": {"order_id": "o_10"}}, {"cc": ["audit@example.com"]}, {"replyTo": "help@example.com"}]
)
def test_fields_outside_the_fingerprint_replay_the_first_202(api, sendable, body, change):
    """The guide fingerprints from, to, templateId, template and data; nothing else."""
    first = send(api, body(), "k")
    second = send(api, body(**change), "k")
    assert second.status_code == 202
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1


def test_keys_are_scoped_to_the_workspace(api, sendable, body, other_workspace, make_client):
    make_sendable(other_workspace)
    other = make_client(other_workspace)
    first = send(api, body(), "shared-key")
    second = send(other, {**body(), "templateId": other_workspace.templates.get().id}, "shared-key")
    assert second.status_code == 202 and second.json()["id"] != first.json()["id"]


def test_a_rejected_request_stores_nothing_so_a_fixed_retry_runs_afresh(api, sendable, body):
    assert_envelope(send(api, body(cc="bad"), "k"), 422, "validation_failed")
    sendable.sender.state = "paused"
    sendable.sender.save()
    assert_envelope(send(api, body(), "k"), 422, "sender_not_available")
    assert not IdempotencyRecord.objects.exists()
    sendable.sender.state = "active"
    sendable.sender.save()
    assert send(api, body(), "k").status_code == 202


def test_a_rate_limited_request_stores_nothing(api, sendable, body):
    sendable.workspace.rate_limit_per_minute = 1
    sendable.workspace.save()
    assert send(api, body(to="first@example.com"), "a").status_code == 202
    assert_envelope(send(api, body(), "b"), 429, "rate_limited")
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["a"]


def test_a_key_over_255_characters_is_422(api, sendable, body):
    error = assert_envelope(send(api, body(), "k" * 256), 422, "validation_failed")
    assert error["violations"][0]["field"] == "Idempotency-Key"
    assert send(api, body(), "k" * 255).status_code == 202


def test_old_keys_are_purged_after_the_retention(api, sendable, body, settings):
    send(api, body(), "old")
    send(api, body(to="x@example.com"), "new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    assert purge_idempotency_records.delay().get() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert settings.PUFFERPOST_IDEMPOTENCY_TTL >= 86400
    assert "messaging-idempotency-purge" in settings.CELERY_BEAT_SCHEDULE


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_with_one_key_create_exactly_one_message(workspace, make_client, monkeypatch):
    sendable = make_sendable(workspace)
    monkeypatch.setattr(services.deliver_messages_task, "delay", lambda ids: None)
    raw_key = make_client(workspace).raw_key
    request = {"from": "receipts@mail.acme.com", "to": "jane@example.com", "templateId": sendable.template.id}
    barrier = threading.Barrier(20)
    responses = []

    def worker():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        try:
            barrier.wait()
            responses.append(client.post("/v1/messages", request, format="json", HTTP_IDEMPOTENCY_KEY="race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Message.objects.count() == 1
    message_id = Message.objects.get().id
    # The losers wait on the key's unique index until the winner commits, then replay its 202.
    assert len(responses) == 20
    for response in responses:
        assert response.status_code == 202, response.content
        assert response.json() == {"id": message_id, "status": "accepted"}


def test_a_key_with_a_nul_character_is_422_not_500(api, sendable, body):
    response = api.post("/v1/messages", body(), format="json", HTTP_IDEMPOTENCY_KEY="order-9\x00")
    error = assert_envelope(response, 422, "validation_failed")
    assert error["violations"][0]["field"] == "Idempotency-Key"
    assert error["violations"][0]["code"] == "invalid_character"
    assert not IdempotencyRecord.objects.exists()


def test_a_replayed_202_carries_the_rate_limit_headers(api, sendable, body):
    """Every send response carries the RateLimit headers, the replayed one included."""
    send(api, body(), "k")
    replay = send(api, body(), "k")
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert replay["RateLimit-Limit"] == "600"
    assert int(replay["RateLimit-Remaining"]) < 600
    assert int(replay["RateLimit-Reset"]) >= int(time.time())


def test_the_replay_is_the_original_202_even_after_the_message_moved_on(api, sendable, body):
    """ "Same key, same body → the original 202 response is replayed", not a fresh read of the message."""
    first = send(api, body(), "k")
    Message.objects.filter(pk=first.json()["id"]).update(status="delivered")
    replay = send(api, body(), "k")
    assert replay.status_code == 202
    assert replay.json() == {"id": first.json()["id"], "status": "accepted"}
    assert Message.objects.count() == 1
