"""Writes other than sends are rate limited per API key (PUFFERPOST_WRITE_RATE_LIMIT_PER_MINUTE)."""

import time

import pytest

from messaging.models import Suppression
from tests.helpers import assert_envelope


@pytest.fixture
def write_limit(settings):
    settings.PUFFERPOST_WRITE_RATE_LIMIT_PER_MINUTE = 3
    # The window is a clock minute: start well inside one, so the test never straddles two.
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    return 3


def suppress(client, email):
    return client.post("/v1/suppressions", {"email": email}, format="json")


def test_writes_past_the_limit_are_429_with_retry_after_and_change_nothing(api, workspace, write_limit):
    for i in range(write_limit):
        assert suppress(api, f"a{i}@example.com").status_code == 201
    refused = suppress(api, "late@example.com")
    error = assert_envelope(refused, 429, "rate_limited")
    assert error["request_id"].startswith("req_")
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert not Suppression.objects.filter(email="late@example.com").exists()
    # Every kind of write counts: a template create and a delete are refused too.
    assert_envelope(api.post("/v1/templates", {"name": "Late"}, format="json"), 429, "rate_limited")
    assert_envelope(api.delete("/v1/suppressions/a0@example.com"), 429, "rate_limited")


def test_reads_and_other_keys_are_not_held_back(api, make_client, workspace, write_limit):
    for i in range(write_limit + 1):
        suppress(api, f"b{i}@example.com")
    assert api.get("/v1/suppressions").status_code == 200
    other_key = make_client(workspace)
    assert suppress(other_key, "other@example.com").status_code == 201


def test_sends_have_their_own_limiter_and_do_not_count_as_writes(api, make_client, workspace, write_limit):
    for i in range(write_limit):
        assert suppress(api, f"c{i}@example.com").status_code == 201
    # Refused for its body, not for the write limit: the send path never reaches this limiter.
    response = api.post("/v1/messages", {"to": "jane@example.com"}, format="json")
    assert_envelope(response, 422, "validation_failed")
    assert response["RateLimit-Limit"]
