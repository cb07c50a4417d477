"""Asynchronous bounces (DSNs) by class: what each does to the message, the suppression list and the sender."""

import json

import pytest

from messaging.feedback.reputation import sender_reputation_evaluate, sender_reputation_summary
from messaging.feedback.services import feedback_report_process
from messaging.models import MessageEvent, Suppression
from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from senders.models import Sender
from tests.messaging.feedback import samples

GMAIL_REPUTATION = (
    "550-5.7.1 [192.0.2.25] Our system has detected that this message is likely suspicious due to the very"
    " low reputation of the sending IP address."
)
EXPIRY = "connect to mx.example.org[192.0.2.1]:25: Connection timed out"


def _process(message, *, to=None, **dsn):
    raw = samples.postfix_dsn(message.pk, to=to or message.to, **dsn)
    return feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])


def _suppressed(workspace):
    return list(Suppression.objects.filter(workspace=workspace).values_list("email", flat=True))


def test_a_hard_dsn_carries_its_class_codes_and_mtas_and_the_suppression_says_why(make_message, workspace, api):
    message = make_message(status="delivered")

    _process(message)

    message.refresh_from_db()
    assert (message.status, message.bounce_class) == ("bounced", "hard")
    detail = MessageEvent.objects.get(message=message, type="bounced").detail
    assert detail["bounce_class"] == "hard"
    assert (detail["basic_code"], detail["enhanced_code"]) == (550, "5.1.1")
    assert (detail["reporting_mta"], detail["remote_mta"]) == ("mx.example.org", "mx.example.org")
    assert "User unknown" in detail["diagnostic"]

    [row] = api.get("/v1/suppressions").json()["data"]
    assert row["reason"] == "bounce"
    assert row["source_message_id"] == message.pk
    assert row["detail"]["bounce_class"] == "hard"
    assert row["detail"]["enhanced_code"] == "5.1.1"
    assert "hard bounce" in row["why"] and "from mx.example.org" in row["why"] and "User unknown" in row["why"]
    assert row["remove"] == "DELETE /v1/suppressions/jane%40example.org"
    assert api.delete("/v1/suppressions/jane%40example.org").status_code == 204
    assert _suppressed(workspace) == []


def test_a_reputation_block_bounces_the_message_but_suppresses_nobody(make_message, workspace):
    message = make_message(status="delivered")

    _process(message, status="5.7.1", diagnostic=GMAIL_REPUTATION)

    message.refresh_from_db()
    assert (message.status, message.bounce_class) == ("bounced", "block")
    detail = MessageEvent.objects.get(message=message, type="bounced").detail
    assert (detail["bounce_class"], detail["enhanced_code"], detail["basic_code"]) == ("block", "5.7.1", 550)
    assert "very low reputation" in detail["diagnostic"]
    assert _suppressed(workspace) == []


def test_a_relays_expiry_bounces_a_delivered_message_and_a_second_one_suppresses(make_message, workspace):
    first = make_message(status="delivered")
    # Postfix as the MX: first "Delayed Mail", then "Undelivered Mail" with Action failed, Status 4.4.1.
    feedback_report_process(raw=samples.postfix_delayed_dsn(first.pk), envelope_recipients=[samples.verp(first.pk)])
    _process(first, status="4.4.1", diagnostic=EXPIRY)

    first.refresh_from_db()
    assert (first.status, first.bounce_class) == ("bounced", "expired")
    events = list(MessageEvent.objects.filter(message=first).values_list("type", "detail__bounce_class"))
    assert events == [("deferred", "soft"), ("bounced", "expired")]
    assert _suppressed(workspace) == []  # a first expiry is a receiver's bad week

    second = make_message(status="delivered")
    _process(second, status="4.4.1", diagnostic=EXPIRY)

    second.refresh_from_db()
    assert (second.status, second.bounce_class) == ("bounced", "expired")
    assert _suppressed(workspace) == ["jane@example.org"]
    assert Suppression.objects.get(workspace=workspace).detail["bounce_class"] == "expired"


def test_a_full_mailbox_that_the_relay_gave_up_on_is_not_suppressed(make_message, workspace):
    message = make_message(status="delivered")

    _process(message, status="5.2.2", diagnostic="552 5.2.2 Mailbox full")

    message.refresh_from_db()
    assert (message.status, message.bounce_class) == ("bounced", "soft")
    assert _suppressed(workspace) == []


def test_a_block_for_a_cc_suppresses_nothing(make_message, workspace):
    message = make_message(status="delivered", cc=["audit@acme.test"])

    _process(message, to="audit@acme.test", status="5.7.26", diagnostic="550-5.7.26 Unauthenticated")

    message.refresh_from_db()
    assert message.status == "delivered"
    assert _suppressed(workspace) == []


def test_the_webhook_payload_carries_the_bounce_detail(make_message, workspace, settings):
    settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = True
    webhook_endpoint_create(workspace=workspace, url="http://127.0.0.1:9/hook", events=["bounced"])
    message = make_message(status="delivered")

    _process(message, status="5.7.1", diagnostic=GMAIL_REPUTATION)

    payload = json.loads(WebhookDelivery.objects.get(event_type="bounced").payload)
    assert payload["detail"]["bounce_class"] == "block"
    assert (payload["detail"]["basic_code"], payload["detail"]["enhanced_code"]) == (550, "5.7.1")
    assert payload["detail"]["remote_mta"] == "mx.example.org"
    assert payload["detail"]["reporting_mta"] == "mx.example.org"
    assert "very low reputation" in payload["detail"]["diagnostic"]


def _blocked(make_message, count):
    messages = make_message(status="bounced", count=count)
    type(messages[0]).objects.filter(pk__in=[m.pk for m in messages]).update(bounce_class="block")


@pytest.mark.parametrize(("blocks", "paused"), [(10, False), (11, True)], ids=["exactly-10%", "just-above-10%"])
def test_the_block_rate_pauses_on_its_own_threshold(make_message, sender, blocks, paused):
    _blocked(make_message, blocks)
    make_message(status="delivered", count=100 - blocks)

    # 10 % blocks is far above the 5 % bounce threshold, yet blocks are not list bounces.
    assert sender_reputation_evaluate(sender_id=sender.pk) is paused
    sender.refresh_from_db()
    assert sender.state == ("paused" if paused else "active")
    if paused:
        assert sender.state_reason.startswith("Auto-paused: block rate 11.0% over the last 100 messages")
    assert "block 1" in sender_reputation_summary(sender=sender)


def test_the_block_threshold_is_a_workspace_setting(make_message, sender, workspace):
    workspace.block_rate_threshold = "0.0200"
    workspace.save()
    _blocked(make_message, 3)
    make_message(status="delivered", count=97)

    assert sender_reputation_evaluate(sender_id=sender.pk)
    assert Sender.objects.get(pk=sender.pk).state_reason.endswith("exceeds 2.0%")


def test_the_admin_shows_each_senders_rates_against_the_thresholds(admin_client, make_message, sender):
    _blocked(make_message, 3)
    make_message(status="bounced", count=2)
    make_message(status="delivered", count=95)

    page = admin_client.get("/admin/messaging/senderreputation/").content.decode()

    assert sender.from_address in page
    assert "bounce 2.0% (pauses above 5.0%)" in page
    assert "block 3.0% (pauses above 10.0%)" in page
    assert "over 100 messages" in page
