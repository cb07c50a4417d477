"""/metrics: who may read it, and the series it shows after real traffic."""

import json
import logging
import re
import urllib.request

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from messaging.models import Message
from pufferpost import celery_app
from tests.e2e.test_delivery import wait_for_status
from tests.messaging.delivery.pipeline import FROM, make_sendable

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


def _http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


@pytest.mark.e2e
def test_after_a_delivered_message_the_series_add_up_across_web_and_worker(
    processes, smtp_sink, workspace, make_client, dns, tmp_path
):
    """gunicorn and a prefork Celery worker write to one multiprocess directory; the web's /metrics
    shows both: the accepted send, the delivery, its duration and the log line of the outcome."""
    sendable = make_sendable(workspace, dns)
    prom = tmp_path / "prometheus"
    prom.mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": prom,
        "PUFFERPOST_METRICS_TOKEN": TOKEN,
        "PUFFERPOST_METRICS_DESTINATIONS": "example.com",
        "PUFFERPOST_SMTP_PORT": smtp_sink.port,
        "PUFFERPOST_SMTP_HELO_NAME": "out.acme.test",
        "PUFFERPOST_SMTP_TIMEOUT": "5",
    }
    worker = processes.worker(pool="prefork", concurrency=1, **env)
    web = processes.web(**env)
    key = make_client(workspace).raw_key
    body = {"from": FROM, "to": "jane@example.com", "templateId": sendable.template.id, "data": {"name": "J"}}
    status, answer = _http(
        "POST",
        f"{web.url}/v1/messages",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert status == 202, answer
    message_id = json.loads(answer)["id"]
    wait_for_status(message_id, "delivered", [worker, web])

    status, text = _http("GET", f"{web.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    found = samples(text.decode())
    send = {"route": "/v1/messages", "method": "POST", "status": "202"}
    assert value(found, "pufferpost_api_requests_total", **send) == 1
    assert value(found, "pufferpost_send_accept_seconds_count", endpoint="single", status="202") == 1
    for event in ("accepted", "queued", "sent", "delivered"):
        assert value(found, "pufferpost_message_events_total", type=event) == 1, event
    delivered = {"outcome": "delivered", "bounce_class": "none", "destination": "example.com"}
    assert value(found, "pufferpost_delivery_outcomes_total", **delivered) == 1
    assert value(found, "pufferpost_delivery_seconds_count", outcome="delivered") == 1
    assert value(found, "pufferpost_queue_depth", queue="delivery") == 0
    assert value(found, "pufferpost_messages_pending", status="queued") == 0
    assert Message.objects.get(pk=message_id).status == "delivered"

    (line,) = [line for line in worker.log().splitlines() if "delivery delivered" in line]
    assert f"message={message_id}" in line and f"workspace={workspace.id}" in line
    assert "destination=example.com" in line and "code=250" in line
    assert "GET /metrics" not in web.log()  # scrapes stay out of the request log
    ts = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR|DEBUG|CRITICAL) ")
    for process in (worker, web):
        logged = [line for line in process.log().splitlines() if line[:2] == "20"]
        assert logged and all(ts.match(line) for line in logged), process.name
