"""Real answers match the published schema: each resource's create/list/get and the main refusals.

Every case calls the API through the test client, asserts the status it expects, then checks that
the status is documented for the operation and that the body matches its schema exactly (no key
the schema does not name, see `conformance.strict`).
"""

import pytest

from tests.api.conformance import assert_conforms
from tests.api.conftest import FROM

SEND = {"from": FROM, "to": "jane@example.com", "templateId": "{tpl}", "data": {"name": "Jane"}}


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and "}" in value and not value.startswith('{"') else value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


# (case id, method, url, json body or raw text, expected status)
CASES = [
    ("domain-create", "POST", "/v1/domains", {"domain": "news.acme.com"}, 201),
    ("domain-create-existing", "POST", "/v1/domains", {"domain": "mail.acme.com"}, 200),
    ("domain-create-invalid", "POST", "/v1/domains", {"domain": "not a domain"}, 422),
    ("domain-list", "GET", "/v1/domains", None, 200),
    ("domain-get", "GET", "/v1/domains/{dom}", None, 200),
    ("domain-get-unknown", "GET", "/v1/domains/dom_01J9Z3K7Q2N8M4V6XB0R5T9AHC", None, 404),
    ("domain-refresh", "POST", "/v1/domains/{dom}/refresh", {}, 200),
    ("domain-dkim-rotate", "POST", "/v1/domains/{dom}/dkim/rotate", {}, 200),
    ("domain-delete", "DELETE", "/v1/domains/{dom}", None, 204),
    ("sender-create", "POST", "/v1/senders", {"fromAddress": "news@mail.acme.com", "displayName": "Acme"}, 201),
    ("sender-create-existing", "POST", "/v1/senders", {"fromAddress": FROM}, 409),
    ("sender-create-unknown-field", "POST", "/v1/senders", {"fromAddress": "x@acme.com", "state": "active"}, 422),
    ("sender-list", "GET", "/v1/senders", None, 200),
    ("sender-get", "GET", "/v1/senders/{snd}", None, 200),
    ("sender-get-unknown", "GET", "/v1/senders/snd_01J9Z4P2C8H3M0K7V5XB9R2TFE", None, 404),
    ("template-create", "POST", "/v1/templates", {"name": "Welcome"}, 201),
    ("template-create-existing", "POST", "/v1/templates", {"name": "Again", "slug": "order-confirmation"}, 409),
    ("template-list", "GET", "/v1/templates?limit=1", None, 200),
    ("template-list-bad-limit", "GET", "/v1/templates?limit=1000", None, 422),
    ("template-get", "GET", "/v1/templates/{tpl}", None, 200),
    ("template-get-by-slug", "GET", "/v1/templates/order-confirmation", None, 200),
    ("template-update", "PATCH", "/v1/templates/{tpl}", {"name": "Renamed"}, 200),
    ("template-version-create", "POST", "/v1/templates/{tpl}/versions", {"subject": "Hi", "html": "<p>Hi</p>"}, 201),
    ("template-version-syntax", "POST", "/v1/templates/{tpl}/versions", {"subject": "{{", "html": "x"}, 422),
    ("template-versions", "GET", "/v1/templates/{tpl}/versions", None, 200),
    ("template-version-get", "GET", "/v1/templates/{tpl}/versions/1", None, 200),
    ("template-version-unknown", "GET", "/v1/templates/{tpl}/versions/9", None, 404),
    ("template-render", "POST", "/v1/templates/{tpl}/render", {"data": {"name": "Jane"}, "locale": "de"}, 200),
    ("template-delete", "DELETE", "/v1/templates/{tpl}", None, 204),
    ("message-send", "POST", "/v1/messages", SEND, 202),
    ("message-send-violations", "POST", "/v1/messages", {**SEND, "cc": ["nope"], "subject": "x"}, 422),
    ("message-send-no-template", "POST", "/v1/messages", {"from": FROM, "to": "jane@example.com"}, 422),
    ("message-send-suppressed", "POST", "/v1/messages", {**SEND, "to": "blocked@example.com"}, 422),
    ("message-send-invalid-json", "POST", "/v1/messages", '{"from": ', 400),
    ("message-batch", "POST", "/v1/messages/batch", {"messages": [SEND, {**SEND, "cc": ["nope"]}]}, 200),
    ("message-batch-empty", "POST", "/v1/messages/batch", {"messages": []}, 422),
    ("message-list", "GET", "/v1/messages?status=accepted&limit=10", None, 200),
    ("message-list-bad-filter", "GET", "/v1/messages?createdAfter=yesterday", None, 422),
    ("message-get", "GET", "/v1/messages/{msg}", None, 200),
    ("message-get-unknown", "GET", "/v1/messages/msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2", None, 404),
    ("message-events", "GET", "/v1/messages/{msg}/events", None, 200),
    ("suppression-create", "POST", "/v1/suppressions", {"email": "new@example.com"}, 201),
    ("suppression-create-existing", "POST", "/v1/suppressions", {"email": "blocked@example.com"}, 200),
    ("suppression-list", "GET", "/v1/suppressions", None, 200),
    ("suppression-delete", "DELETE", "/v1/suppressions/blocked@example.com", None, 204),
    ("suppression-delete-unknown", "DELETE", "/v1/suppressions/nobody@example.com", None, 404),
    ("group-create", "POST", "/v1/unsubscribe-groups", {"name": "News", "description": "Weekly"}, 201),
    ("group-list", "GET", "/v1/unsubscribe-groups", None, 200),
    ("group-get", "GET", "/v1/unsubscribe-groups/{grp}", None, 200),
    ("group-unsubscribe", "POST", "/v1/unsubscribe-groups/{grp}/unsubscribes", {"email": "a@example.com"}, 201),
    ("group-unsubscribe-delete", "DELETE", "/v1/unsubscribe-groups/{grp}/unsubscribes/optout@example.com", None, 204),
    ("webhook-create", "POST", "/v1/webhooks", {"url": "https://hooks.acme.com/new", "events": ["bounced"]}, 201),
    ("webhook-create-http", "POST", "/v1/webhooks", {"url": "ftp://hooks.acme.com"}, 422),
    ("webhook-list", "GET", "/v1/webhooks", None, 200),
    ("webhook-get", "GET", "/v1/webhooks/{whk}", None, 200),
    ("webhook-deliveries", "GET", "/v1/webhooks/{whk}/deliveries", None, 200),
    ("webhook-deliveries-bad-status", "GET", "/v1/webhooks/{whk}/deliveries?status=nope", None, 422),
    ("webhook-delete", "DELETE", "/v1/webhooks/{whk}", None, 204),
    ("workspace-get", "GET", "/v1/workspace", None, 200),
    ("stats", "GET", "/v1/stats?interval=hour&senderId={snd}", None, 200),
    (
        "stats-by-day",
        "GET",
        "/v1/stats?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&timezone=Europe/Berlin",
        None,
        200,
    ),
    ("stats-bad-range", "GET", "/v1/stats?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", None, 422),
]


def call(client, method, url, body):
    if isinstance(body, str):
        return client.generic(method, url, body, content_type="application/json")
    return (
        getattr(client, method.lower())(url, body, format="json") if body is not None else client.generic(method, url)
    )


@pytest.mark.parametrize(("method", "url", "body", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_answers_match_the_schema(openapi, seeded, no_delivery, method, url, body, status):
    url = _fill(url, seeded.ids)
    response = call(seeded.client, method, url, _fill(body, seeded.ids))
    assert response.status_code == status, response.content
    assert_conforms(openapi, response, method, url)


def test_an_unauthenticated_call_matches_the_schema(openapi, client, db):
    response = client.get("/v1/domains")
    assert response.status_code == 401
    assert_conforms(openapi, response, "GET", "/v1/domains")


def test_a_missing_scope_matches_the_schema(openapi, seeded, make_client):
    response = make_client(seeded.workspace, scopes=["domains:read"]).get("/v1/senders")
    assert response.status_code == 403
    assert_conforms(openapi, response, "GET", "/v1/senders")


def test_a_form_body_is_415_and_matches_the_schema(openapi, seeded):
    response = seeded.client.generic("POST", "/v1/domains", "domain=acme.com", content_type="text/plain")
    assert response.status_code == 415
    assert_conforms(openapi, response, "POST", "/v1/domains")


def test_a_sending_pause_matches_the_schema(openapi, seeded):
    seeded.workspace.sending_paused = True
    seeded.workspace.save()
    response = seeded.client.post("/v1/messages", _fill(SEND, seeded.ids), format="json")
    assert response.status_code == 403
    assert_conforms(openapi, response, "POST", "/v1/messages")


def test_a_rate_limited_send_matches_the_schema(openapi, seeded, no_delivery):
    seeded.workspace.rate_limit_per_minute = 1
    seeded.workspace.save()
    seeded.client.post("/v1/messages", _fill(SEND, seeded.ids), format="json")
    response = seeded.client.post("/v1/messages", _fill(SEND, seeded.ids), format="json")
    assert response.status_code == 429
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} <= set(response.headers)
    assert_conforms(openapi, response, "POST", "/v1/messages")


def test_a_reused_idempotency_key_matches_the_schema(openapi, seeded, no_delivery):
    body = _fill(SEND, seeded.ids)
    first = seeded.client.post("/v1/messages", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 202
    response = seeded.client.post(
        "/v1/messages", {**body, "to": "sam@example.com"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert response.status_code == 409
    assert_conforms(openapi, response, "POST", "/v1/messages")


def test_an_oversized_send_matches_the_schema(openapi, seeded, settings):
    settings.PUFFERPOST_SEND_MAX_BODY_BYTES = 100
    response = seeded.client.post("/v1/messages", {**_fill(SEND, seeded.ids), "data": {"x": "y" * 200}}, format="json")
    assert response.status_code == 413
    assert_conforms(openapi, response, "POST", "/v1/messages")


def test_a_key_without_json_accept_is_406_and_matches_the_schema(openapi, seeded):
    response = seeded.client.get("/v1/workspace", HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert_conforms(openapi, response, "GET", "/v1/workspace")
