"""Refusals keep the guide's code and message and add why (`reason`) and what to do (`detail`)."""

import pytest

from tests.factories import SenderFactory
from tests.helpers import assert_envelope, violations
from tests.messaging.conftest import FROM
from tests.messaging.factories import SuppressionFactory


def send(api, body):
    return api.post("/v1/messages", body, format="json")


def refusal(api, body):
    error = assert_envelope(send(api, body), 422, "sender_not_available")
    assert error["message"] == f'No active sender for "{body["from"]}".'  # the guide's words stay
    return error


def test_an_unregistered_sender_says_to_register_it(api, sendable, body):
    error = refusal(api, body(**{"from": "nobody@mail.acme.com"}))
    assert error["reason"] == "sender_not_registered"
    assert "POST /v1/senders" in error["detail"]


def test_a_sender_under_review_says_so(api, sendable, body):
    sendable.sender.state = "under_review"
    sendable.sender.save()
    error = refusal(api, body())
    assert error["reason"] == "sender_under_review"
    assert sendable.sender.id in error["detail"] and "under review" in error["detail"]


def test_a_paused_sender_says_why_it_was_paused(api, sendable, body):
    sendable.sender.state = "paused"
    sendable.sender.state_reason = "Auto-paused: bounce rate 6.0% over the last 100 messages (7 days) exceeds 5.0%"
    sendable.sender.save()
    error = refusal(api, body())
    assert error["reason"] == "sender_paused"
    assert "bounce rate 6.0%" in error["detail"]


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_an_unverified_domain_says_how_to_verify_it(api, sendable, body, status):
    sendable.domain.dkim_status = status
    sendable.domain.save()
    error = refusal(api, body())
    assert error["reason"] == "domain_not_verified"
    assert f"dkim_status: {status}" in error["detail"]
    assert f"POST /v1/domains/{sendable.domain.id}/refresh" in error["detail"]


def test_a_missing_domain_says_to_add_it(api, sendable, body):
    sendable.domain.delete()
    error = refusal(api, body())
    assert error["reason"] == "domain_not_registered" and "POST /v1/domains" in error["detail"]


def test_an_active_sender_on_another_address_is_not_registered(api, sendable, body):
    SenderFactory(workspace=sendable.workspace, from_address="other@mail.acme.com", state="active")
    assert refusal(api, body(**{"from": "noreply@mail.acme.com"}))["reason"] == "sender_not_registered"
    assert FROM != "noreply@mail.acme.com"


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("bounce", "bounced permanently"),
        ("complaint", "reported an earlier message as spam"),
        ("unsubscribe", "unsubscribed"),
        ("manual", "by hand"),
    ],
)
def test_recipient_suppressed_says_the_reason_and_how_to_remove_it(api, sendable, body, reason, words):
    SuppressionFactory(workspace=sendable.workspace, email="blocked@example.com", reason=reason)
    error = assert_envelope(send(api, body(to="blocked@example.com")), 422, "recipient_suppressed")
    assert error["message"] == '"blocked@example.com" is on the suppression list.'
    assert error["reason"] == reason
    assert words in error["detail"]
    assert "DELETE /v1/suppressions/blocked@example.com" in error["detail"]


@pytest.mark.parametrize(
    ("sent", "meant"),
    [
        ("reply_to", "replyTo"),
        ("template_id", "templateId"),
        ("unsubscribe_group", "unsubscribeGroup"),
        ("TemplateId", "templateId"),
    ],
)
def test_an_unknown_field_in_another_spelling_suggests_the_camel_case_name(api, sendable, body, sent, meant):
    error = assert_envelope(send(api, body(**{sent: "x"})), 422, "validation_failed")
    assert (sent, "unknown_field") in violations(error)
    [violation] = [v for v in error["violations"] if v["field"] == sent]
    assert f'did you mean "{meant}"' in violation["message"]


def test_a_truly_unknown_field_gets_no_suggestion(api, sendable, body):
    error = assert_envelope(send(api, body(subject="Hi")), 422, "validation_failed")
    [violation] = [v for v in error["violations"] if v["field"] == "subject"]
    assert violation["message"] == "Unknown field."
