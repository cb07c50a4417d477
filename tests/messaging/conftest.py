import base64
from types import SimpleNamespace

import pytest

from messaging import services
from tests.factories import TemplateFactory, TemplateVersionFactory
from tests.messaging.factories import ActiveSenderFactory, VerifiedDomainFactory

FROM = "receipts@mail.acme.com"


def make_sendable(workspace):
    """A workspace that can send: verified domain, active sender, a template with two versions."""
    domain = VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")
    sender = ActiveSenderFactory(workspace=workspace, from_address=FROM)
    template = TemplateFactory(workspace=workspace, name="Order confirmation", slug="order-confirmation")
    TemplateVersionFactory(template=template, version=1)
    latest = TemplateVersionFactory(template=template, version=2, subject="Your order")
    template.latest_version = 2
    template.save()
    return SimpleNamespace(workspace=workspace, domain=domain, sender=sender, template=template, version=latest)


@pytest.fixture
def sendable(workspace):
    return make_sendable(workspace)


@pytest.fixture
def body(sendable):
    """A minimal valid send body; tests copy and adjust it."""

    def make(**overrides):
        data = {"from": FROM, "to": "jane@example.com", "templateId": sendable.template.id, "data": {"name": "Jane"}}
        data.update(overrides)
        return {k: v for k, v in data.items() if v is not ...}

    return make


@pytest.fixture
def enqueued(monkeypatch):
    """Records every `deliver_messages.delay(ids)` the send path makes (after commit)."""
    calls = []
    monkeypatch.setattr(services.deliver_messages_task, "delay", lambda ids: calls.append(list(ids)))
    return calls


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
