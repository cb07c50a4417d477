"""The SDK against the real server: gunicorn and a Celery worker on loopback, sharing the test database.

One server per test session (per xdist worker), started by the first SDK test: its Redis keys and
queues carry a prefix of their own, so its worker never takes another test's tasks. Each test gets
its own workspace and keys, and its data is committed (`transactional_db`), so the server
processes see it and the flush after the test removes it.
"""

import pytest
from django.conf import settings

from messaging.models import Message
from messaging.webhooks.models import WebhookDelivery
from pufferpost.services import api_key_create
from pufferpost_client import PufferPost
from templates_app.models import Template, TemplateVersion
from tests.factories import SenderFactory, WorkspaceFactory
from tests.helpers import wait_for
from tests.messaging.webhooks.conftest import Receiver
from tests.processes import Processes

# Small enough that a test can exceed it with a real request (413), large enough for every other send.
SEND_MAX_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker, dns_server, tmp_path_factory):
    """The base URL of a gunicorn serving the project, with a Celery worker behind it."""
    env = {
        "PUFFERPOST_DNS_NAMESERVERS": f"{dns_server.host}:{dns_server.port}",
        "PUFFERPOST_DNS_TIMEOUT": "1.0",
        "PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE": "true",
        "PUFFERPOST_SEND_MAX_BODY_BYTES": str(SEND_MAX_BODY_BYTES),
        "PUFFERPOST_REDIS_KEY_PREFIX": f"{settings.REDIS_KEY_PREFIX}sdk:",
    }
    with django_db_blocker.unblock():
        group = Processes(tmp_path_factory.mktemp("sdk-server"))
        try:
            web = group.web(**env)
            group.worker(**env)
            yield web.url
        finally:
            group.stop_all()


class Account:
    """One workspace with a registered sender, a template with one version, and keys."""

    def __init__(self, server):
        self.server = server
        self.workspace = WorkspaceFactory()
        self.sender = SenderFactory(workspace=self.workspace, from_address="receipts@mail.acme.test")
        self.template = Template.objects.create(
            workspace=self.workspace, name="Order confirmation", slug="order", latest_version=1
        )
        TemplateVersion.objects.create(
            template=self.template,
            version=1,
            subject="Order {{ order_id }} confirmed",
            html="<p>Hi {{ name }}, order {{ order_id }} is on its way.</p>",
            text="Hi {{ name }}, order {{ order_id }} is on its way.",
        )
        self.test_key = self.key(livemode=False)
        self.live_key = self.key()

    def key(self, scopes=None, livemode=True) -> str:
        return api_key_create(workspace=self.workspace, scopes=scopes, livemode=livemode)[1]

    def client(self, key=None, **options) -> PufferPost:
        return PufferPost(key or self.test_key, base_url=self.server, **options)

    def send_body(self, to="delivered@simulator.invalid", **extra):
        return {
            "from_": self.sender.from_address,
            "to": to,
            "template": "order",
            "data": {"name": "Jane", "order_id": "o_9"},
            **extra,
        }


@pytest.fixture
def account(server, transactional_db):
    account = Account(server)
    yield account
    # Let the worker finish this test's mail and webhooks before the flush truncates the tables
    # (a TRUNCATE beside a worker's row locks deadlocks).
    wait_for(
        lambda: not Message.objects.filter(status__in=["accepted", "queued"]).exists(),
        what="the worker to finish the test's mail",
        timeout=60,
    )
    wait_for(
        lambda: not WebhookDelivery.objects.filter(status="pending").exists(),
        what="the worker to finish the test's webhooks",
        timeout=60,
    )


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()
