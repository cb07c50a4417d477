"""The OpenAPI description of `/v1`: the bearer scheme, the one `Error` envelope, and helpers.

Views describe their bodies and their specific refusals with `extend_schema`; the answers every
operation shares are added here once, from what the view already declares, so the schema cannot
drift from the plumbing:

- 401 `unauthorized` and 406 `not_acceptable` on every operation;
- 403 `missing_scope` naming the scope from the view's `required_scopes`;
- 404 `<resource>_not_found` (the view's `not_found_code`) on every path with an id;
- 400 `invalid_json`, 413 `payload_too_large`, 415 `unsupported_media_type` and 422
  `validation_failed` on every operation that takes a body.

Undocumented methods on a documented path answer 405 `method_not_allowed` with an `Allow` header.
Descriptions and examples for every field, parameter, header and error come from
`pufferpost.openapi_examples` (the `add_examples` hook).
"""

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_serializer, inline_serializer
from rest_framework import serializers

from pufferpost import openapi_examples as examples
from pufferpost.serializers import StrictSerializer

# Send and batch answers once the limiter has run (it runs right after authentication).
RATE_LIMIT_STATUSES = [200, 202, 400, 409, 413, 415, 422, 429]


class ViolationSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True, help_text="The offending field, e.g. `cc[3]`; null for the whole body."
    )
    code = serializers.CharField(
        help_text="Machine-readable reason, e.g. `invalid_email`, `required`, `unknown_field`."
    )
    message = serializers.CharField()


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `domain_not_found`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    request_id = serializers.CharField(help_text="`req_…`, the same as the `X-Request-Id` response header.")
    violations = ViolationSerializer(many=True, required=False, help_text="Present on 422 validation failures.")
    reason = serializers.CharField(
        required=False,
        help_text="Why, when the code alone does not say: e.g. `sender_under_review` on `sender_not_available`, "
        "`bounce` on `recipient_suppressed`.",
    )
    detail = serializers.CharField(required=False, help_text="What to do about it, in a sentence.")
    missing_variables = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="On `template_variables_missing`: the variables the strict template needs that `data` lacks.",
    )


class ErrorSerializer(serializers.Serializer):
    """Every non-2xx answer: `{"error": {"code", "message", "request_id", "violations"?}}`."""

    error = ErrorBodySerializer()


def error(description: str) -> OpenApiResponse:
    """An error answer with the shared envelope; `description` names its codes."""
    return OpenApiResponse(ErrorSerializer, description=description)


def page_of(serializer_class, *, name: str, paginated: bool | str = True):
    """`{"data": [...], "next_cursor"}` (or just `data` for lists that cannot grow without bound;
    `paginated="opt-in"`: `next_cursor` present only on request or when more rows exist)."""
    fields = {"data": serializer_class(many=True)}
    if paginated == "opt-in":
        fields["next_cursor"] = serializers.CharField(
            allow_null=True,
            required=False,
            help_text="Present when you pass `limit` or `cursor`, or when more rows exist than one answer "
            "holds (100): pass it as `?cursor=` for the next page (the `Link` header has the URL); null on "
            "the last page.",
        )
    elif paginated:
        fields["next_cursor"] = serializers.CharField(
            allow_null=True, help_text="Pass as `?cursor=` for the next page; null on the last page."
        )
    page = inline_serializer(name=name, fields=fields)
    # The envelope is the answer itself: stop list actions from documenting an array of envelopes.
    extend_schema_serializer(many=False)(type(page))
    return page


LIMIT = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
    OpenApiParameter.QUERY,
    description="Page size, 1 to 100 (default 25).",
)
CURSOR = OpenApiParameter(
    "cursor", OpenApiTypes.STR, OpenApiParameter.QUERY, description="The `next_cursor` of the previous page."
)
PAGE_PARAMETERS = [LIMIT, CURSOR]
OPT_IN_PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
        OpenApiParameter.QUERY,
        description="Page size, 1 to 100 (default 100). Without `limit` and `cursor` the list is the "
        'guide\'s plain `{"data": [...]}` while it holds at most 100 rows.',
    ),
    CURSOR,
]


EMPTY_BODY = {
    "application/json": {
        "type": "object",
        "additionalProperties": False,
        "description": "No fields: send `{}` or no body at all.",
    }
}


def path_id(description: str, name: str = "id") -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description)


RATE_LIMIT_HEADERS = [
    OpenApiParameter(
        "RateLimit-Limit",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=RATE_LIMIT_STATUSES,
        description="Send requests allowed in the current one-minute window.",
    ),
    OpenApiParameter(
        "RateLimit-Remaining",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=RATE_LIMIT_STATUSES,
        description="Send requests left in the current window.",
    ),
    OpenApiParameter(
        "RateLimit-Reset",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=RATE_LIMIT_STATUSES,
        description="When the window resets, in Unix epoch seconds.",
    ),
    OpenApiParameter(
        "Retry-After",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=[429],
        description="Seconds to wait before retrying (on `rate_limited`).",
    ),
]


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "pufferpost.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "key_live_…",
            "description": "`Authorization: Bearer key_live_…`. Each operation names the scope it needs.",
        }


class PufferPostAutoSchema(AutoSchema):
    """Adds the answers every operation shares (see the module docstring) and stable operation ids."""

    def _scope(self) -> str | None:
        scopes = getattr(self.view, "required_scopes", {}) or {}
        return scopes.get(getattr(self.view, "action", None) or "") or scopes.get(self.method)

    def _takes_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH")

    def get_operation_id(self) -> str:
        resource = self._tokenize_path()[0].replace("-", "_")
        action = getattr(self.view, "action", None) or self.method_mapping[self.method.lower()]
        return f"{resource}_{action}"

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        # A docstring inherited from a shared base (StrictSerializer's) describes code, not the body.
        if "__doc__" not in vars(type(serializer)) or not type(serializer).__doc__:
            schema.pop("description", None)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            # The server refuses unknown fields (422 `unknown_field`); the schema says so.
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and not field.allow_blank
            and schema.get("type") == "string"
            and "minLength" not in schema
            and "enum" not in schema
        ):
            # An empty string is refused (`required`), so the schema states the minimum.
            schema["minLength"] = 1
        return schema

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        scope = self._scope()
        if operation is not None and scope:
            description = operation.get("description", "")
            operation["description"] = f"{description}\n\nRequires the `{scope}` scope.".strip()
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        scope = self._scope()
        shared = {
            "401": error("`unauthorized`: the API key is missing, malformed, unknown or revoked."),
            "406": error("`not_acceptable`: the `Accept` header excludes `application/json`."),
        }
        if scope:
            shared["403"] = error(f"`missing_scope`: the API key lacks the `{scope}` scope.")
        if "{" in self.path:
            code = getattr(self.view, "not_found_code", "not_found")
            shared["404"] = error(f"`{code}`: no such resource in this workspace.")
        if self._takes_body():
            shared["400"] = error("`invalid_json`: the body is not valid JSON.")
            shared["413"] = error("`payload_too_large`: the body is too large.")
            shared["415"] = error("`unsupported_media_type`: send the body as `application/json`.")
            shared["422"] = error("`validation_failed`: `violations` names each offending field.")
        for code, response in shared.items():
            if code in responses:
                continue
            responses[code] = self._get_response_for_code(response, code, direction=direction)
        return dict(sorted(responses.items()))


def add_request_id_header(result, generator, request, public):
    """Postprocessing hook: every response carries `X-Request-Id`, success or not."""
    header = {"X-Request-Id": {"schema": {"type": "string"}, "description": "`req_…`, unique per request."}}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).update(header)
    return result


def add_examples(result, generator, request, public):
    """Postprocessing hook: a description and a real example on every property, parameter, header
    and error answer (from `pufferpost.openapi_examples`), so Swagger UI shows no placeholder.

    A property that is a bare `$ref` (an enum, a nested object) becomes `allOf: [$ref]`, the
    OpenAPI 3.0 way to give it a description and an example of its own.
    """
    schemas = result.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        if "enum" in schema:
            schema.setdefault("description", examples.ENUMS.get(name, ""))
            schema.setdefault("example", schema["enum"][0])
        for prop, prop_schema in (schema.get("properties") or {}).items():
            description, example = _property_example(name, prop)
            if "$ref" in prop_schema:
                prop_schema["allOf"] = [{"$ref": prop_schema.pop("$ref")}]
            if not prop_schema.get("description") and description:
                prop_schema["description"] = description
            if "example" not in prop_schema and example not in (_MISSING, examples.COMPOSED):
                prop_schema["example"] = example
    for schema in schemas.values():
        for prop_schema in (schema.get("properties") or {}).values():
            if "example" not in prop_schema:
                composed = _composed_example(prop_schema, schemas)
                if composed is not _MISSING:
                    prop_schema["example"] = composed
    for path, operations in result.get("paths", {}).items():
        resource = path.split("/")[2] if path.count("/") >= 2 else ""
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if "example" in parameter:
                    continue
                key = (parameter["in"], parameter["name"])
                if (path, parameter["name"]) in examples.PATH_PARAMETERS:
                    parameter["example"] = examples.PATH_PARAMETERS[(path, parameter["name"])]
                elif key == ("path", "id"):
                    parameter["example"] = examples.PATH_IDS.get(resource, examples.MSG)
                elif key == ("query", "status") and path in examples.STATUS_PARAMETERS:
                    parameter["example"] = examples.STATUS_PARAMETERS[path]
                elif key in examples.PARAMETERS:
                    parameter["example"] = examples.PARAMETERS[key]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and "example" not in body and "examples" not in body:
                body_schema = body.get("schema", {})
                if "$ref" not in body_schema and not body_schema.get("properties"):
                    body["example"] = {}
            for status, response in operation.get("responses", {}).items():
                if not response.get("description"):
                    response["description"] = _success_description(int(status), response)
                for header_name, header in response.get("headers", {}).items():
                    if header_name in examples.HEADERS:
                        header.setdefault("example", examples.HEADERS[header_name])
                if int(status) >= 400:
                    content = response.get("content", {}).get("application/json")
                    if content is not None and "examples" not in content:
                        content["examples"] = _error_examples(int(status), response.get("description", ""), method)
    return result


_MISSING = object()
_CODE = re.compile(r"`([a-z][a-z0-9_]+)`")


def _property_example(schema_name: str, prop: str):
    for key in (f"{schema_name}.{prop}", prop):
        if key in examples.PROPERTIES:
            return examples.PROPERTIES[key]
    return "", _MISSING


_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content: done"}


def _success_description(status: int, response: dict) -> str:
    ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    text = _STATUS_TEXT.get(status, str(status))
    return f"{text}: the `{ref.rsplit('/', 1)[1]}` shown." if ref else f"{text}."


def _composed_example(fragment: dict, schemas: dict, depth: int = 0):
    """The example of a schema fragment: its own, else built from the component it names (an
    object from its properties' examples, an enum's first value), else a list of its items'."""
    if "example" in fragment:
        return fragment["example"]
    if depth > 8:
        return _MISSING
    if "$ref" in fragment:
        component = schemas[fragment["$ref"].rsplit("/", 1)[1]]
        if "enum" in component:
            return component["enum"][0]
        built = {}
        for prop, prop_schema in (component.get("properties") or {}).items():
            value = _composed_example(prop_schema, schemas, depth + 1)
            if value is not _MISSING:
                built[prop] = value
        return built
    if fragment.get("allOf"):
        return _composed_example(fragment["allOf"][0], schemas, depth + 1)
    if fragment.get("type") == "array" and "items" in fragment:
        item = _composed_example(fragment["items"], schemas, depth + 1)
        return _MISSING if item is _MISSING else [item]
    return _MISSING


def _error_examples(status: int, description: str, method: str) -> dict:
    """One named example per error code the answer's description lists, each a whole envelope."""
    found = {}
    for code in _CODE.findall(description):
        message = examples.ERRORS.get(f"{code}_{status}") or examples.ERRORS.get(code)
        if message is None or code in found:
            continue
        body = {"code": code, "message": message, "request_id": examples.REQ}
        body.update(examples.ERROR_EXTRA.get(code, {}))
        if code == "validation_failed" and method == "get":
            body["violations"] = [examples.LIST_VIOLATION]
        found[code] = {"summary": f"{status} {code}", "value": {"error": body}}
    return found
