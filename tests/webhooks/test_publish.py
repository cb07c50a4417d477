import json

from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from tests.messaging.conftest import FROM, make_sendable


def test_an_accepted_send_is_published_to_endpoints_that_want_accepted(
    api, workspace, django_capture_on_commit_callbacks
):
    sendable = make_sendable(workspace)
    wants = webhook_endpoint_create(workspace=workspace, url="https://hooks.example.org/a", events=["accepted"])
    other = webhook_endpoint_create(workspace=workspace, url="https://hooks.example.org/d", events=["delivered"])

    with django_capture_on_commit_callbacks():
        response = api.post(
            "/v1/messages",
            {"from": FROM, "to": "jane@example.com", "templateId": sendable.template.id},
            format="json",
        )
    assert response.status_code == 202

    [delivery] = WebhookDelivery.objects.filter(endpoint=wants)
    payload = json.loads(delivery.payload)
    assert (payload["type"], payload["message"]["id"]) == ("accepted", response.json()["id"])
    assert not WebhookDelivery.objects.filter(endpoint=other).exists()
