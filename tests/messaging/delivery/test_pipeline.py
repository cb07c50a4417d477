"""The delivery service, run in-process against the loopback DNS and SMTP sink (tasks eager)."""

import asyncio
import base64
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from messaging.delivery import commit_point, services, tasks
from messaging.delivery.outcomes import retry_delay
from messaging.delivery.services import deliver_due_messages, deliver_messages, delivery_sweep
from messaging.models import AttemptState, DeliveryAttempt, Message, MessageAttachment, MessageEvent, Suppression
from messaging.return_path import verp_local_part
from messaging.tracking.links import unsubscribe_url
from pufferpost.localdev.smtp_server import LoopbackSmtpServer, RecordingHandler
from pufferpost.models import Workspace
from senders.models import Sender
from tests.messaging.delivery.pipeline import FROM, dkimpy_verifies, make_sendable, parse, perl_verifies, timeline
from tests.messaging.factories import SuppressionFactory, UnsubscribeFactory, UnsubscribeGroupFactory


@pytest.fixture
def setup(settings, dns, smtp_sink, workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns)


def reload(message) -> Message:
    return Message.objects.get(pk=message.pk)


def test_delivers_a_rendered_signed_message_with_every_header(setup, smtp_sink, dns):
    message = setup.message(
        to="jane@example.com",
        cc=["audit@example.com"],
        reply_to="support@acme.test",
        data={"name": "Jane", "order_id": "o_9"},
    )
    MessageAttachment.objects.create(
        message=message, position=0, filename="receipt.pdf", content_type="application/pdf", content=b"%PDF-1.4 x"
    )

    deliver_messages(message_ids=[message.pk])

    # `to` first, then the cc's own copy (#15 item 12); tests/delivery/test_cc_copies.py goes further.
    received, cc_copy = smtp_sink.received
    assert received.mail_from == f"{verp_local_part(message_id=message.pk)}@mail.acme.test"
    assert cc_copy.mail_from == received.mail_from
    assert [received.rcpt_tos, cc_copy.rcpt_tos] == [["jane@example.com"], ["audit@example.com"]]
    assert parse(cc_copy.content)["List-Unsubscribe"] == f"<{unsubscribe_url(message.pk, 'audit@example.com')}>"
    assert dkimpy_verifies(cc_copy.content, setup.domain)
    mail = parse(received.content)
    assert mail["From"] == f"Acme Shop <{FROM}>"
    assert mail["To"] == "jane@example.com"
    assert mail["Cc"] == "audit@example.com"
    assert mail["Reply-To"] == "support@acme.test"
    assert mail["Subject"] == "Order o_9 confirmed"
    assert mail["Date"]
    assert mail["Message-ID"] == f"<{message.pk}@mail.acme.test>"
    assert mail["List-Unsubscribe"] == f"<{unsubscribe_url(message.pk)}>"
    # On the wire as is: a long signed URL must not become an RFC 2047 encoded-word.
    assert f"\r\nList-Unsubscribe: <{unsubscribe_url(message.pk)}>\r\n".encode() in received.content
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["DKIM-Signature"].startswith("v=1; a=rsa-sha256; c=relaxed/relaxed; d=mail.acme.test;")
    body = mail.get_body(("plain",)).get_content()
    assert "Hello Jane, your order o_9 is confirmed." in body
    html = mail.get_body(("html",)).get_content()
    assert "<p>Hello Jane</p>" in html and "https://shop.example.net/o/9" in html  # tracking is off by default
    (attachment,) = mail.iter_attachments()
    assert attachment.get_filename() == "receipt.pdf" and attachment.get_content() == b"%PDF-1.4 x"
    assert b"pufferpost" not in received.content.lower()  # white-label

    assert dkimpy_verifies(received.content, setup.domain)
    assert perl_verifies(received.content, settings.PUFFERPOST_DNS_NAMESERVERS[0]) == ["pass"]

    message = reload(message)
    assert message.status == "delivered"
    assert message.subject == "Order o_9 confirmed"
    assert message.attempts == 1 and message.next_attempt_at is None
    assert message.last_response.startswith("250")
    assert timeline(message.pk) == ["accepted", "queued", "sent", "delivered"]
    delivered = MessageEvent.objects.get(message=message, type="delivered")
    assert delivered.detail["code"] == 250 and delivered.detail["mx_host"] == "mx.example.com"
    assert "queued" in delivered.detail["response"]
    (attempt,) = DeliveryAttempt.objects.filter(message=message)
    assert attempt.state == AttemptState.SUCCEEDED and attempt.mx_host == "mx.example.com" and attempt.finished_at


def test_tracking_switches_instrument_the_html(setup, smtp_sink):
    setup.workspace.open_tracking = setup.workspace.click_tracking = True
    setup.workspace.save()
    message = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    html = parse(smtp_sink.received[0].content).get_body(("html",)).get_content()
    assert "https://app.example.net/t/c/" in html and "https://app.example.net/t/o/" in html
    assert "https://shop.example.net/o/9" not in html


def test_one_connection_carries_a_batch_for_one_destination(setup, smtp_sink):
    messages = [setup.message(to=f"user{i}@example.com") for i in range(5)]
    deliver_messages(message_ids=[m.pk for m in messages])
    assert len(smtp_sink.received) == 5
    assert smtp_sink.connections == 1
    assert set(Message.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_550_bounces_and_suppresses_the_recipient(setup, smtp_sink):
    smtp_sink.refuse("gone@example.com")
    message = setup.message(to="gone@example.com")
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == []
    assert reload(message).status == "bounced"
    assert timeline(message.pk) == ["accepted", "queued", "bounced"]
    assert MessageEvent.objects.get(message=message, type="bounced").detail["code"] == 550
    suppression = Suppression.objects.get(workspace=setup.workspace, email="gone@example.com")
    assert suppression.reason == "bounce" and suppression.source_message_id == message.pk
    assert DeliveryAttempt.objects.get(message=message).state == AttemptState.FAILED


def test_a_cc_that_bounces_is_suppressed_but_the_message_is_delivered(setup, smtp_sink):
    smtp_sink.refuse("old@example.org")
    message = setup.message(to="jane@example.com", cc=["old@example.org"])
    deliver_messages(message_ids=[message.pk])
    assert reload(message).status == "delivered"
    assert Suppression.objects.filter(email="old@example.org", reason="bounce").exists()
    assert not Suppression.objects.filter(email="jane@example.com").exists()
    detail = MessageEvent.objects.get(message=message, type="delivered").detail
    assert detail["recipients"]["old@example.org"]["code"] == 550


def test_a_451_defers_and_a_due_retry_delivers(setup, smtp_sink):
    smtp_sink.defer("busy@example.com")
    message = setup.message(to="busy@example.com")
    before = timezone.now()
    deliver_messages(message_ids=[message.pk])

    message = reload(message)
    assert message.status == "queued" and message.attempts == 1
    base = settings.PUFFERPOST_DELIVERY_RETRY_BASE
    assert before + timedelta(seconds=base / 2) <= message.next_attempt_at <= timezone.now() + timedelta(seconds=base)
    deferred = MessageEvent.objects.get(message=message, type="deferred")
    assert deferred.detail["code"] == 451 and deferred.detail["attempt"] == 1
    assert DeliveryAttempt.objects.get(message=message).state == AttemptState.DEFERRED

    deliver_due_messages(message_ids=[message.pk])  # not due yet: nothing happens
    assert reload(message).attempts == 1

    smtp_sink.rules.clear()
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    deliver_due_messages(message_ids=[message.pk])
    assert reload(message).status == "delivered"
    assert len(smtp_sink.received) == 1
    assert timeline(message.pk) == ["accepted", "queued", "deferred", "sent", "delivered"]
    assert DeliveryAttempt.objects.filter(message=message).count() == 2


def test_a_stalled_server_times_out_and_defers(setup, smtp_sink, settings):
    settings.PUFFERPOST_SMTP_TIMEOUT = 0.5
    smtp_sink.stall("slow@example.com", 2)
    message = setup.message(to="slow@example.com")
    deliver_messages(message_ids=[message.pk])
    assert reload(message).status == "queued"
    detail = MessageEvent.objects.get(message=message, type="deferred").detail
    assert detail["code"] is None and "timed out" in detail["response"]


def test_retry_delays_grow_exponentially_with_jitter(settings):
    settings.PUFFERPOST_DELIVERY_RETRY_BASE = 60
    settings.PUFFERPOST_DELIVERY_RETRY_MAX_DELAY = 3600
    for attempt, step in ((1, 60), (2, 120), (3, 240), (10, 3600)):
        delays = {retry_delay(attempt) for _ in range(20)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1


def test_gives_up_after_the_retry_window(setup, smtp_sink):
    smtp_sink.defer("busy@example.com")
    message = setup.message(to="busy@example.com")
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.PUFFERPOST_DELIVERY_RETRY_WINDOW + 1)
    )
    deliver_messages(message_ids=[message.pk])
    message = reload(message)
    assert message.status == "errored"
    detail = MessageEvent.objects.get(message=message, type="errored").detail
    assert detail["reason"] == "retry_window_exhausted" and detail["code"] == 451


def test_a_suppression_added_after_acceptance_suppresses(setup, smtp_sink):
    message = setup.message(to="late@example.com")
    SuppressionFactory(workspace=setup.workspace, email="late@example.com")
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == []
    assert reload(message).status == "suppressed"
    assert timeline(message.pk) == ["accepted", "queued", "suppressed"]
    assert not DeliveryAttempt.objects.filter(message=message).exists()


def test_an_opt_out_after_acceptance_suppresses_and_a_suppressed_cc_is_left_out(setup, smtp_sink):
    group = UnsubscribeGroupFactory(workspace=setup.workspace)
    opted_out = setup.message(to="optout@example.com", unsubscribe_group=group)
    UnsubscribeFactory(group=group, email="optout@example.com")
    with_cc = setup.message(to="jane@example.com", cc=["blocked@example.org"])
    SuppressionFactory(workspace=setup.workspace, email="blocked@example.org")
    deliver_messages(message_ids=[opted_out.pk, with_cc.pk])
    assert reload(opted_out).status == "suppressed"
    assert reload(with_cc).status == "delivered"
    (received,) = smtp_sink.received
    assert received.rcpt_tos == ["jane@example.com"]
    assert "Cc" not in parse(received.content)


def test_a_render_error_errors_the_message_without_crashing(setup, smtp_sink):
    setup.version.html = "<p>{{ 1 / 0 }}</p>"
    setup.version.save()
    broken = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[broken.pk])
    assert reload(broken).status == "errored"
    detail = MessageEvent.objects.get(message=broken, type="errored").detail
    assert detail["reason"] == "render_error" and "division by zero" in detail["message"]
    assert smtp_sink.received == []


def test_a_domain_that_lost_verification_defers_and_sends_nothing_unsigned(setup, smtp_sink):
    setup.domain.dkim_status = "failed"
    setup.domain.save()
    message = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == []
    assert reload(message).status == "queued"
    assert MessageEvent.objects.get(message=message, type="deferred").detail["reason"] == "domain_not_verified"


@pytest.mark.parametrize("pause", ["sender", "workspace"])
def test_mail_accepted_before_a_pause_is_held_and_goes_out_once_resumed(setup, smtp_sink, pause):
    message = setup.message(to="jane@example.com")
    if pause == "sender":
        Sender.objects.filter(pk=message.sender_id).update(state="paused", state_reason="Auto-paused")
    else:
        Workspace.objects.filter(pk=message.workspace_id).update(sending_paused=True)
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == []
    assert reload(message).status == "queued"
    reason = "sender_not_available" if pause == "sender" else "sending_paused"
    assert MessageEvent.objects.get(message=message, type="deferred").detail["reason"] == reason

    Sender.objects.filter(pk=message.sender_id).update(state="active")
    Workspace.objects.filter(pk=message.workspace_id).update(sending_paused=False)
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    deliver_due_messages(message_ids=[message.pk])
    assert len(smtp_sink.received) == 1
    assert reload(message).status == "delivered"


def test_a_second_task_for_the_same_ids_is_a_no_op(setup, smtp_sink):
    message = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    deliver_messages(message_ids=[message.pk])
    deliver_due_messages(message_ids=[message.pk])
    assert len(smtp_sink.received) == 1
    assert timeline(message.pk) == ["accepted", "queued", "sent", "delivered"]


def test_a_claim_lost_before_data_sends_nothing(setup, smtp_sink, monkeypatch):
    """The lease ran out and the sweeper re-claimed the message: the old worker must not send it."""
    message = setup.message(to="jane@example.com")
    original = commit_point.CommitPoint.__call__

    def reclaimed_meanwhile(self, recipients):
        Message.objects.filter(pk=self.message_id).update(claimed_at=timezone.now())
        return original(self, recipients)

    monkeypatch.setattr(commit_point.CommitPoint, "__call__", reclaimed_meanwhile)
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == []
    assert reload(message).status == "queued"
    assert not DeliveryAttempt.objects.filter(message=message).exists()


def _claimed(message, *, seconds_ago=700):
    """As if a worker claimed `message` `seconds_ago` and died (its lease has run out)."""
    past = timezone.now() - timedelta(seconds=seconds_ago)
    Message.objects.filter(pk=message.pk).update(status="queued", claimed_at=past, next_attempt_at=past)


def test_sweeper_resends_a_message_whose_worker_died_before_the_commit_point(setup, smtp_sink, settings):
    settings.PUFFERPOST_DELIVERY_SWEEP_GRACE = 0
    message = setup.message(to="jane@example.com")
    _claimed(message)
    assert delivery_sweep() == {"unknown": 0, "requeued": 1}  # eager: the retry task runs now
    assert reload(message).status == "delivered"
    assert len(smtp_sink.received) == 1


def test_sweeper_never_resends_a_message_in_flight_past_the_commit_point(setup, smtp_sink, settings):
    settings.PUFFERPOST_DELIVERY_SWEEP_GRACE = 0
    message = setup.message(to="jane@example.com")
    _claimed(message)
    attempt = DeliveryAttempt.objects.create(
        message=message, state=AttemptState.IN_FLIGHT, started_at=timezone.now() - timedelta(seconds=700)
    )
    deliver_due_messages(message_ids=[message.pk])  # a retry task must not take it either
    assert smtp_sink.received == []

    assert delivery_sweep() == {"unknown": 1, "requeued": 0}
    assert smtp_sink.received == []
    message = reload(message)
    assert message.status == "sent"
    assert MessageEvent.objects.get(message=message, type="sent").detail["outcome"] == "unknown"
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.UNKNOWN
    assert delivery_sweep() == {"unknown": 0, "requeued": 0}


def test_sweeper_leaves_live_claims_and_future_retries_alone(setup, smtp_sink, settings):
    settings.PUFFERPOST_DELIVERY_SWEEP_GRACE = 0
    live = setup.message(to="jane@example.com")
    later = timezone.now() + timedelta(seconds=300)
    Message.objects.filter(pk=live.pk).update(status="queued", claimed_at=timezone.now(), next_attempt_at=later)
    DeliveryAttempt.objects.create(message=live, state=AttemptState.IN_FLIGHT, started_at=timezone.now())
    waiting = setup.message(to="jo@example.com")
    Message.objects.filter(pk=waiting.pk).update(status="queued", next_attempt_at=later)
    assert delivery_sweep() == {"unknown": 0, "requeued": 0}
    assert smtp_sink.received == []


def test_a_batch_of_50_costs_a_bounded_number_of_queries(setup, smtp_sink, django_assert_max_num_queries, settings):
    # One flush for the batch: on a loaded machine the time-based flush would add a second one.
    settings.PUFFERPOST_DELIVERY_FLUSH_SECONDS = 3600
    messages = [setup.message(to=f"user{i}@example.com", cc=["audit@example.org"]) for i in range(50)]
    for m in messages[:3]:
        MessageAttachment.objects.create(
            message=m, position=0, filename="a.txt", content_type="text/plain", content=base64.b64encode(b"x")
        )
    # One commit point per message (a single statement) plus a fixed number per batch (one of them
    # the stats rollup's upsert for the batch's events).
    with django_assert_max_num_queries(50 + 36):
        deliver_messages(message_ids=[m.pk for m in messages])
    assert Message.objects.filter(status="delivered").count() == 50
    assert len(smtp_sink.received) == 100  # two destinations per message


def test_a_delivered_message_row_is_written_three_times_claim_commit_point_outcome(setup, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.PUFFERPOST_DELIVERY_FLUSH_SECONDS = 3600
    messages = [setup.message(to=f"user{i}@example.com") for i in range(3)]
    with CaptureQueriesContext(connection) as queries:
        deliver_messages(message_ids=[m.pk for m in messages])
    # The commit point is a prepared statement (messaging.queries.attempt_commit_in_flight): its
    # EXECUTE is the UPDATE of the message row.
    rewrites = [
        q["sql"]
        for q in queries.captured_queries
        if 'UPDATE "messaging_message"' in q["sql"] or q["sql"].startswith("EXECUTE pp_commit_point(")
    ]
    # The claim (one for the batch), the commit point (one per message), the outcome: bookkeeping,
    # `sent` and `delivered` in one statement for the flush (they were three).
    assert len(rewrites) == 1 + 3 + 1
    assert [sql.startswith("EXECUTE pp_commit_point(") for sql in rewrites] == [False, True, True, True, False]
    assert Message.objects.filter(pk__in=[m.pk for m in messages], status="delivered").count() == 3
    for message in messages:
        assert timeline(message) == ["accepted", "queued", "sent", "delivered"]


class _SlowToAnswerData(RecordingHandler):
    """Takes the message, then answers the final dot only after the client has given up."""

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(1.5)
        return reply


def test_no_reply_to_the_payload_is_an_unknown_outcome_never_retried(setup, settings):
    handler = _SlowToAnswerData()
    server = LoopbackSmtpServer(handler)
    server.start()
    try:
        settings.PUFFERPOST_SMTP_PORT = server.port
        settings.PUFFERPOST_SMTP_TIMEOUT = 0.5
        message = setup.message(to="jane@example.com")
        deliver_messages(message_ids=[message.pk])
        message = reload(message)
        assert message.status == "sent" and message.next_attempt_at is None
        assert MessageEvent.objects.get(message=message, type="sent").detail["outcome"] == "unknown"
        assert DeliveryAttempt.objects.get(message=message).state == AttemptState.UNKNOWN
        settings.PUFFERPOST_DELIVERY_SWEEP_GRACE = 0
        assert delivery_sweep() == {"unknown": 0, "requeued": 0}
        deliver_due_messages(message_ids=[message.pk])
        time.sleep(1.2)
        assert len(handler.received) == 1  # the server has it once; nothing was sent again
    finally:
        server.stop()


def test_the_sweeper_is_on_beat_and_retries_have_a_queue_of_their_own(settings):
    from pufferpost.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["delivery-sweep"]
    assert entry["task"] == "messaging.delivery.tasks.sweep_deliveries"
    assert entry["schedule"] == settings.PUFFERPOST_DELIVERY_SWEEP_INTERVAL
    queue = {
        task: app.amqp.router.route({}, f"messaging.delivery.tasks.{task}")["queue"].name
        for task in ("deliver_messages", "deliver_due_messages", "sweep_deliveries")
    }
    assert queue == {
        "deliver_messages": "delivery",
        "deliver_due_messages": "delivery_retry",
        "sweep_deliveries": "delivery",
    }
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > settings.PUFFERPOST_DELIVERY_COUNTDOWN_MAX


def test_a_database_blip_retries_the_delivery_task_instead_of_dropping_it(setup, smtp_sink, monkeypatch):
    message = setup.message(to="jane@example.com")
    real = services.deliver_messages
    calls = []

    def flaky(*, message_ids):
        calls.append(message_ids)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(message_ids=message_ids)

    monkeypatch.setattr(services, "deliver_messages", flaky)
    tasks.deliver_messages.apply(args=[[message.pk]], throw=False)  # eager apply re-runs a retry itself
    assert len(calls) == 2
    assert len(smtp_sink.received) == 1
    assert reload(message).status == "delivered"
