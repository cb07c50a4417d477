"""No operation in the published schema answers without a valid key; the schema and docs need none."""

import pytest
from django.test import Client

from tests.helpers import assert_envelope, schema_operations

BAD = {
    "missing": None,
    "unknown": "Bearer key_live_" + "x" * 40,
    "malformed": "Bearer nope",
    "basic": "Basic dXNlcjpwYXNz",
    "empty": "Bearer ",
}


OPERATIONS = schema_operations()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_refuses_a_missing_unknown_malformed_or_revoked_key(method, path, seeded):
    url = path.format(id=seeded.ids["dom"] if "domains" in path else "x", number=1, email="blocked@example.com")
    for kind, value in {**BAD, "revoked": f"Bearer {seeded.revoked_key}"}.items():
        headers = {"HTTP_AUTHORIZATION": value} if value is not None else {}
        response = Client().generic(method, url, "{}", content_type="application/json", **headers)
        error = assert_envelope(response, 401, "unauthorized")
        assert response["WWW-Authenticate"] == 'Bearer realm="api"', kind
        assert error["message"] == "A valid API key is required.", kind


@pytest.mark.parametrize("url", ["/v1/openapi.json", "/docs/"])
def test_the_schema_and_the_docs_need_no_key(client, db, url):
    assert client.get(url).status_code == 200
    assert client.get(url, HTTP_AUTHORIZATION="Bearer key_live_nope").status_code == 200
