"""Observability as the real processes show it: beat's JSON log lines, and /metrics adding up the
series gunicorn and a prefork Celery worker write (the in-process tests are in tests/observability/)."""

import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from messaging.models import Message
from tests.e2e.test_delivery import wait_for_status
from tests.helpers import wait_for
from tests.messaging.delivery.pipeline import FROM, make_sendable
from tests.observability.test_logs import TS
from tests.observability.test_metrics import TOKEN, samples, value

pytestmark = pytest.mark.e2e


def test_beat_in_json_logs_its_start_but_not_every_task_it_sends(processes, redis_client):
    from django.conf import settings

    queue = settings.REDIS_KEY_PREFIX + "webhooks"
    beat = processes.beat(
        PUFFERPOST_LOG_FORMAT="json", PUFFERPOST_WEBHOOKS_SWEEP_INTERVAL="0.5", PUFFERPOST_METRICS_LISTEN="127.0.0.1:0"
    )
    # No worker runs: what beat sends piles up in the queue, which proves it ticked.
    wait_for(
        lambda: redis_client.llen(queue) >= 3, what="three webhook sweeps sent by beat", timeout=60, processes=[beat]
    )
    time.sleep(0.5)
    lines = [line for line in beat.log().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert any(entry["message"] == "beat: Starting..." for entry in parsed)
    assert all(re.fullmatch(TS, entry["ts"]) for entry in parsed)
    assert "Sending due task" not in beat.log()
    # Beat serves its own series too (loopback, no token set): the port it took is in its log.
    (url,) = re.findall(r"beat serves its metrics on (http://127\.0\.0\.1:\d+/metrics)", beat.log())
    status, text = _http("GET", url)
    assert status == 200 and b"pufferpost_" in text


def _http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


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


def test_a_prefork_worker_with_its_own_directory_serves_its_series_on_its_metrics_port(
    processes, smtp_sink, workspace, api, dns, tmp_path
):
    """As in compose: the worker's container has its own multiprocess directory, and the worker's
    main process serves what its children counted on PUFFERPOST_METRICS_LISTEN."""
    sendable = make_sendable(workspace, dns)
    prom = tmp_path / "worker-metrics"
    prom.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = processes.worker(
        pool="prefork",
        concurrency=1,
        PROMETHEUS_MULTIPROC_DIR=prom,
        PUFFERPOST_METRICS_LISTEN=f"127.0.0.1:{port}",
        PUFFERPOST_METRICS_TOKEN=TOKEN,
        PUFFERPOST_METRICS_DESTINATIONS="example.com",
        PUFFERPOST_SMTP_PORT=smtp_sink.port,
        PUFFERPOST_SMTP_HELO_NAME="out.acme.test",
        PUFFERPOST_SMTP_TIMEOUT="5",
    )
    wait_for(lambda: "serves its metrics on" in worker.log(), what="the worker's metrics port", processes=[worker])
    body = {"from": FROM, "to": "jane@example.com", "templateId": sendable.template.id, "data": {"name": "J"}}
    response = api.post("/v1/messages", body, format="json")
    assert response.status_code == 202, response.content
    message_id = response.json()["id"]
    wait_for_status(message_id, "delivered", [worker])

    url = f"http://127.0.0.1:{port}/metrics"
    status, text = _http("GET", url, headers={"Authorization": f"Bearer {TOKEN}"})
    found = samples(text.decode())
    delivered = {"outcome": "delivered", "bounce_class": "none", "destination": "example.com"}
    assert value(found, "pufferpost_delivery_outcomes_total", **delivered) == 1
    assert value(found, "pufferpost_delivery_seconds_count", outcome="delivered") == 1
    assert value(found, "pufferpost_message_events_total", type="delivered") == 1
    with pytest.raises(urllib.error.HTTPError) as refused:
        _http("GET", url)
    assert refused.value.code == 404
