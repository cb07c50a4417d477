"""Helpers every test shares: the API envelope assertions and the one polling loop."""

import re
import time

REQUEST_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")


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
