import re
from datetime import UTC

import pytest
from django.utils import timezone

from messaging.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from messaging.webhooks.services import EVENT_TYPES, webhook_endpoint_create
from tests.helpers import assert_envelope

WHK = re.compile(r"^whk_[0-9A-HJKMNP-TV-Z]{26}$")
URL = "https://hooks.acme.com/pufferpost"


def violation_codes(response) -> dict:
    error = assert_envelope(response, 422, "validation_failed")
    return {v["field"]: v["code"] for v in error["violations"]}


@pytest.fixture
def endpoint(workspace):
    return webhook_endpoint_create(workspace=workspace, url=URL, events=["delivered"])


def test_create_answers_201_with_the_secret_once(api, workspace):
    response = api.post("/v1/webhooks", {"url": URL, "events": ["delivered", "bounced"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert WHK.match(body["id"])
    assert body["url"] == URL
    assert body["events"] == ["delivered", "bounced"]
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", body["created_at"])
    assert WebhookEndpoint.objects.get(pk=body["id"]).workspace == workspace

    assert "secret" not in api.get(f"/v1/webhooks/{body['id']}").json()
    assert all("secret" not in row for row in api.get("/v1/webhooks").json()["data"])


def test_events_omitted_or_empty_mean_every_type(api):
    for payload in ({"url": URL}, {"url": URL, "events": []}):
        response = api.post("/v1/webhooks", payload, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["events"] == []
        assert all(WebhookEndpoint.objects.get(pk=response.json()["id"]).wants(t) for t in EVENT_TYPES)


def test_every_documented_event_type_is_accepted(api):
    events = [
        "accepted", "queued", "sent", "deferred", "delivered", "opened", "clicked", "bounced",
        "complained", "suppressed", "unsubscribed", "errored", "domain.verification_lost", "sender.paused",
    ]  # fmt: skip
    response = api.post("/v1/webhooks", {"url": URL, "events": events}, format="json")
    assert response.status_code == 201, response.content
    assert sorted(response.json()["events"]) == sorted(events)


@pytest.mark.parametrize(
    "payload, field, code",
    [
        ({"url": "not a url"}, "url", "invalid_url"),
        ({"url": "ftp://hooks.acme.com/x"}, "url", "invalid_url"),
        ({"url": "https://"}, "url", "invalid_url"),
        ({"url": "https://hooks.acme.com:99999/x"}, "url", "invalid_url"),
        ({"url": "https://user:pw@hooks.acme.com/x"}, "url", "invalid_url"),
        ({"url": "http://hooks.acme.com/x"}, "url", "https_required"),
        ({"url": "https://127.0.0.1/x"}, "url", "private_address"),
        ({"url": "https://10.1.2.3/x"}, "url", "private_address"),
        ({"url": "https://192.168.0.10:8443/x"}, "url", "private_address"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url", "private_address"),
        ({"url": "https://100.64.0.1/x"}, "url", "private_address"),
        ({"url": "https://[::1]/x"}, "url", "private_address"),
        ({"url": "https://[fd00::1]/x"}, "url", "private_address"),
        ({"url": "https://[::ffff:127.0.0.1]/x"}, "url", "private_address"),
        ({"url": "https://localhost/x"}, "url", "private_address"),
        ({"url": "https://[::127.0.0.1]/x"}, "url", "private_address"),
        ({"url": "https://[::7f00:1]/x"}, "url", "private_address"),
        ({"url": "https://[64:ff9b:1::7f00:1]/x"}, "url", "private_address"),
        ({"url": "https://hooks..acme.com/x"}, "url", "invalid_url"),
        ({}, "url", "required"),
        ({"url": URL, "events": ["delivered", "teleported"]}, "events[1]", "invalid_choice"),
        ({"url": URL, "events": "delivered"}, "events", "not_a_list"),
        ({"url": URL, "secret": "mine"}, "secret", "unknown_field"),
    ],
)
def test_create_validation(api, payload, field, code):
    response = api.post("/v1/webhooks", payload, format="json")
    assert violation_codes(response).get(field) == code, response.json()
    assert not WebhookEndpoint.objects.exists()


def test_loopback_and_http_urls_are_accepted_when_private_addresses_are_allowed(api, settings):
    settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = True
    response = api.post("/v1/webhooks", {"url": "http://127.0.0.1:8080/hooks"}, format="json")
    assert response.status_code == 201, response.content


def test_a_non_ascii_path_is_accepted_as_given(api):
    response = api.post("/v1/webhooks", {"url": "https://hooks.acme.com/bücher/ä"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["url"] == "https://hooks.acme.com/bücher/ä"


def test_http_urls_are_accepted_in_debug(api, settings):
    settings.DEBUG = True
    assert api.post("/v1/webhooks", {"url": "http://hooks.acme.com/x"}, format="json").status_code == 201


def test_get_list_and_delete(api, endpoint):
    assert api.get(f"/v1/webhooks/{endpoint.pk}").json() == {
        "id": endpoint.pk,
        "url": URL,
        "events": ["delivered"],
        "created_at": endpoint.created_at.astimezone(UTC).isoformat(timespec="seconds"),
    }
    listed = api.get("/v1/webhooks").json()
    assert [row["id"] for row in listed["data"]] == [endpoint.pk]
    assert listed["next_cursor"] is None

    response = api.delete(f"/v1/webhooks/{endpoint.pk}")
    assert response.status_code == 204
    assert_envelope(api.get(f"/v1/webhooks/{endpoint.pk}"), 404, "webhook_not_found")
    assert api.get("/v1/webhooks").json()["data"] == []
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is not None and endpoint.secret == ""


def test_the_list_is_cursor_paginated_newest_first(api, workspace):
    ids = [webhook_endpoint_create(workspace=workspace, url=f"{URL}/{n}", events=[]).pk for n in range(5)]
    first = api.get("/v1/webhooks?limit=2").json()
    second = api.get(f"/v1/webhooks?limit=2&cursor={first['next_cursor']}").json()
    third = api.get(f"/v1/webhooks?limit=2&cursor={second['next_cursor']}").json()
    assert [r["id"] for r in first["data"] + second["data"] + third["data"]] == ids[::-1]
    assert third["next_cursor"] is None
    assert violation_codes(api.get("/v1/webhooks?limit=0")) == {"limit": "out_of_range"}


ROUTES = [
    ("get", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/deliveries"),
]


@pytest.mark.parametrize("method, route", ROUTES)
def test_an_id_from_another_workspace_is_a_404_like_an_unknown_one(other_api, api, endpoint, method, route):
    foreign = assert_envelope(getattr(other_api, method)(route.format(id=endpoint.pk)), 404, "webhook_not_found")
    unknown = assert_envelope(
        getattr(api, method)(route.format(id="whk_01J9Z2K3M4N5P6Q7R8S9T0V1W2")), 404, "webhook_not_found"
    )
    assert foreign["message"] == unknown["message"]
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is None


@pytest.mark.parametrize("method, route", [("get", "/v1/webhooks"), ("post", "/v1/webhooks"), *ROUTES])
def test_every_route_needs_the_webhooks_manage_scope(make_client, workspace, endpoint, method, route):
    client = make_client(workspace, scopes=["messages:read", "domains:manage"])
    kwargs = {"data": {"url": URL}, "format": "json"} if method == "post" else {}
    error = assert_envelope(getattr(client, method)(route.format(id=endpoint.pk), **kwargs), 403, "missing_scope")
    assert "webhooks:manage" in error["message"]


def _delivery(endpoint, n, attempts=2):
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=f"evt_{n:026d}",
        event_type="delivered",
        payload='{"id":"evt_x","type":"delivered"}',
        status="pending",
        attempts=attempts,
    )
    for i in range(attempts):
        WebhookAttempt.objects.create(
            delivery=delivery,
            started_at=timezone.now(),
            duration_ms=12,
            response_status=500 if i == 0 else None,
            response_body="nope" if i == 0 else "",
            error="HTTP 500" if i == 0 else "request to x failed: timed out",
        )
    return delivery


def test_the_deliveries_log_shows_each_attempt_and_response(api, endpoint):
    _delivery(endpoint, 1)
    body = api.get(f"/v1/webhooks/{endpoint.pk}/deliveries").json()
    assert body["next_cursor"] is None
    [row] = body["data"]
    assert row["event_type"] == "delivered"
    assert row["status"] == "pending"
    assert row["attempt_count"] == 2
    assert row["payload"] == {"id": "evt_x", "type": "delivered"}
    assert [(a["response_status"], a["response_body"], a["error"]) for a in row["attempts"]] == [
        (500, "nope", "HTTP 500"),
        (None, "", "request to x failed: timed out"),
    ]
    assert api.get(f"/v1/webhooks/{endpoint.pk}/deliveries?status=succeeded").json()["data"] == []
    assert violation_codes(api.get(f"/v1/webhooks/{endpoint.pk}/deliveries?status=nope")) == {
        "status": "invalid_choice"
    }


def test_list_queries_stay_bounded(api, workspace, endpoint, django_assert_max_num_queries):
    for n in range(30):
        webhook_endpoint_create(workspace=workspace, url=f"{URL}/{n}", events=["sent"])
    with django_assert_max_num_queries(3):
        assert len(api.get("/v1/webhooks?limit=100").json()["data"]) == 31

    for n in range(20):
        _delivery(endpoint, n, attempts=3)
    with django_assert_max_num_queries(4):
        data = api.get(f"/v1/webhooks/{endpoint.pk}/deliveries?limit=100").json()["data"]
    assert len(data) == 20 and all(len(row["attempts"]) == 3 for row in data)
