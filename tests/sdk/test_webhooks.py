"""Webhooks through the SDK: a real signed delivery from the worker to a loopback receiver, checked
with `verify_webhook`; a changed body, another secret or an old timestamp fail."""

import json
import time

import pytest

from messaging.webhooks.models import WebhookEndpoint
from messaging.webhooks.services import webhook_signature as server_signature
from pufferpost_client import (
    SIGNATURE_HEADER,
    NotFoundError,
    WebhookVerificationError,
    verify_webhook,
    webhook_signature,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def test_a_real_delivery_verifies_and_a_tampered_one_does_not(account, receiver):
    client = account.client(account.live_key)
    hook = client.webhooks.create(receiver.url, events=["delivered"])
    assert hook.id.startswith("whk_") and hook.secret.startswith("whsec_") and hook.events == ["delivered"]
    assert WebhookEndpoint.objects.get(pk=hook.id).secret == hook.secret
    assert client.webhooks.get(hook.id).secret is None  # shown once
    assert [h.id for h in client.webhooks.list()] == [hook.id]

    sent = account.client().messages.send(**account.send_body())  # test mode: the simulator delivers
    [request] = receiver.wait_for(1, timeout=60)
    header = request.headers[SIGNATURE_HEADER]
    event = verify_webhook(hook.secret, header, request.body)
    assert event["type"] == "delivered" and event["test"] is True
    assert event["message"]["id"] == sent.id and event["id"].startswith("evt_")

    tampered = request.body.replace(sent.id.encode(), b"msg_" + b"0" * 26)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(hook.secret, header, tampered)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook("whsec_someone_else", header, request.body)
    with pytest.raises(WebhookVerificationError, match="old"):
        verify_webhook(hook.secret, header, request.body, now=time.time() + 3600)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(hook.secret, None, request.body)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(hook.secret, "v1=abc", request.body)

    delivery = wait_for(
        lambda: (d := list(client.webhooks.deliveries(hook.id))) and d[0].status == "succeeded" and d[0],
        what="the delivery to be recorded as succeeded",
    )
    assert delivery.event_id == event["id"] and delivery.event_type == "delivered"
    assert delivery.payload == json.loads(request.body)
    assert [a.response_status for a in delivery.attempts] == [200]

    client.webhooks.delete(hook.id)
    assert WebhookEndpoint.objects.get(pk=hook.id).disabled_at is not None
    with pytest.raises(NotFoundError) as caught:
        client.webhooks.get(hook.id)
    assert caught.value.code == "webhook_not_found"


def test_the_sdk_signs_exactly_as_the_server_does():
    body = json.dumps({"id": "evt_01J9Z2K3M4N5P6Q7R8S9T0V1W2", "type": "delivered", "name": "Zoë"}).encode()
    stamp = int(time.time())
    header = server_signature(secret="whsec_abc", timestamp=stamp, body=body)
    assert webhook_signature("whsec_abc", stamp, body) == header
    assert verify_webhook("whsec_abc", header, body.decode())["name"] == "Zoë"
    # A rotation may send two v1 signatures: either one matching is enough.
    assert verify_webhook("whsec_abc", f"t={stamp},v1={'0' * 64},{header.split(',')[1]}", body)["type"] == "delivered"
