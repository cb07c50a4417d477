"""Check a real response against the published OpenAPI schema: documented status, content type, body.

Response bodies are validated strictly: every object that lists its properties is closed
(`additionalProperties: false`) here, so a key the API returns but the schema does not name fails
the test, even though the published schema leaves objects open for forward compatibility.
"""

import copy
import re

from openapi_schema_validator import OAS30Validator, oas30_format_checker

_REF = "#/components/schemas/"


def operation_of(openapi: dict, method: str, path: str) -> dict:
    return openapi["paths"][path][method.lower()]


def template_for(openapi: dict, url: str) -> str:
    """The schema path (`/v1/domains/{id}`) a concrete URL path belongs to."""
    url = url.split("?", 1)[0]
    # Literal segments win over parameters: `/v1/messages/batch` is not `/v1/messages/{id}`.
    for template in sorted(openapi["paths"], key=lambda t: t.count("{")):
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, url):
            return template
    raise AssertionError(f"{url} is not in the schema")


def strict(schema, components: dict):
    """Inline `$ref`s and close every object that lists its properties."""
    if isinstance(schema, list):
        return [strict(item, components) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return strict(copy.deepcopy(components[schema["$ref"].removeprefix(_REF)]), components)
    result = {key: strict(value, components) for key, value in schema.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


def assert_conforms(openapi: dict, response, method: str, url: str) -> None:
    """`response` (a Django test response) is documented for `method url` and matches its schema."""
    operation = operation_of(openapi, method, template_for(openapi, url))
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{method} {url} answered {status}, not documented ({sorted(operation['responses'])}): {response.content!r}"
    )
    documented = operation["responses"][status]
    content = documented.get("content")
    if not content:
        assert not response.content, f"{method} {url} {status} documents no body but sent {response.content!r}"
        return
    assert response["Content-Type"].split(";")[0] in content, response["Content-Type"]
    schema = strict(content[response["Content-Type"].split(";")[0]]["schema"], openapi["components"]["schemas"])
    errors = sorted(OAS30Validator(schema, format_checker=oas30_format_checker).iter_errors(response.json()), key=str)
    assert not errors, f"{method} {url} {status}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )
