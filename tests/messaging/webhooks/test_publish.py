import json

from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.webhooks.models import WebhookDelivery, WebhookEndpoint
from messaging.webhooks.services import webhook_endpoint_create, webhook_endpoint_delete
from pufferpost.models import Workspace
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


def _send(api, sendable):
    with CaptureQueriesContext(connection) as queries:
        response = api.post(
            "/v1/messages", {"from": FROM, "to": "jane@example.com", "templateId": sendable.template.id}, format="json"
        )
    assert response.status_code == 202
    return [q["sql"] for q in queries.captured_queries if WebhookEndpoint._meta.db_table in q["sql"]]


def test_a_send_in_a_workspace_without_endpoints_looks_none_up_and_the_count_follows_create_and_delete(
    api, workspace, django_capture_on_commit_callbacks
):
    sendable = make_sendable(workspace)
    assert _send(api, sendable) == []

    endpoint = webhook_endpoint_create(workspace=workspace, url="https://hooks.example.org/a", events=["accepted"])
    second = webhook_endpoint_create(workspace=workspace, url="https://hooks.example.org/b", events=["delivered"])
    assert Workspace.objects.get(pk=workspace.pk).enabled_webhook_endpoints == 2
    with django_capture_on_commit_callbacks():
        assert len(_send(api, sendable)) == 1
    assert WebhookDelivery.objects.filter(endpoint=endpoint, event_type="accepted").count() == 1

    webhook_endpoint_delete(endpoint=endpoint)
    webhook_endpoint_delete(endpoint=endpoint)  # a second delete changes nothing
    assert Workspace.objects.get(pk=workspace.pk).enabled_webhook_endpoints == 1
    webhook_endpoint_delete(endpoint=second)
    assert Workspace.objects.get(pk=workspace.pk).enabled_webhook_endpoints == 0
    assert _send(api, sendable) == []
    assert WebhookDelivery.objects.filter(endpoint=endpoint, event_type="accepted").count() == 1
