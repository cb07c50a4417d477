"""The published schema: served without a key, valid OpenAPI 3, browsable offline at /docs/."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from openapi_spec_validator import validate

from tests.helpers import REQUEST_ID


def test_the_schema_is_served_as_json_without_a_key(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json") or response[
        "Content-Type"
    ].startswith("application/json")
    assert response.json()["openapi"].startswith("3.")
    assert REQUEST_ID.match(response["X-Request-Id"])


def test_a_bad_key_does_not_lock_anyone_out_of_the_schema(client):
    response = client.get("/v1/openapi.json", HTTP_AUTHORIZATION="Bearer key_live_nope")
    assert response.status_code == 200


def test_the_schema_is_valid_openapi(openapi):
    validate(openapi)
    validate_schema(openapi)


def test_schema_generation_has_no_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_operation_has_a_unique_id_and_the_bearer_scheme(openapi):
    assert openapi["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "key_live_…",
        "description": "`Authorization: Bearer key_live_…`. Each operation names the scope it needs.",
    }
    ids = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            assert operation["security"] == [{"ApiKey": []}], (method, path)
            assert "Requires the `" in operation["description"], (method, path)
    assert len(ids) == len(set(ids))


def test_every_error_answer_is_the_one_shared_envelope(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
                assert "X-Request-Id" in response["headers"], (method, path, status)
            assert {"401", "403", "406"} <= set(operation["responses"]), (method, path)
            if "{" in path:
                assert "404" in operation["responses"], (method, path)
            if method in ("post", "patch"):
                assert {"400", "413", "415", "422"} <= set(operation["responses"]), (method, path)
    body = openapi["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["code", "message", "request_id"]
    assert body["properties"]["violations"]["items"] == {"$ref": "#/components/schemas/Violation"}


def test_send_bodies_are_camel_case_and_answers_snake_case(openapi):
    schemas = openapi["components"]["schemas"]
    send = schemas["Send"]["properties"]
    assert {"from", "to", "templateId", "template", "replyTo", "unsubscribeGroup", "attachments"} <= set(send)
    assert set(schemas["Attachment"]["properties"]) == {"filename", "contentType", "content"}
    assert set(schemas["SenderCreate"]["properties"]) == {"fromAddress", "displayName"}
    assert {"reply_to", "template_id", "template_version"} <= set(schemas["MessageView"]["properties"])
    assert set(schemas["AttachmentView"]["properties"]) == {"filename", "content_type"}


def test_list_operations_document_their_query_parameters(openapi):
    def names(path):
        return {p["name"] for p in openapi["paths"][path]["get"].get("parameters", []) if p["in"] == "query"}

    assert names("/v1/messages") == {
        "limit",
        "cursor",
        "status",
        "recipient",
        "from",
        "templateId",
        "createdAfter",
        "createdBefore",
    }
    for path in ("/v1/templates", "/v1/suppressions", "/v1/unsubscribe-groups", "/v1/webhooks"):
        assert {"limit", "cursor"} <= names(path), path


def test_the_send_documents_rate_limit_headers_on_429(openapi):
    headers = openapi["paths"]["/v1/messages"]["post"]["responses"]["429"]["headers"]
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} <= set(headers)


@pytest.mark.parametrize(
    ("path", "description"),
    [
        ("/v1/domains/{id}", "`dom_…`"),
        ("/v1/senders/{id}", "`snd_…`"),
        ("/v1/templates/{id}", "`tpl_…` id or its slug"),
        ("/v1/messages/{id}", "`msg_…`"),
        ("/v1/unsubscribe-groups/{id}", "`grp_…`"),
        ("/v1/webhooks/{id}", "`whk_…`"),
    ],
)
def test_path_ids_name_their_prefix(openapi, path, description):
    (parameter,) = [p for p in openapi["paths"][path]["get"]["parameters"] if p["in"] == "path"]
    assert description in parameter["description"]


def test_the_docs_page_loads_its_assets_locally(client):
    response = client.get("/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/v1/openapi.json" in html
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any("swagger-ui" in asset for asset in assets)
    for asset in assets:
        assert not asset.startswith(("http:", "https:", "//")), asset
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def test_the_stats_operation_documents_its_parameters_and_a_real_example(openapi):
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    from tests.api.conformance import strict

    operation = openapi["paths"]["/v1/stats"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "from",
        "to",
        "interval",
        "timezone",
        "senderId",
        "templateId",
        "unsubscribeGroupId",
    }
    assert "Requires the `messages:read` scope." in operation["description"]
    [example] = operation["responses"]["200"]["content"]["application/json"]["examples"].values()
    body = example["value"]
    schema = strict(
        operation["responses"]["200"]["content"]["application/json"]["schema"], openapi["components"]["schemas"]
    )
    assert list(OAS30Validator(schema, format_checker=oas30_format_checker).iter_errors(body)) == []
    assert [(b["start"], b["end"]) for b in body["data"]] == [
        ("2026-11-29T23:00:00+00:00", "2026-11-30T23:00:00+00:00"),
        ("2026-11-30T23:00:00+00:00", "2026-12-01T23:00:00+00:00"),
    ]
    for key, total in body["totals"]["counts"].items():
        assert total == sum(b["counts"][key] for b in body["data"]), key
    assert body["totals"]["rates"] == {
        "delivery_rate": round(2149 / 2179, 4),
        "bounce_rate": round(26 / 2179, 4),
        "block_rate": round(4 / 2179, 4),
        "complaint_rate": round(1 / 2149, 4),
    }
