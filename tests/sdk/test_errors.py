"""Every exception class from a real bad request, and the retry rule on a real 429."""

import socket
import time

import pytest

from messaging.models import Message
from pufferpost.models import Workspace
from pufferpost_client import (
    APIConnectionError,
    APIError,
    Attachment,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PufferPost,
    RateLimitError,
    ValidationError,
)
from tests.helpers import REQUEST_ID
from tests.sdk.conftest import SEND_MAX_BODY_BYTES

pytestmark = pytest.mark.e2e


def assert_envelope(error: APIError, status: int, code: str) -> None:
    assert (error.status, error.code) == (status, code), error
    assert error.message and REQUEST_ID.match(error.request_id)
    assert error.request_id == error.headers["X-Request-Id"] == error.body["error"]["request_id"]
    assert str(error).startswith(f"{status} {code}: ")


def test_each_refusal_raises_its_class_with_the_envelope(account):
    client = account.client()

    with pytest.raises(BadRequestError) as caught:
        client.request("POST", "/v1/messages", content=b'{"from": ', headers={"Content-Type": "application/json"})
    assert_envelope(caught.value, 400, "invalid_json")

    with pytest.raises(AuthenticationError) as caught:
        PufferPost("key_live_nope", base_url=account.server).messages.list().first_page()
    assert_envelope(caught.value, 401, "unauthorized")

    with pytest.raises(PermissionDeniedError) as caught:
        account.client(account.key(scopes=["messages:read"], livemode=False)).messages.send(**account.send_body())
    assert_envelope(caught.value, 403, "missing_scope")
    assert "messages:send" in caught.value.message

    with pytest.raises(NotFoundError) as caught:
        client.messages.get("msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2")
    assert_envelope(caught.value, 404, "message_not_found")

    with pytest.raises(ConflictError) as caught:
        client.senders.create(account.sender.from_address)
    assert_envelope(caught.value, 409, "sender_exists")

    big = Attachment.from_bytes("big.bin", "application/octet-stream", b"\0" * SEND_MAX_BODY_BYTES)
    with pytest.raises(PayloadTooLargeError) as caught:
        client.messages.send(**account.send_body(attachments=[big]))
    assert_envelope(caught.value, 413, "payload_too_large")

    with pytest.raises(ValidationError) as caught:
        client.messages.send(**account.send_body(to="not-an-address", cc=["ok@example.com", "also bad"]))
    assert_envelope(caught.value, 422, "validation_failed")
    assert {(v.field, v.code) for v in caught.value.violations} == {("to", "invalid_email"), ("cc[1]", "invalid_email")}

    with pytest.raises(ValidationError) as caught:
        client.messages.send(**account.send_body(from_="nobody@mail.acme.test"))
    assert_envelope(caught.value, 422, "sender_not_available")
    assert caught.value.reason == "sender_not_registered"

    assert not Message.objects.filter(workspace=account.workspace).exists()


def test_an_unreachable_server_is_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(APIConnectionError):
        PufferPost("key_live_x", base_url=f"http://127.0.0.1:{port}", max_retries=3).workspace.get()


def test_a_429_is_retried_after_retry_after_only_when_the_request_is_safe_to_repeat(account):
    Workspace.objects.filter(pk=account.workspace.pk).update(rate_limit_per_minute=1)
    waits, slept = [], []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    client = account.client(max_retries=1, on_retry=waits.append, sleep=sleep)
    # The limiter's window is the wall-clock minute: start early in one, so the three refusals
    # below fall in the same window as the first send (waits at most 15 s).
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.5)
    first = client.messages.send(**account.send_body())
    assert (first.rate_limit.limit, first.rate_limit.remaining) == (1, 0)

    # Without an Idempotency-Key a send is not retried: the error comes at once, with the headers.
    with pytest.raises(RateLimitError) as caught:
        client.messages.send(**account.send_body())
    assert_envelope(caught.value, 429, "rate_limited")
    assert waits == [] and slept == []
    assert 1 <= caught.value.retry_after <= 61
    assert caught.value.rate_limit.remaining == 0 and caught.value.rate_limit.reset >= first.rate_limit.reset

    # A client that will not wait that long raises too.
    with pytest.raises(RateLimitError):
        account.client(max_retries=3, max_retry_wait=0.0).messages.send(**account.send_body(), idempotency_key="k-0")

    # With a key, the client waits Retry-After and tries again: the window has turned, the send goes through.
    retried = client.messages.send(**account.send_body(), idempotency_key="order-10")
    assert retried.status == "accepted" and retried.replayed is False
    assert [(n.attempt, n.status) for n in waits] == [(1, 429)]
    assert slept == [waits[0].wait] and 1 <= waits[0].wait <= 61
    assert Message.objects.filter(workspace=account.workspace).count() == 2
