import json
import re

import pytest
from rest_framework.test import APIClient

from pufferpost import ids
from pufferpost.models import ApiKey
from pufferpost.services import api_key_revoke
from tests.helpers import REQUEST_ID, assert_envelope, routes_with_an_id


def test_workspace_read_with_a_valid_key(api, workspace):
    response = api.get("/v1/workspace")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == workspace.id
    assert body["default_locale"] == "en"
    assert body["sending_paused"] is False
    assert body["rate_limit_per_minute"] == 600
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", body["created_at"])
    assert REQUEST_ID.match(response["X-Request-Id"])


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nope", "Basic abc", "Bearer key_live_doesnotexist", "bearer  key_live_" + "x" * 300],
)
def test_missing_malformed_or_unknown_keys_are_401(db, header):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    error = assert_envelope(client.get("/v1/workspace"), 401, "unauthorized")
    assert "api key" in error["message"].lower()


def test_a_revoked_key_is_401(make_client, workspace):
    client = make_client(workspace)
    api_key_revoke(key=ApiKey.objects.get(key_hash=ApiKey.hash(client.raw_key)))
    assert_envelope(client.get("/v1/workspace"), 401, "unauthorized")


def test_a_key_without_the_scope_is_403_naming_it(make_client, workspace):
    client = make_client(workspace, scopes=["domains:read"])
    error = assert_envelope(client.get("/v1/workspace"), 403, "missing_scope")
    assert "workspace:read" in error["message"]


def test_manage_scope_includes_read(workspace):
    key = ApiKey(workspace=workspace, scopes=["domains:manage"])
    assert key.has_scope("domains:read")
    assert key.has_scope("domains:manage")
    assert not key.has_scope("senders:read")
    assert not ApiKey(workspace=workspace, scopes=["domains:read"]).has_scope("domains:manage")


def test_keys_are_stored_hashed_with_a_visible_prefix(make_client, workspace):
    client = make_client(workspace)
    key = ApiKey.objects.get(workspace=workspace)
    assert client.raw_key.startswith("key_live_")
    assert key.key_hash != client.raw_key and len(key.key_hash) == 64
    assert client.raw_key.startswith(key.prefix) and len(key.prefix) < len(client.raw_key)
    assert ids.is_valid("key", key.id)


def test_unknown_route_is_an_enveloped_404(api):
    assert_envelope(api.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_an_enveloped_405(api):
    assert_envelope(api.delete("/v1/workspace"), 405, "method_not_allowed")


@pytest.mark.urls("tests.pufferpost.urls")
def test_malformed_json_is_400_invalid_json(api):
    response = api.post("/v1/test/boom", data="{not json", content_type="application/json")
    assert_envelope(response, 400, "invalid_json")


@pytest.mark.urls("tests.pufferpost.urls")
def test_non_json_body_is_415(api):
    response = api.post("/v1/test/boom", data="email=a@b.c", content_type="application/x-www-form-urlencoded")
    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.urls("tests.pufferpost.urls")
def test_validation_errors_are_422_with_violations_naming_the_field(api):
    body = {"email": "not-an-email", "cc": ["a@example.com", "bad"], "subject": "stray"}
    error = assert_envelope(api.post("/v1/test/boom", body, format="json"), 422, "validation_failed")
    violations = {(v["field"], v["code"]) for v in error["violations"]}
    assert violations == {("email", "invalid_email"), ("cc[1]", "invalid_email"), ("subject", "unknown_field")}


@pytest.mark.urls("tests.pufferpost.urls")
def test_a_json_array_body_is_422_not_500(api):
    response = api.post("/v1/test/boom", data=json.dumps([1, 2]), content_type="application/json")
    error = assert_envelope(response, 422, "validation_failed")
    assert error["violations"][0]["field"] is None


@pytest.mark.urls("tests.pufferpost.urls")
def test_emails_are_trimmed_and_lowercased(api):
    response = api.post("/v1/test/boom", {"email": "  Jane@Example.COM "}, format="json")
    assert response.status_code == 200
    assert response.json() == {"email": "jane@example.com"}


@pytest.mark.urls("tests.pufferpost.urls")
def test_an_unhandled_error_is_an_enveloped_500(api):
    error = assert_envelope(api.get("/v1/test/boom"), 500, "internal_error")
    assert "kaboom" not in error["message"]


def test_prefixed_ids_are_ulids_and_sort_by_time():
    first, second = ids.new_id("msg"), ids.new_id("msg")
    assert ids.is_valid("msg", first)
    assert not ids.is_valid("dom", first)
    assert len(first) == 4 + 26
    assert first[:14] <= second[:14]


@pytest.mark.urls("tests.pufferpost.urls")
def test_an_oversized_body_is_an_enveloped_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/v1/test/boom", {"email": "a@example.com", "pad": "x" * 5000}, format="json")
    assert_envelope(response, 413, "payload_too_large")


def test_json_nested_deeper_than_the_stack_is_400_invalid_json(api):
    response = api.generic("POST", "/v1/domains", "[" * 100_000, content_type="application/json")
    assert_envelope(response, 400, "invalid_json")


NOT_FOUND = {
    "domains": "domain_not_found",
    "senders": "sender_not_found",
    "templates": "template_not_found",
    "messages": "message_not_found",
    "suppressions": "suppression_not_found",
    "unsubscribe-groups": "unsubscribe_group_not_found",
    "webhooks": "webhook_not_found",
}
# Every route of the schema with an id: the resource's id goes where `{}` is.
ID_ROUTES = [
    (
        method,
        route.replace("{id}", "{}").replace("{number}", "1").replace("{email}", "a@example.com")
        if "{id}" in route
        else route.replace("{email}", "{}"),
        NOT_FOUND[route.split("/")[2]],
    )
    for method, route in routes_with_an_id("/v1/")
]


@pytest.mark.parametrize(("method", "route", "code"), ID_ROUTES)
def test_an_id_with_a_nul_character_is_the_resources_404_not_a_500(api, method, route, code):
    kwargs = {"data": {}, "format": "json"} if method in ("post", "patch") else {}
    response = getattr(api, method)(route.format("dom_%00"), **kwargs)
    assert_envelope(response, 404, code)
