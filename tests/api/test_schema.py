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


# What Swagger UI (and other generators) make up when a schema gives no example of its own.
PLACEHOLDER_STRINGS = {"string", "additionalProp1", "additionalProp2", "additionalProp3", "user@example.com"}
PLACEHOLDER_PREFIXES = ("2019-08-24", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "https://example.com")


def _placeholders(value, where):
    """Every placeholder inside an example value (dict keys included), as (where, value)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        # 0 is what a generator shows for any number; a batch item's `index` really starts there.
        return [(where, value)] if value == 0 and not where.endswith(".index") else []
    if isinstance(value, str):
        return [(where, value)] if value in PLACEHOLDER_STRINGS or value.startswith(PLACEHOLDER_PREFIXES) else []
    if isinstance(value, list):
        return [hit for i, item in enumerate(value) for hit in _placeholders(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        hits = [(f"{where} key", key) for key in value if key in PLACEHOLDER_STRINGS]
        return hits + [hit for key, item in value.items() for hit in _placeholders(item, f"{where}.{key}")]
    return []


def _examples_in(node, where="$"):
    """Every `example` value, and every value of an `examples` map, anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "example":
                yield where, value
            elif key == "examples" and isinstance(value, dict):
                for name, item in value.items():
                    yield f"{where}.examples.{name}", item.get("value") if isinstance(item, dict) else item
            else:
                yield from _examples_in(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _examples_in(item, f"{where}[{i}]")


def _valid(openapi, schema, value):
    from openapi_schema_validator import OAS30Validator

    return [e.message for e in OAS30Validator({**schema, "components": openapi["components"]}).iter_errors(value)]


def test_no_example_anywhere_is_a_generated_placeholder(openapi):
    found = [(where, value) for where, value in _examples_in(openapi)]
    assert len(found) > 300  # the walk reaches the whole document
    hits = [hit for where, value in found for hit in _placeholders(value, where)]
    assert hits == []


def test_every_property_has_a_description_and_an_example_of_its_type(openapi):
    missing, wrong = [], []
    for name, schema in openapi["components"]["schemas"].items():
        if "enum" in schema and (not schema.get("description") or schema.get("example") not in schema["enum"]):
            missing.append(name)
        for prop, prop_schema in (schema.get("properties") or {}).items():
            if not prop_schema.get("description") or "example" not in prop_schema:
                missing.append(f"{name}.{prop}")
            elif errors := _valid(openapi, prop_schema, prop_schema["example"]):
                wrong.append((f"{name}.{prop}", errors[0]))
    assert missing == [] and wrong == []


def test_every_parameter_and_header_has_a_description_and_an_example_of_its_type(openapi):
    missing = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                where = (method, path, parameter["name"])
                if not parameter.get("description") or "example" not in parameter:
                    missing.append(where)
                else:
                    assert _valid(openapi, parameter["schema"], parameter["example"]) == [], where
            for status, response in operation["responses"].items():
                assert response.get("description"), (method, path, status)
                for name, header in response.get("headers", {}).items():
                    if not header.get("description") or "example" not in header:
                        missing.append((method, path, status, name))
                    else:
                        assert _valid(openapi, header["schema"], header["example"]) == [], (method, path, name)
    assert missing == []


def test_every_error_answer_shows_a_real_envelope_for_each_code_it_names(openapi):
    error_schema = {"$ref": "#/components/schemas/Error"}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                where = (method, path, status)
                examples = response["content"]["application/json"].get("examples") or {}
                assert examples, where
                for name, example in examples.items():
                    body = example["value"]["error"]
                    assert name == body["code"] and f"`{body['code']}`" in response["description"], where
                    assert body["message"] and REQUEST_ID.match(body["request_id"]), where
                    assert _valid(openapi, error_schema, example["value"]) == [], (where, name)
                    if body["code"] == "validation_failed":
                        assert body["violations"], where
    send_422 = openapi["paths"]["/v1/messages"]["post"]["responses"]["422"]["content"]["application/json"]
    assert {"validation_failed", "sender_not_available", "recipient_suppressed", "template_required"} <= set(
        send_422["examples"]
    )
    assert send_422["examples"]["sender_not_available"]["value"]["error"]["reason"] == "sender_under_review"


def test_a_list_example_is_a_whole_row_of_its_resource(openapi):
    schemas = openapi["components"]["schemas"]
    [row] = schemas["MessagePage"]["properties"]["data"]["example"]
    assert set(row) == set(schemas["MessageView"]["properties"])
    assert row["id"].startswith("msg_") and row["created_at"].endswith("+00:00")


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
        "bounce_rate": round(24 / 2179, 4),
        "block_rate": round(6 / 2179, 4),
        "complaint_rate": round(3 / 2149, 4),
    }
