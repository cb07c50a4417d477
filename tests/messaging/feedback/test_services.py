import logging

import pytest

from messaging.feedback.services import feedback_bounce_record, feedback_complaint_record, feedback_report_process
from messaging.models import MessageEvent, Suppression
from pufferpost.ids import new_id
from tests.factories import WorkspaceFactory
from tests.messaging.feedback import samples


def _events(message):
    return list(MessageEvent.objects.filter(message=message).values_list("type", flat=True))


def _suppressions(workspace):
    return list(Suppression.objects.filter(workspace=workspace).values_list("email", "reason", "source_message_id"))


def test_a_hard_bounce_bounces_the_message_and_suppresses_the_recipient(make_message, workspace):
    message = make_message(status="delivered", to="Jane@Example.org")

    feedback_report_process(raw=samples.postfix_dsn(message.pk), envelope_recipients=[samples.verp(message.pk)])

    message.refresh_from_db()
    assert message.status == "bounced"
    event = MessageEvent.objects.get(message=message, type="bounced")
    assert event.detail["status"] == "5.1.1"
    assert event.detail["recipient"] == "jane@example.org"
    assert "User unknown" in event.detail["diagnostic"]
    assert event.detail["remote_mta"] == "mx.example.org"
    assert _suppressions(workspace) == [("jane@example.org", "bounce", message.pk)]


def test_the_same_dsn_arriving_twice_changes_nothing_the_second_time(make_message, workspace):
    message = make_message(status="sent")
    raw = samples.postfix_dsn(message.pk)

    for _ in range(2):
        feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    assert _events(message) == ["bounced"]
    assert _suppressions(workspace) == [("jane@example.org", "bounce", message.pk)]


def test_a_repeat_does_not_re_add_a_suppression_the_customer_deleted(make_message, workspace):
    message = make_message(status="sent")
    raw = samples.postfix_dsn(message.pk)
    feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])
    Suppression.objects.filter(workspace=workspace).delete()

    feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    assert _suppressions(workspace) == []


def test_an_existing_suppression_keeps_its_reason(make_message, workspace):
    Suppression.objects.create(workspace=workspace, email="jane@example.org", reason="manual")
    message = make_message(status="delivered")

    assert feedback_bounce_record(message_id=message.pk, recipient="jane@example.org", status="5.1.1")

    assert _suppressions(workspace) == [("jane@example.org", "manual", None)]


def test_a_complaint_marks_the_message_complained_and_suppresses_the_recipient(make_message, workspace):
    message = make_message(status="delivered")

    feedback_report_process(raw=samples.yahoo_arf(message.pk), envelope_recipients=["fbl@mail.acme.test"])

    message.refresh_from_db()
    assert message.status == "complained"
    event = MessageEvent.objects.get(message=message, type="complained")
    assert event.detail["feedback_type"] == "abuse"
    assert _suppressions(workspace) == [("jane@example.org", "complaint", message.pk)]


def test_a_complaint_with_a_redacted_recipient_suppresses_the_messages_to(make_message, workspace):
    message = make_message(status="delivered", to="bob@example.org")

    assert feedback_complaint_record(message_id=message.pk, recipient="")

    assert _suppressions(workspace) == [("bob@example.org", "complaint", message.pk)]


def test_not_spam_feedback_records_nothing(make_message, workspace):
    message = make_message(status="delivered")

    feedback_report_process(raw=samples.yahoo_arf(message.pk, feedback_type="not-spam"))

    message.refresh_from_db()
    assert message.status == "delivered"
    assert _suppressions(workspace) == []


def test_the_suppression_lands_in_the_messages_workspace_only(make_message, workspace):
    other = WorkspaceFactory()
    message = make_message(status="delivered")

    feedback_report_process(raw=samples.exchange_dsn(message.pk, to="jane@example.org"))

    assert _suppressions(workspace) == [("jane@example.org", "bounce", message.pk)]
    assert _suppressions(other) == []


def test_a_bounce_for_a_cc_suppresses_that_address_and_leaves_the_status(make_message, workspace):
    message = make_message(status="delivered", cc=["audit@acme.test"])

    changed = feedback_bounce_record(message_id=message.pk, recipient="AUDIT@acme.test", status="5.1.1")

    assert not changed
    message.refresh_from_db()
    assert message.status == "delivered"
    assert _suppressions(workspace) == [("audit@acme.test", "bounce", message.pk)]


def test_a_forwarded_address_in_a_dsn_is_charged_to_the_messages_recipient(make_message, workspace):
    message = make_message(status="delivered")

    raw = samples.postfix_dsn(message.pk, to="jane.forwarded@elsewhere.example")
    feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    message.refresh_from_db()
    assert message.status == "bounced"
    assert _suppressions(workspace) == [("jane@example.org", "bounce", message.pk)]


def test_a_heuristic_bounce_must_name_one_of_the_messages_recipients(make_message, workspace):
    message = make_message(status="delivered")

    raw = samples.qmail_bounce(message.pk, to="stranger@example.net")
    feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])
    message.refresh_from_db()
    assert message.status == "delivered"

    feedback_report_process(raw=samples.qmail_bounce(message.pk), envelope_recipients=[samples.verp(message.pk)])
    message.refresh_from_db()
    assert message.status == "bounced"
    assert MessageEvent.objects.get(message=message, type="bounced").detail["source"] == "heuristic"


def test_a_delayed_dsn_records_one_deferred_event_and_suppresses_nothing(make_message, workspace):
    message = make_message(status="sent")
    raw = samples.postfix_delayed_dsn(message.pk)

    for _ in range(2):
        feedback_report_process(raw=raw, envelope_recipients=[samples.verp(message.pk)])

    message.refresh_from_db()
    assert message.status == "sent"
    assert _events(message) == ["deferred"]
    detail = MessageEvent.objects.get(message=message).detail
    assert (detail["action"], detail["status"]) == ("delayed", "4.4.1")
    assert _suppressions(workspace) == []


def test_a_delayed_dsn_after_the_bounce_is_stale_and_ignored(make_message):
    message = make_message(status="bounced")

    feedback_report_process(raw=samples.postfix_delayed_dsn(message.pk))

    assert _events(message) == []


@pytest.mark.parametrize("status", ["accepted", "suppressed", "errored"])
def test_a_bounce_for_a_message_never_sent_changes_nothing(make_message, workspace, status):
    message = make_message(status=status)

    assert not feedback_bounce_record(message_id=message.pk, recipient="jane@example.org", status="5.1.1")

    message.refresh_from_db()
    assert message.status == status
    assert _suppressions(workspace) == []


def test_reports_about_unknown_messages_are_logged_and_ignored(db, caplog):
    unknown = new_id("msg")
    caplog.set_level(logging.WARNING, logger="messaging.feedback.services")

    feedback_report_process(raw=samples.postfix_dsn(unknown), envelope_recipients=[samples.verp(unknown)])
    feedback_report_process(raw=samples.yahoo_arf(unknown), envelope_recipients=["fbl@mail.acme.test"])

    assert not MessageEvent.objects.exists()
    assert not Suppression.objects.exists()
    assert caplog.text.count(unknown) == 2


def test_noise_with_no_message_id_at_all_is_ignored(db):
    feedback_report_process(raw=b"Subject: hello\r\n\r\nhi\r\n", envelope_recipients=["fbl@mail.acme.test"])
    assert not MessageEvent.objects.exists()
