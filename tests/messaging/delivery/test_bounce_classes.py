"""Bounce classes on synchronous SMTP replies: what the receiving MX answers at RCPT decides."""

import pytest

from messaging.delivery.services import deliver_due_messages, deliver_messages
from messaging.models import DeliveryAttempt, Message, MessageEvent, Suppression
from tests.messaging.delivery.pipeline import make_sendable

# Gmail answers in several lines (`550-` continues, `550 ` ends), as here.
GMAIL_REPUTATION = (
    "550-5.7.1 [127.0.0.1] Our system has detected that this message is likely suspicious due to the very low\r\n"
    "550 5.7.1 reputation of the sending IP address."
)
MICROSOFT_BLOCKLIST = (
    "550 5.7.1 Unfortunately, messages from [127.0.0.1] weren't sent. Please contact your Internet service "
    "provider since part of their network is on our block list (S3140)."
)


@pytest.fixture
def world(settings, dns, smtp_sink, workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns)


def _suppressed(workspace):
    return sorted(Suppression.objects.filter(workspace=workspace).values_list("email", flat=True))


@pytest.mark.parametrize(
    ("reply", "enhanced"),
    [
        (GMAIL_REPUTATION, "5.7.1"),
        (MICROSOFT_BLOCKLIST, "5.7.1"),
        ("550-5.7.26 This mail has been blocked because the sender is\r\n550 5.7.26 unauthenticated.", "5.7.26"),
        (
            "550 5.7.515 Access denied, sending domain mail.acme.test doesn't meet the required authentication level.",
            "5.7.515",
        ),
    ],
    ids=["gmail-reputation", "microsoft-s3140", "gmail-5.7.26", "microsoft-5.7.515"],
)
def test_a_block_at_rcpt_bounces_without_suppressing(world, smtp_sink, workspace, reply, enhanced):
    smtp_sink.reply("jane@example.com", reply)
    message = world.message(to="jane@example.com")

    deliver_messages(message_ids=[message.pk])

    message.refresh_from_db()
    assert (message.status, message.bounce_class) == ("bounced", "block")
    detail = MessageEvent.objects.get(message=message, type="bounced").detail
    assert detail["bounce_class"] == "block"
    assert (detail["basic_code"], detail["enhanced_code"]) == (550, enhanced)
    assert detail["diagnostic"] and detail["remote_mta"] == "mx.example.com"
    assert detail["reporting_mta"] == "out.acme.test"
    assert _suppressed(workspace) == []
    assert smtp_sink.received == []


def test_a_hard_bounce_at_rcpt_suppresses_and_says_why(world, smtp_sink, workspace, api):
    smtp_sink.refuse("jane@example.com")
    message = world.message(to="jane@example.com")

    deliver_messages(message_ids=[message.pk])

    message.refresh_from_db()
    assert (message.status, message.bounce_class) == ("bounced", "hard")
    [row] = api.get("/v1/suppressions").json()["data"]
    assert row["email"] == "jane@example.com" and row["source_message_id"] == message.pk
    assert (row["detail"]["bounce_class"], row["detail"]["enhanced_code"]) == ("hard", "5.1.1")
    assert row["detail"]["remote_mta"] == "mx.example.com" and "User unknown" in row["detail"]["diagnostic"]


def test_a_full_mailbox_answered_5xx_is_retried_not_bounced(world, smtp_sink, workspace):
    smtp_sink.reply("jane@example.com", "552 5.2.2 <jane@example.com>: Mailbox full")
    message = world.message(to="jane@example.com")

    deliver_messages(message_ids=[message.pk])

    message.refresh_from_db()
    assert message.status == "queued" and message.next_attempt_at is not None
    detail = MessageEvent.objects.get(message=message, type="deferred").detail
    assert (detail["bounce_class"], detail["enhanced_code"]) == ("soft", "5.2.2")
    assert DeliveryAttempt.objects.get(message=message).recipients["jane@example.com"]["outcome"] == "deferred"
    assert _suppressed(workspace) == []

    # The mailbox has room again: the retry delivers it (the 5xx did not settle the recipient).
    smtp_sink.rules.clear()
    Message.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)
    deliver_due_messages(message_ids=[message.pk])
    message.refresh_from_db()
    assert message.status == "delivered"
    assert [r.rcpt_tos for r in smtp_sink.received] == [["jane@example.com"]]


def test_a_cc_blocked_is_not_suppressed_and_a_cc_unknown_is(world, smtp_sink, workspace):
    smtp_sink.reply("audit@example.org", MICROSOFT_BLOCKLIST)
    smtp_sink.refuse("gone@example.org")
    message = world.message(to="jane@example.com", cc=["audit@example.org", "gone@example.org"])

    deliver_messages(message_ids=[message.pk])

    message.refresh_from_db()
    assert message.status == "delivered"
    assert _suppressed(workspace) == ["gone@example.org"]
    suppression = Suppression.objects.get(workspace=workspace)
    assert (suppression.detail["bounce_class"], suppression.detail["enhanced_code"]) == ("hard", "5.1.1")
    recipients = MessageEvent.objects.get(message=message, type="delivered").detail["recipients"]
    assert recipients["audit@example.org"]["bounce_class"] == "block"


def test_our_own_retry_window_closing_is_errored_and_expired(world, smtp_sink, workspace, settings):
    settings.PUFFERPOST_DELIVERY_RETRY_WINDOW = 0
    smtp_sink.defer("jane@example.com")
    message = world.message(to="jane@example.com")

    deliver_messages(message_ids=[message.pk])

    message.refresh_from_db()
    assert (message.status, message.bounce_class) == ("errored", "expired")
    detail = MessageEvent.objects.get(message=message, type="errored").detail
    assert (detail["reason"], detail["bounce_class"]) == ("retry_window_exhausted", "expired")
    assert _suppressed(workspace) == []
