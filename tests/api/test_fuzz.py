"""Schemathesis fuzzes every /v1 operation in-process against the real WSGI app, PostgreSQL and Redis.

Each operation gets a bounded, derandomized budget. Half of the examples are aimed at the seeded
workspace (real ids, a real sender and template in send bodies) so they reach past the 404s and
into the services; the other half keep whatever the fuzzer made up.
"""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
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

MAX_EXAMPLES = 50

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
    # The schema's documented examples are not fuzz input (schemathesis refuses them beside
    # `@schema.given`); tests/api/test_schema.py checks them.
    phases=[phase for phase in Phase if phase is not Phase.explicit],
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
    if case.operation.path.endswith("/versions") and case.method == "POST" and isinstance(body, dict):
        # Random text is rarely a template that compiles, and random translation keys are rarely
        # locale tags: a valid version keeps this operation reaching past validation.
        body.update(subject="Hello {{ name }}", html="<p>Hello {{ name }}</p>", text="", translations={})
    if case.operation.path == "/v1/messages" and case.method == "POST":
        _aim_send(body, seeded)
    if case.operation.path == "/v1/messages/batch" and isinstance(body, dict):
        items = body.get("messages")
        for item in items if isinstance(items, list) else []:  # a non-list goes as generated
            _aim_send(item, seeded)


# What hostile clients put in strings: lone surrogates (valid JSON, not UTF-8; a 500 on 11
# write endpoints once), RFC 2047 encoded-words smuggling CR/LF, and raw control characters.
HOSTILE = [
    "\ud800",
    "\udfff\ud800",
    "x\udc80y",
    "=?utf-8?q?Your_invoice=0D=0AContent-Type:_text/html=0D=0A=0D=0A<h1>x</h1>?=",
    "=?utf-8?q?=0D=0ABcc:_victim@example.com?=",
    "=?utf-8?b?DQpCY2M6IHZpY3RpbUBleGFtcGxlLmNvbQ==?=",
    "=?utf-8?q?a=2Fb=2F..=2Fetc?=",
    "\r\nBcc: victim@example.com",
    "\x00",
]


def poison(case, hostile: str, where: str):
    """Put `hostile` into the body: appended to every string, or as an extra key at every level."""

    def walk(value):
        if isinstance(value, str):
            return value + hostile if where == "values" else value
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            walked = {key: walk(item) for key, item in value.items()}
            if where == "keys":
                walked[hostile] = "x"
            return walked
        return value

    if isinstance(case.body, (dict, list)):
        # Sent as JSON text with `\\ud800` escapes (schemathesis cannot encode a lone surrogate).
        case.body = json.dumps(walk(case.body)).encode()


@pytest.fixture
def reached():
    """The statuses one operation's run saw: it must get past validation at least once."""
    statuses = set()
    yield statuses
    assert any(200 <= status < 300 for status in statuses), f"never answered 2xx, only {sorted(statuses)}"


@pytest.mark.fuzz
@schema.parametrize()
@schema.given(
    aimed=st.booleans(),
    hostile=st.one_of(st.none(), st.tuples(st.sampled_from(HOSTILE), st.sampled_from(["values", "keys"]))),
)
@FUZZ
def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(
    case, aimed, hostile, seeded, wsgi_app, no_delivery, reached
):
    if aimed:
        aim(case, seeded)
    if hostile is not None:
        poison(case, *hostile)
    response = case.call_and_validate(headers={"Authorization": f"Bearer {seeded.raw_key}"}, checks=CHECKS)
    reached.add(response.status_code)


BAD_AUTHORIZATION = ["missing", "unknown", "revoked", "malformed", "basic", "empty"]


def _authorization(kind, seeded):
    return {
        "missing": None,
        "unknown": "Bearer key_live_" + "x" * 40,
        "revoked": f"Bearer {seeded.revoked_key}",
        "malformed": "Bearer nope",
        "basic": "Basic dXNlcjpwYXNz",
        "empty": "Bearer ",
    }[kind]


@pytest.mark.fuzz
@schema.parametrize()
@schema.given(kind=st.sampled_from(BAD_AUTHORIZATION))
@settings(FUZZ, max_examples=12)
def test_no_operation_answers_without_a_valid_key(case, kind, seeded, wsgi_app, no_delivery):
    aim(case, seeded)
    value = _authorization(kind, seeded)
    response = case.call(headers={"Authorization": value} if value is not None else None)
    assert response.status_code == 401, (kind, response.status_code, response.text)
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == ['Bearer realm="api"']
