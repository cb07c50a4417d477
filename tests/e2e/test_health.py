"""/healthz and /readyz from a real web server (the in-process tests are in tests/pufferpost/test_health.py)."""

import json
import urllib.error
import urllib.request

import pytest

from tests.pufferpost.test_health import closed_port

pytestmark = pytest.mark.e2e


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_web_server_whose_database_is_down_is_alive_but_not_ready(processes):
    web = processes.web(DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/pufferpost")
    assert _get(f"{web.url}/healthz") == (200, {"status": "ok"})
    status, body = _get(f"{web.url}/readyz")
    assert status == 503
    assert body["failed"] == ["database", "migrations"]
    assert "refused" in body["checks"]["database"]["error"].lower()
    assert body["checks"]["migrations"]["error"] == "database unreachable"
    assert "not ready: database" in web.log()
    # The same server with the database back is ready (the process, not the test, was the fault).
    ready = processes.web("web-ok")
    assert _get(f"{ready.url}/readyz")[0] == 200
