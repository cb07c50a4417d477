"""Helpers every test shares: the API envelope assertions, the published operations and the one
polling loop."""

import functools
import re
import time

from django.test import Client

REQUEST_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")


# Every list of the staff console (what the console tests walk, in the browser and without it).
CONSOLE_CHANGELISTS = [
    "/admin/pufferpost/workspace/",
    "/admin/pufferpost/apikey/",
    "/admin/senders/sender/",
    "/admin/domains/domain/",
    "/admin/templates_app/template/",
    "/admin/messaging/message/",
    "/admin/messaging/suppression/",
    "/admin/messaging/unsubscribegroup/",
    "/admin/messaging/senderreputation/",
]


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert REQUEST_ID.match(body["error"]["request_id"])
    assert response["X-Request-Id"] == body["error"]["request_id"]
    return body["error"]


def violations(error):
    return {(v["field"], v["code"]) for v in error["violations"]}


def wait_for(predicate, *, what: str, timeout: float = 30.0, interval: float = 0.1, processes=(), detail=None):
    """Poll `predicate()` until it returns something truthy, and return that.

    The one polling loop of the suite, for what another thread or process does in its own time. On
    timeout the assertion names `what`, adds `detail()` (the state seen last) and the tail of each
    process's log. `timeout` is how long to be patient under load, never a speed claim.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"timed out after {timeout}s waiting for {what}"
    if detail is not None:
        message += f": {detail()}"
    logs = "\n".join(f"--- {p.name}\n{p.log()[-4000:]}" for p in processes)
    raise AssertionError(f"{message}\n{logs}" if logs else message)


@functools.cache
def schema_operations() -> tuple[tuple[str, str], ...]:
    """(METHOD, path) of every operation `GET /v1/openapi.json` publishes, for tests that must cover
    every route (401 for a bad key, 404 across workspaces) without a hand-kept list.

    Read at collection, before pytest-django allows the `testserver` host, hence an explicit one.
    """
    schema = Client(HTTP_HOST="localhost").get("/v1/openapi.json").json()
    return tuple((method.upper(), path) for path, item in schema["paths"].items() for method in item)


def routes_with_an_id(prefix: str) -> list[tuple[str, str]]:
    """(method, path) of the published operations under `prefix` whose path names one resource."""
    return [(m.lower(), p) for m, p in schema_operations() if p.startswith(prefix) and "{" in p]
