"""Fixtures of the API-wide tests: the served schema, and a workspace seeded deep enough to send."""

import json
from types import SimpleNamespace

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from messaging import services as messaging_services
from messaging.models import MessageContent
from messaging.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from pufferpost.models import ApiKey
from pufferpost.services import api_key_revoke
from pufferpost.wsgi import application
from tests.factories import TemplateFactory, TemplateVersionFactory
from tests.messaging.factories import (
    ActiveSenderFactory,
    MessageFactory,
    SuppressionFactory,
    UnsubscribeFactory,
    UnsubscribeGroupFactory,
    VerifiedDomainFactory,
)

FROM = "receipts@mail.acme.com"


@pytest.fixture(scope="session")
def openapi():
    """The schema exactly as `GET /v1/openapi.json` serves it (the view touches no database)."""
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def seeded(workspace, make_client, dns):
    """Every kind of row the API reads, in `workspace`, plus a client with every scope.

    The loopback DNS fixture is active, so a domain refresh never leaves the machine.
    """
    domain = VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")
    sender = ActiveSenderFactory(workspace=workspace, from_address=FROM)
    template = TemplateFactory(workspace=workspace, name="Order confirmation", slug="order-confirmation")
    version = TemplateVersionFactory(template=template, version=1, subject="Hello {{ name }}")
    template.latest_version = 1
    template.save()
    group = UnsubscribeGroupFactory(workspace=workspace, name="Receipts")
    unsubscribe = UnsubscribeFactory(group=group, email="optout@example.com")
    suppression = SuppressionFactory(workspace=workspace, email="blocked@example.com")
    message = MessageFactory(
        workspace=workspace,
        sender=sender,
        from_address=FROM,
        template=template,
        template_version=version,
        reply_to="support@acme.com",
        metadata={"order_id": "o_9"},
        unsubscribe_group=group,
    )
    # What delivery keeps once it has built the message (GET /v1/messages/{id}/content).
    MessageContent.objects.create(
        message=message,
        subject="Hello Jane",
        text="Hello Jane\n",
        html="<p>Hello Jane</p>\n",
        built_at=message.created_at,
    )
    webhook = WebhookEndpoint.objects.create(
        workspace=workspace, url="https://hooks.acme.com/pufferpost", events=["delivered"], secret="whsec_test"
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=webhook,
        event_id="evt_01J9Z2K3M4N5P6Q7R8S9T0V1W2",
        event_type="delivered",
        payload=json.dumps({"id": "evt_01J9Z2K3M4N5P6Q7R8S9T0V1W2", "type": "delivered"}),
        status=DeliveryStatus.PENDING,
        attempts=1,
        last_response_status=503,
        next_attempt_at=timezone.now(),
    )
    WebhookAttempt.objects.create(
        delivery=delivery, started_at=timezone.now(), duration_ms=12, response_status=503, response_body="busy"
    )
    client = make_client(workspace)
    revoked = make_client(workspace)
    api_key_revoke(key=ApiKey.objects.get(key_hash=ApiKey.hash(revoked.raw_key)))
    return SimpleNamespace(
        workspace=workspace,
        domain=domain,
        sender=sender,
        template=template,
        version=version,
        group=group,
        unsubscribe=unsubscribe,
        suppression=suppression,
        message=message,
        webhook=webhook,
        delivery=delivery,
        client=client,
        raw_key=client.raw_key,
        revoked_key=revoked.raw_key,
        ids={
            "dom": domain.id,
            "snd": sender.id,
            "tpl": template.id,
            "msg": message.id,
            "grp": group.id,
            "whk": webhook.id,
        },
    )


@pytest.fixture
def wsgi_app():
    """The real WSGI application, called in-process inside the test's transaction.

    Django's test client stops `close_old_connections` from running around each request (it would
    drop the connection holding the test's transaction); a raw WSGI call needs the same care.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def no_delivery(monkeypatch):
    """Accepted messages are not handed to delivery (the fuzzer's recipients are not real)."""
    enqueued = []
    monkeypatch.setattr(messaging_services.deliver_messages_task, "delay", enqueued.append)
    return enqueued
