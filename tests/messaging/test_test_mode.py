"""Test keys (`key_test_…`): every check a live send runs, separate reads, no quota, own rate window."""

import pytest
from django.core.management import call_command

from messaging import limits
from messaging.feedback.reputation import sender_reputation_stats
from messaging.models import IdempotencyRecord, Message
from pufferpost.models import ApiKey
from tests.factories import SenderFactory
from tests.helpers import assert_envelope, violations
from tests.messaging.factories import MessageFactory, SuppressionFactory


def send(client, body, **headers):
    return client.post("/v1/messages", body, format="json", **headers)


def test_create_api_key_test_prints_a_test_key_that_authenticates(db, client, workspace):
    import json
    from io import StringIO

    out = StringIO()
    call_command("create_api_key", workspace.id, "--test", "--scope", "messages:read", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["key"].startswith("key_test_") and printed["test"] is True
    key = ApiKey.objects.get(pk=printed["id"])
    assert key.livemode is False and key.prefix == printed["key"][:16]
    response = client.get("/v1/messages", HTTP_AUTHORIZATION=f"Bearer {printed['key']}")
    assert response.status_code == 200 and response.json()["data"] == []
    # Scopes hold for test keys exactly as for live ones.
    response = client.post(
        "/v1/messages", {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {printed['key']}"
    )
    assert_envelope(response, 403, "missing_scope")


def test_a_revoked_test_key_is_refused(db, client, workspace, make_client):
    from pufferpost.services import api_key_revoke

    test_client = make_client(workspace, livemode=False)
    api_key_revoke(key=ApiKey.objects.get(livemode=False))
    assert_envelope(test_client.get("/v1/messages"), 401, "unauthorized")


def test_a_test_send_is_accepted_and_marked_test(
    test_api, sendable, body, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = send(test_api, body())
    assert response.status_code == 202, response.content
    assert set(response.json()) == {"id", "status"}
    message = Message.objects.get(pk=response.json()["id"])
    assert message.livemode is False
    assert enqueued == [[message.pk]]  # it goes through delivery like any message (there: the simulator)
    view = test_api.get(f"/v1/messages/{message.pk}").json()
    assert view["test"] is True and view["status"] == "accepted"


def test_live_and_test_messages_never_mix_in_reads(api, test_api, sendable, body, enqueued):
    live_id = send(api, body(to="live@example.com")).json()["id"]
    test_id = send(test_api, body(to="test@example.com")).json()["id"]

    assert [m["id"] for m in api.get("/v1/messages").json()["data"]] == [live_id]
    assert [m["id"] for m in test_api.get("/v1/messages").json()["data"]] == [test_id]
    assert api.get(f"/v1/messages/{live_id}").json()["test"] is False
    assert_envelope(api.get(f"/v1/messages/{test_id}"), 404, "message_not_found")
    assert_envelope(api.get(f"/v1/messages/{test_id}/events"), 404, "message_not_found")
    assert_envelope(test_api.get(f"/v1/messages/{live_id}"), 404, "message_not_found")
    assert_envelope(test_api.get(f"/v1/messages/{live_id}/events"), 404, "message_not_found")
    assert test_api.get(f"/v1/messages/{test_id}/events").json()["data"][0]["type"] == "accepted"
    assert [m["id"] for m in test_api.get("/v1/messages?recipient=live@example.com").json()["data"]] == []


def test_test_mail_never_counts_toward_the_monthly_quota(api, test_api, sendable, body, enqueued):
    sendable.workspace.monthly_quota = 1
    sendable.workspace.save()
    for _ in range(3):
        assert send(test_api, body()).status_code == 202
    batch = test_api.post("/v1/messages/batch", {"messages": [body(), body()]}, format="json").json()["data"]
    assert [item["status"] for item in batch] == ["accepted", "accepted"]
    assert api.get("/v1/workspace").json()["monthly_quota_used"] == 0
    assert send(api, body()).status_code == 202
    assert_envelope(send(api, body()), 429, "quota_exceeded")
    # Test keys keep working when the live quota is used up.
    assert send(test_api, body()).status_code == 202
    assert Message.objects.filter(livemode=True).count() == 1


def test_the_quota_reseeded_from_the_database_leaves_test_messages_out(api, sendable, body, redis_client):
    sendable.workspace.monthly_quota = 2
    sendable.workspace.save()
    MessageFactory.create_batch(3, workspace=sendable.workspace, sender=sendable.sender, livemode=False)
    MessageFactory(workspace=sendable.workspace, sender=sendable.sender)
    redis_client.delete(limits.month_key(sendable.workspace.id))
    assert api.get("/v1/workspace").json()["monthly_quota_used"] == 1


def test_test_keys_are_rate_limited_in_a_window_of_their_own(api, test_api, sendable, body, enqueued):
    sendable.workspace.rate_limit_per_minute = 1
    sendable.workspace.save()
    first = send(test_api, body())
    assert first.status_code == 202 and first["RateLimit-Limit"] == "1" and first["RateLimit-Remaining"] == "0"
    limited = send(test_api, body())
    assert_envelope(limited, 429, "rate_limited")
    assert int(limited["Retry-After"]) >= 1
    # A CI run using the test key never throttles production sends.
    assert send(api, body()).status_code == 202


def test_idempotency_works_in_test_mode_and_the_key_spaces_are_separate(api, test_api, sendable, body, enqueued):
    key = {"HTTP_IDEMPOTENCY_KEY": "order-9"}
    first = send(test_api, body(), **key)
    replay = send(test_api, body(), **key)
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert_envelope(send(test_api, body(to="other@example.com"), **key), 409, "idempotency_key_reused")
    live = send(api, body(), **key)
    assert live.status_code == 202 and "Idempotent-Replayed" not in live
    assert live.json()["id"] != first.json()["id"]
    assert set(IdempotencyRecord.objects.values_list("livemode", flat=True)) == {True, False}


def test_test_sends_are_validated_like_live_ones(test_api, sendable, body):
    error = assert_envelope(send(test_api, body(subject="Hi")), 422, "validation_failed")
    assert ("subject", "unknown_field") in violations(error)
    assert_envelope(send(test_api, body(templateId="tpl_nope")), 422, "template_not_found")
    SuppressionFactory(workspace=sendable.workspace, email="gone@example.com")
    assert_envelope(send(test_api, body(to="gone@example.com")), 422, "recipient_suppressed")
    assert_envelope(send(test_api, body(**{"from": "nobody@mail.acme.com"})), 422, "sender_not_available")
    assert not Message.objects.exists()


def test_a_test_key_may_send_from_a_registered_sender_before_it_is_approved(api, test_api, sendable, body, enqueued):
    SenderFactory(workspace=sendable.workspace, from_address="new@unverified.example")
    assert_envelope(send(api, body(**{"from": "new@unverified.example"})), 422, "sender_not_available")
    response = send(test_api, body(**{"from": "new@unverified.example"}))
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("field", ["to", "cc"])
def test_a_live_key_cannot_address_the_simulator(api, sendable, body, settings, field):
    settings.PUFFERPOST_SIMULATOR_DOMAIN = "sim.acme.test"
    value = "bounced@sim.acme.test" if field == "to" else ["bounced@sim.acme.test"]
    error = assert_envelope(send(api, body(**{field: value})), 422, "simulator_needs_test_key")
    assert "key_test_" in error["message"]
    assert not Message.objects.exists()


def test_test_messages_are_left_out_of_the_reputation_rates(sendable):
    from django.utils import timezone

    for status in ("bounced", "bounced", "delivered"):
        MessageFactory(workspace=sendable.workspace, sender=sendable.sender, status=status, livemode=False)
    MessageFactory(workspace=sendable.workspace, sender=sendable.sender, status="delivered")
    stats = sender_reputation_stats(sender_id=sendable.sender.pk, since=timezone.now() - timezone.timedelta(days=1))
    assert (stats.volume, stats.bounced) == (1, 0)
