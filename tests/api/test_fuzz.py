"""Schemathesis fuzzes every /v1 operation in-process against the real WSGI app, PostgreSQL and Redis.

Each operation gets a bounded, derandomized budget. Half of the examples are aimed at the seeded
workspace (real ids, a real sender and template in send bodies) so they reach past the 404s and
into the services; the other half keep whatever the fuzzer made up.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pufferpost.wsgi import application
from tests.api.conftest import FROM

MAX_EXAMPLES = 30

schema = schemathesis.openapi.from_wsgi(
    "/v1/openapi.json",
    application,
    config=schemathesis.Config.from_dict(
        {"generation": {"deterministic": True, "database": "none", "with-security-parameters": False}}
    ),
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

PREFIX = {
    "domains": "dom",
    "senders": "snd",
    "templates": "tpl",
    "messages": "msg",
    "unsubscribe-groups": "grp",
    "webhooks": "whk",
}


def _aim_send(item, seeded):
    if isinstance(item, dict):
        item["from"] = FROM
        item["templateId"] = seeded.ids["tpl"]
        item.pop("template", None)


def aim(case, seeded):
    """Point a generated case at the seeded rows, keeping the rest of what the fuzzer made up."""
    resource = case.operation.path.split("/")[2]
    params = case.path_parameters or {}
    if "id" in params:
        params["id"] = seeded.ids[PREFIX[resource]]
    if "number" in params:
        params["number"] = 1
    if "email" in params:
        params["email"] = "optout@example.com" if resource == "unsubscribe-groups" else "blocked@example.com"
    body = case.body
    if case.operation.path == "/v1/domains" and isinstance(body, dict):
        body["domain"] = "news.acme.com"
    if case.operation.path == "/v1/webhooks" and isinstance(body, dict):
        body["url"] = "https://hooks.acme.com/fuzz"
    if case.operation.path == "/v1/messages" and case.method == "POST":
        _aim_send(body, seeded)
    if case.operation.path == "/v1/messages/batch" and isinstance(body, dict):
        for item in body.get("messages") or []:
            _aim_send(item, seeded)


@pytest.mark.fuzz
@schema.parametrize()
@schema.given(aimed=st.booleans())
@FUZZ
def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(case, aimed, seeded, wsgi_app, no_delivery):
    if aimed:
        aim(case, seeded)
    r = case.call_and_validate(headers={"Authorization": f"Bearer {seeded.raw_key}"}, checks=CHECKS)
    import atexit
    import collections

    global STATS
    if "STATS" not in globals():
        STATS = collections.Counter()
        atexit.register(lambda: print("\n".join(f"{k} {v}" for k, v in sorted(STATS.items()))))
    body = r.json() if r.content else {}
    code = body.get("error", {}).get("code", "") if isinstance(body, dict) else ""
    STATS[(case.method, case.operation.path, r.status_code, code)] += 1
