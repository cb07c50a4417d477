"""/metrics: who may read it and what it shows. After real traffic through gunicorn and a prefork
worker: tests/e2e/test_observability.py."""

import logging
import urllib.error
import urllib.request

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from pufferpost import celery_app, metrics
from tests.messaging.delivery.pipeline import make_sendable

TOKEN = "metrics-token-for-tests"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def scrape(client=None, **headers) -> dict:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def test_without_a_token_only_direct_loopback_clients_get_metrics(db, settings):
    settings.PUFFERPOST_METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 200  # the test client's REMOTE_ADDR is 127.0.0.1
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 404
    proxied = Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.status_code == 404
    assert proxied.json()["error"]["code"] == "not_found"


def test_with_a_token_the_bearer_token_is_required_even_from_loopback(db, settings):
    settings.PUFFERPOST_METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    good = Client(REMOTE_ADDR="203.0.113.9").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert good.status_code == 200
    assert b"pufferpost_queue_depth" in good.content


def test_requests_are_counted_by_route_pattern_not_by_raw_path(api, settings):
    settings.PUFFERPOST_METRICS_TOKEN = ""
    labels = {"route": "/v1/messages/{id}", "method": "GET", "status": "404"}
    before = value(scrape(), "pufferpost_api_requests_total", **labels) or 0
    api.get("/v1/messages/msg_01JDOESNOTEXIST0000000000")
    api.get("/v1/messages/msg_01JDOESNOTEXIST0000000001")
    Client().get("/healthz")
    found = scrape()
    assert value(found, "pufferpost_api_requests_total", **labels) == before + 2
    assert not any(dict(key[1]).get("route") == "/healthz" for key in found)


def test_a_refused_request_is_logged_once_with_its_code_and_request_id(api, caplog):
    with caplog.at_level(logging.INFO):
        response = api.get("/v1/messages/msg_01JDOESNOTEXIST0000000000")
    assert response.status_code == 404
    lines = [r for r in caplog.records if r.name == "pufferpost.requests"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert lines[0].fields["code"] == response.json()["error"]["code"] == "message_not_found"
    assert lines[0].fields["request_id"] == response["X-Request-Id"]
    assert lines[0].fields["status"] == 404


def test_queue_depth_and_oldest_age_come_from_the_broker_at_scrape_time(db, redis_client, settings):
    settings.PUFFERPOST_METRICS_TOKEN = ""
    queue_key = settings.REDIS_KEY_PREFIX + "webhooks"
    redis_client.delete(queue_key)
    try:
        for _ in range(3):  # send_task publishes even in eager mode: these really wait in Redis
            celery_app.send_task("messaging.webhooks.tasks.deliver_webhooks", args=[[]], queue="webhooks")
        found = scrape()
        assert value(found, "pufferpost_queue_depth", queue="webhooks") == 3
        assert 0 <= value(found, "pufferpost_queue_oldest_age_seconds", queue="webhooks") < 600
        assert value(found, "pufferpost_scrape_collector_up", collector="celery_queues") == 1
    finally:
        redis_client.delete(queue_key)
    found = scrape()
    assert value(found, "pufferpost_queue_depth", queue="webhooks") == 0
    assert value(found, "pufferpost_queue_oldest_age_seconds", queue="webhooks") == 0


def test_waiting_messages_are_grouped_by_bounded_destination(workspace, dns, settings):
    settings.PUFFERPOST_METRICS_TOKEN = ""
    settings.PUFFERPOST_METRICS_DESTINATIONS = frozenset({"example.com"})
    sendable = make_sendable(workspace, dns)
    sendable.message(to="a@example.com", status="queued")
    sendable.message(to="b@EXAMPLE.com", status="accepted")
    sendable.message(to="c@elsewhere.test", status="queued")
    sendable.message(to="d@example.com", status="delivered")
    found = scrape()
    assert value(found, "pufferpost_destination_queue_depth", destination="example.com") == 2
    assert value(found, "pufferpost_destination_queue_depth", destination="other") == 1
    assert value(found, "pufferpost_messages_pending", status="queued") == 2
    assert value(found, "pufferpost_messages_pending", status="accepted") == 1
    assert value(found, "pufferpost_destination_oldest_age_seconds", destination="example.com") >= 0


def test_an_unreachable_redis_blanks_only_its_own_series(db, settings):
    settings.PUFFERPOST_METRICS_TOKEN = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS}
    from pufferpost import redis as pp_redis

    pp_redis.client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    try:
        found = scrape()
    finally:
        pp_redis.client.cache_clear()
    assert value(found, "pufferpost_scrape_collector_up", collector="celery_queues") == 0
    assert value(found, "pufferpost_scrape_collector_up", collector="pending_messages") == 1


def _get(url, **headers):
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def process_metrics(settings):
    """serve_process_metrics on a free loopback port, shut down afterwards."""
    settings.PUFFERPOST_METRICS_LISTEN = [("127.0.0.1", 0)]
    settings.PROMETHEUS_MULTIPROC_DIR = ""
    server = metrics.serve_process_metrics("test")
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_worker_serves_its_own_series_on_its_port_with_the_same_access_rule(process_metrics, settings):
    settings.PUFFERPOST_METRICS_TOKEN = TOKEN
    labels = {"outcome": "delivered", "bounce_class": "none", "destination": "other"}
    status, text = _get(f"{process_metrics}/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200
    before = value(samples(text), "pufferpost_delivery_outcomes_total", **labels) or 0
    metrics.DELIVERY_OUTCOMES.labels(*labels.values()).inc()
    status, text = _get(f"{process_metrics}/metrics", Authorization=f"Bearer {TOKEN}")
    found = samples(text)
    assert value(found, "pufferpost_delivery_outcomes_total", **labels) == before + 1
    # Only what the process counted: the scrape-time series (queues, pending mail) are the web's.
    assert not any(name.startswith(("pufferpost_queue_", "pufferpost_messages_pending")) for name, _ in found)
    assert _get(f"{process_metrics}/metrics")[0] == 404
    assert _get(f"{process_metrics}/metrics", Authorization="Bearer wrong")[0] == 404
    assert _get(f"{process_metrics}/other", Authorization=f"Bearer {TOKEN}")[0] == 404
    # Without a token: loopback clients only, and nothing that came through a proxy.
    settings.PUFFERPOST_METRICS_TOKEN = ""
    assert _get(f"{process_metrics}/metrics")[0] == 200
    assert _get(f"{process_metrics}/metrics", **{"X-Forwarded-For": "203.0.113.9"})[0] == 404


def test_no_listen_address_serves_nothing(settings):
    settings.PUFFERPOST_METRICS_LISTEN = []
    assert metrics.serve_process_metrics("test") is None


def test_the_listen_address_is_one_ipv4_host_and_port():
    import subprocess
    import sys

    from tests.processes import REPO, child_env

    for bad in ("127.0.0.1:9101,127.0.0.1:9102", "[::1]:9101", "127.0.0.1:http"):
        run = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            env=child_env(PUFFERPOST_METRICS_LISTEN=bad),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0 and "PUFFERPOST_METRICS_LISTEN" in run.stderr, bad
