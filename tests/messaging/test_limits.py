import time

import redis

from messaging import limits
from messaging.models import Message
from tests.helpers import assert_envelope
from tests.messaging.factories import MessageFactory


def send(api, body):
    return api.post("/v1/messages", body, format="json")


def assert_rate_headers(response, limit, remaining):
    assert response["RateLimit-Limit"] == str(limit)
    assert response["RateLimit-Remaining"] == str(remaining)
    reset = int(response["RateLimit-Reset"])
    assert time.time() <= reset <= time.time() + 61


def test_every_send_response_carries_rate_limit_headers(api, sendable, body):
    assert_rate_headers(send(api, body()), 600, 599)
    assert_rate_headers(send(api, body(cc="bad")), 600, 598)
    assert_rate_headers(send(api, body(templateId="tpl_nope")), 600, 597)
    assert_rate_headers(api.post("/v1/messages/batch", {"messages": []}, format="json"), 600, 596)


def test_over_the_limit_is_429_with_retry_after_and_headers(api, sendable, body):
    sendable.workspace.rate_limit_per_minute = 2
    sendable.workspace.save()
    send(api, body())
    send(api, body())
    response = send(api, body())
    assert_envelope(response, 429, "rate_limited")
    assert_rate_headers(response, 2, 0)
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Message.objects.count() == 2
    batch = api.post("/v1/messages/batch", {"messages": [body()]}, format="json")
    assert_envelope(batch, 429, "rate_limited")
    assert batch["Retry-After"]


def test_a_batch_counts_as_one_request(api, sendable, body):
    sendable.workspace.rate_limit_per_minute = 2
    sendable.workspace.save()
    response = api.post(
        "/v1/messages/batch", {"messages": [body(to=f"r{i}@example.com") for i in range(10)]}, format="json"
    )
    assert response.status_code == 200
    assert_rate_headers(response, 2, 1)
    assert send(api, body()).status_code == 202


def test_limits_are_per_workspace(api, sendable, body, other_api, other_workspace):
    sendable.workspace.rate_limit_per_minute = 1
    sendable.workspace.save()
    send(api, body())
    assert_envelope(send(api, body()), 429, "rate_limited")
    assert other_api.post("/v1/messages", {}, format="json")["RateLimit-Remaining"] == "599"


def test_paused_comes_before_the_limiter(api, sendable, body):
    sendable.workspace.sending_paused = True
    sendable.workspace.save()
    response = send(api, body())
    assert_envelope(response, 403, "sending_paused")
    assert "RateLimit-Limit" not in response


def test_the_monthly_quota_counts_accepted_messages(api, sendable, body):
    sendable.workspace.monthly_quota = 2
    sendable.workspace.save()
    assert send(api, body(templateId="tpl_nope")).status_code == 422  # rejected sends do not count
    assert send(api, body()).status_code == 202
    assert send(api, body()).status_code == 202
    error = assert_envelope(send(api, body()), 429, "quota_exceeded")
    assert "2" in error["message"]
    assert Message.objects.count() == 2
    assert api.get("/v1/workspace").json()["monthly_quota_used"] == 2


def test_the_quota_is_enforced_per_batch_item(api, sendable, body):
    sendable.workspace.monthly_quota = 3
    sendable.workspace.save()
    send(api, body())
    items = [body(to=f"r{i}@example.com") for i in range(3)] + [body(templateId="tpl_nope")]
    results = api.post("/v1/messages/batch", {"messages": items}, format="json").json()["data"]
    assert [r["status"] for r in results[:2]] == ["accepted", "accepted"]
    assert results[2]["error"]["code"] == "quota_exceeded"
    assert results[3]["error"]["code"] == "template_not_found"
    assert Message.objects.count() == 3
    assert api.get("/v1/workspace").json()["monthly_quota_used"] == 3


def test_the_quota_counter_is_reseeded_from_the_database(api, sendable, body, redis_client):
    sendable.workspace.monthly_quota = 3
    sendable.workspace.save()
    MessageFactory.create_batch(2, workspace=sendable.workspace, sender=sendable.sender)
    redis_client.delete(limits.month_key(sendable.workspace.id))
    assert api.get("/v1/workspace").json()["monthly_quota_used"] == 2
    assert send(api, body()).status_code == 202
    assert int(redis_client.get(limits.month_key(sendable.workspace.id))) == 3
    assert_envelope(send(api, body()), 429, "quota_exceeded")


def test_workspace_shows_quota_use(api, workspace):
    body = api.get("/v1/workspace").json()
    assert body["monthly_quota_used"] == 0
    assert body["monthly_quota"] == 1_000_000


def test_the_limiter_fails_open_when_redis_is_unreachable(api, sendable, body, monkeypatch):
    def down():
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(limits, "_script", down)
    response = send(api, body())
    assert response.status_code == 202
    assert response["RateLimit-Limit"] == "600"
    assert (
        api.post("/v1/messages/batch", {"messages": [body()]}, format="json").json()["data"][0]["status"] == "accepted"
    )


def test_an_oversized_batch_body_is_413(api, sendable, body, settings):
    settings.PUFFERPOST_BATCH_MAX_BODY_BYTES = 500
    response = api.post("/v1/messages/batch", {"messages": [body(data={"x": "y" * 600})]}, format="json")
    assert_envelope(response, 413, "payload_too_large")
    assert response["RateLimit-Limit"] == "600"


def test_a_rate_limited_batch_carries_the_rate_limit_headers(api, sendable, body):
    sendable.workspace.rate_limit_per_minute = 1
    sendable.workspace.save()
    assert send(api, body()).status_code == 202
    response = api.post("/v1/messages/batch", {"messages": [body()]}, format="json")
    assert_envelope(response, 429, "rate_limited")
    assert_rate_headers(response, 1, 0)
    assert Message.objects.count() == 1
