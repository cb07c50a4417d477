"""Assertions every API test shares."""

import re

REQUEST_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert REQUEST_ID.match(body["error"]["request_id"])
    assert response["X-Request-Id"] == body["error"]["request_id"]
    return body["error"]


def violations(error):
    return {(v["field"], v["code"]) for v in error["violations"]}
