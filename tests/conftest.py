"""Shared fixtures: real PostgreSQL (pytest-django), real Redis, a real DNS server on loopback."""

import uuid

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from pufferpost import celery_app
from pufferpost.localdev.dns_server import LoopbackDnsServer
from pufferpost.localdev.world import World
from pufferpost.services import api_key_create
from tests.factories import WorkspaceFactory
from tests.processes import Processes

SESSION_PREFIX = f"pp-test-{uuid.uuid4().hex[:10]}:"


def pytest_configure(config):
    # Unit tests run tasks in-process; end-to-end tests start real workers of their own.
    celery_app.conf.task_always_eager = True
    # The test world: every MX is a sink on loopback (tests of the policy switch it off).
    settings.PUFFERPOST_SMTP_ALLOW_PRIVATE = True
    # This run's Redis keys and queues carry their own prefix: parallel runs never share a queue.
    settings.REDIS_KEY_PREFIX = SESSION_PREFIX
    # Deployed as an operator would: a return path is offered (the inbound MX host and the address
    # mail leaves from, which the return-path SPF record authorises).
    settings.PUFFERPOST_INBOUND_MX_HOST = "inbound.operator.test"
    settings.PUFFERPOST_SPF_ADDRESSES = ["127.0.0.1/32"]
    celery_app.conf.broker_transport_options = {
        **celery_app.conf.broker_transport_options,
        "global_keyprefix": SESSION_PREFIX,
    }


def pytest_unconfigure(config):
    try:
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(match=f"{SESSION_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass


@pytest.fixture(scope="session")
def redis_client():
    """Redis over a real connection: a test that cannot reach it fails, it never skips."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.ping()
    return client


@pytest.fixture(autouse=True)
def _fresh_shaping_state(settings):
    """Each test starts with no shaping state (connection slots, rates, backoffs) or cached MTA-STS
    policy left by another, and without the conservative start that follows lost state (tests of
    that ask for it)."""
    settings.PUFFERPOST_SHAPING_RECOVERY = 0
    try:
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = [
            key
            for kind in ("shp", "sts")  # shaping state, cached MTA-STS policies
            for key in client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}{kind}:*", count=1000)
        ]
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # the tests that need Redis fail on their own, loudly


@pytest.fixture(scope="session")
def dns_server():
    server = LoopbackDnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def dns(dns_server, settings):
    """The loopback DNS zone, empty at the start of each test; every lookup the code makes lands here."""
    dns_server.zone.clear()
    settings.PUFFERPOST_DNS_NAMESERVERS = [(dns_server.host, dns_server.port)]
    settings.PUFFERPOST_DNS_TIMEOUT = 1.0
    yield dns_server.zone
    dns_server.zone.clear()


@pytest.fixture
def receiving_world(dns, settings):
    """Start a receiving world (pufferpost.localdev.world) in the loopback DNS; the platform's SMTP
    port and trusted CA point at it. `receiving_world(google(), *long_tail(3))`."""
    worlds = []

    def start(*providers, **options):
        world = World(list(providers), zone=dns, **options).start()
        settings.PUFFERPOST_SMTP_RELAY = ""
        settings.PUFFERPOST_SMTP_PORT = world.port
        settings.PUFFERPOST_TLS_CA_FILE = str(world.ca.ca_file)
        worlds.append(world)
        return world

    yield start
    for world in worlds:
        world.stop()


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def other_workspace(db):
    return WorkspaceFactory(name="Someone else")


@pytest.fixture
def make_client(db):
    """`make_client(workspace, scopes=[...], livemode=True)` → an APIClient carrying a fresh bearer key
    (`livemode=False`: a test key, `key_test_…`)."""

    def make(workspace, scopes=None, livemode=True):
        _, raw = api_key_create(workspace=workspace, scopes=scopes, livemode=livemode)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.raw_key = raw
        return client

    return make


@pytest.fixture
def api(make_client, workspace):
    """A client with every scope on `workspace`."""
    return make_client(workspace)


@pytest.fixture
def test_api(make_client, workspace):
    """A test-mode client (`key_test_…`, every scope) on `workspace`."""
    return make_client(workspace, livemode=False)


@pytest.fixture
def other_api(make_client, other_workspace):
    return make_client(other_workspace)


@pytest.fixture
def processes(transactional_db, dns, tmp_path):
    """Start real Celery workers / beat / commands that share this test's database, Redis and DNS.

    Depends on `transactional_db`, so what the test writes is committed and visible to them.
    Every process is stopped before the database is flushed.
    """
    celery_app.conf.task_always_eager = False
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
        celery_app.conf.task_always_eager = True
    # The test world: every MX is a sink on loopback (tests of the policy switch it off).
    settings.PUFFERPOST_SMTP_ALLOW_PRIVATE = True
