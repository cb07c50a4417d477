"""/healthz and /readyz: unauthenticated, cheap, and honest about which dependency is missing."""

import logging
import socket

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from pufferpost import health, logs


def closed_port() -> int:
    """A loopback port nobody listens on: bound, then released (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def fresh_migration_check(monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)


def test_healthz_answers_without_a_key_or_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_readyz_is_ready_when_every_dependency_answers(db):
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "broker", "migrations"}
    assert all(check["ok"] for check in body["checks"].values())


def test_readyz_names_redis_and_the_broker_when_redis_is_down(db, settings):
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    settings.REDIS_URL = dead
    settings.CELERY_BROKER_URL = dead
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["failed"] == ["redis", "broker"]
    assert "refused" in body["checks"]["redis"]["error"].lower()
    assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]


def test_readyz_is_not_ready_while_a_migration_is_unapplied(db):
    latest = MigrationRecorder.Migration.objects.filter(app="messaging").order_by("-name").first()
    latest.delete()  # rolled back with the test's transaction
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["migrations"]
    assert f"messaging.{latest.name}" in body["checks"]["migrations"]["error"]


def test_health_paths_are_dropped_from_the_request_log():
    quiet = logs.QuietHealthFilter()
    probe = logging.LogRecord(
        "django.server", logging.INFO, "", 0, '"%s" %s %s', ("GET /readyz HTTP/1.1", 200, 2), None
    )
    page = logging.LogRecord(
        "django.server", logging.INFO, "", 0, '"%s" %s %s', ("GET /v1/messages HTTP/1.1", 200, 2), None
    )
    assert quiet.filter(probe) is False
    assert quiet.filter(page) is True
