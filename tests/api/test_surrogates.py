"""A lone surrogate (`"\\ud800"`, valid JSON text, not valid UTF-8) anywhere in a request is
answered with a clear error on every operation that takes a body, never a 500: the answer
quotes it back as its escape. In a batch, the answer always reports what was committed."""

import json

import pytest

from messaging.models import Message
from tests.api.conftest import FROM

LONE = "\ud800"


def _write_operations():
    from django.test import Client

    schema = Client().get("/v1/openapi.json").json()
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "patch", "put") and "requestBody" in operation:
                found.append((method.upper(), path))
    return found


PREFIX = {"domains": "dom", "senders": "snd", "templates": "tpl", "unsubscribe-groups": "grp", "webhooks": "whk"}


def _url(path, ids):
    resource = path.split("/")[2]
    return path.replace("{id}", ids.get(PREFIX.get(resource, ""), "x")).replace("{email}", "a@example.com")


@pytest.fixture(scope="module")
def write_operations(django_db_blocker):
    with django_db_blocker.unblock():
        return _write_operations()


def test_every_write_operation_answers_a_lone_surrogate_key_with_a_clear_error(seeded, no_delivery, write_operations):
    assert len(write_operations) >= 11
    for method, path in write_operations:
        url = _url(path, seeded.ids)
        for raw in ('{"\\ud800": 1}', '{"\\udfff\\ud800x": "\\ud800"}'):
            response = seeded.client.generic(method, url, raw, content_type="application/json")
            assert 400 <= response.status_code < 500, (method, path, response.status_code, response.content)
            error = response.json()["error"]
            assert error["code"] and error["request_id"].startswith("req_")
            if error["code"] == "validation_failed":
                fields = {violation["field"] for violation in error["violations"]}
                assert fields & {"\\ud800", "\\udfff\\ud800x"}, (method, path, fields)


def test_a_lone_surrogate_in_a_value_is_a_422_naming_the_field(seeded, no_delivery):
    body = json.dumps({"from": FROM, "to": "jane@example.com", "templateId": seeded.ids["tpl"], "subject": LONE})
    response = seeded.client.generic("POST", "/v1/messages", body, content_type="application/json")
    assert response.status_code == 422
    assert {v["field"] for v in response.json()["error"]["violations"]} == {"subject"}


def test_a_batch_answers_and_its_answer_matches_what_was_committed(
    seeded, no_delivery, django_capture_on_commit_callbacks
):
    good = {"from": FROM, "to": "jane@example.com", "templateId": seeded.ids["tpl"], "data": {"name": "Jane"}}
    before = set(Message.objects.values_list("id", flat=True))
    raw = json.dumps({"messages": [good, {**good, LONE: 1}, {**good, "tags": [LONE]}, good]})
    with django_capture_on_commit_callbacks(execute=True):
        response = seeded.client.generic("POST", "/v1/messages/batch", raw, content_type="application/json")
    assert response.status_code == 200, response.content
    results = response.json()["data"]
    assert [r["status"] for r in results] == ["accepted", "error", "error", "accepted"]
    assert results[1]["error"]["violations"][0]["field"] == "\\ud800"
    assert results[1]["error"]["violations"][0]["code"] == "unknown_field"
    created = set(Message.objects.values_list("id", flat=True)) - before
    assert created == {results[0]["id"], results[3]["id"]}
    assert sorted(no_delivery[0]) == sorted(created)


def test_an_idempotent_send_with_a_lone_surrogate_in_its_data_is_a_422(seeded, no_delivery):
    body = {"from": FROM, "to": "jane@example.com", "templateId": seeded.ids["tpl"], "data": {"name": LONE}}
    response = seeded.client.generic(
        "POST", "/v1/messages", json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert response.status_code == 422, response.content
    assert {v["field"] for v in response.json()["error"]["violations"]} == {"data"}


def test_a_version_with_a_lone_surrogate_in_its_html_is_a_422(seeded):
    body = json.dumps({"subject": "s", "html": f"x{LONE}y"})
    url = f"/v1/templates/{seeded.ids['tpl']}/versions"
    response = seeded.client.generic("POST", url, body, content_type="application/json")
    assert response.status_code == 422, response.content
    assert {v["field"] for v in response.json()["error"]["violations"]} == {"html"}
