"""Domain exceptions are mapped to the envelope in one place: pufferpost.errors.exception_handler."""

import pytest
from django.db import transaction
from django.test import RequestFactory

from pufferpost import errors


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.Invalid("validation_failed", "The request is invalid.", violations=[{"field": "slug"}]), 422),
        (errors.SendRefused("recipient_suppressed", "The recipient is suppressed."), 422),
        (errors.Forbidden("sending_paused", "Sending is paused for this workspace."), 403),
        (errors.NotFound("thing_not_found", "No such thing."), 404),
        (errors.Conflict("sender_exists", "A sender already exists."), 409),
        (errors.LimitExceeded("quota_exceeded", "The monthly quota is used up."), 429),
    ],
)
def test_each_kind_maps_to_its_status_and_the_envelope(db, exc, status):
    request = RequestFactory().post("/v1/anything")
    with transaction.atomic():
        response = errors.exception_handler(exc, {"request": request})
    assert response.status_code == status
    body = response.data["error"]
    assert (body["code"], body["message"]) == (exc.code, exc.message)
    assert body["request_id"].startswith("req_")
    assert {k: v for k, v in body.items() if k not in ("code", "message", "request_id")} == exc.extra
    assert "Retry-After" not in response


def test_retry_after_becomes_the_header(db):
    exc = errors.LimitExceeded("rate_limited", "Too many send requests.", retry_after=17)
    with transaction.atomic():
        response = errors.exception_handler(exc, {"request": RequestFactory().post("/v1/messages")})
    assert (response.status_code, response["Retry-After"]) == (429, "17")
