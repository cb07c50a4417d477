"""SMTP submission end to end: real clients (smtplib, Django's SMTP email backend) → the submission
server → the send service → delivery (eager, in the server's thread) → the loopback MX."""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend
from rest_framework.test import APIClient

from messaging.models import Message, MessageBody
from pufferpost.services import api_key_create
from tests.factories import SenderFactory
from tests.messaging.delivery.pipeline import FROM, dkimpy_verifies, parse
from tests.messaging.factories import SuppressionFactory


def key_for(workspace, scopes=None, livemode=True) -> str:
    return api_key_create(workspace=workspace, scopes=scopes, livemode=livemode)[1]


def mime(*, to="jane@example.com", subject="Your order o_9", message_id=None, html=True, attachment=True):
    message = EmailMessage()
    message["From"] = f"Acme Shop <{FROM}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="app.acme.test")
    message.set_content("Hello Jane,\nyour order o_9 is confirmed.\n")
    if html:
        message.add_alternative("<p>Hello Jane, your order <b>o_9</b> is confirmed.</p>\n", subtype="html")
    if attachment:
        message.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="receipt.pdf")
    return message


def smtp_client(server, key):
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=30)
    client.login("anything", key)
    return client


def test_smtplib_submission_is_delivered_signed_to_the_mx_one_message_per_recipient(
    insecure_submission, delivering, smtp_sink
):
    key = key_for(delivering.workspace)
    with smtp_client(insecure_submission, key) as client:
        refused = client.send_message(mime(), to_addrs=["jane@example.com", "audit@example.org"])
    assert refused == {}

    messages = {m.to: m for m in Message.objects.all()}
    assert set(messages) == {"jane@example.com", "audit@example.org"}
    assert {m.status for m in messages.values()} == {"delivered"}
    assert all(m.template_id is None and m.cc == [] for m in messages.values())
    assert MessageBody.objects.get(message=messages["jane@example.com"]).subject == "Your order o_9"

    received = {r.rcpt_tos[0]: r for r in smtp_sink.received}
    assert set(received) == {"jane@example.com", "audit@example.org"}
    assert all(len(r.rcpt_tos) == 1 for r in smtp_sink.received)
    raw = received["jane@example.com"].content
    assert dkimpy_verifies(raw, delivering.domain)
    mail = parse(raw)
    assert mail["To"] == "jane@example.com" and mail["Subject"] == "Your order o_9"
    assert mail["From"] == f"Acme Shop <{FROM}>"
    assert mail["Message-ID"] == f"<{messages['jane@example.com'].pk}@mail.acme.test>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire every line ends CRLF (RFC 5322); the text itself is what the client submitted.
    assert (
        mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello Jane,\nyour order o_9 is confirmed.\n"
    )
    assert "your order <b>o_9</b> is confirmed" in mail.get_body(("html",)).get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "receipt.pdf" and attachment.get_content() == b"%PDF-1.4 receipt"

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    view = api.get(f"/v1/messages/{messages['jane@example.com'].pk}").json()
    assert view["template_id"] is None and view["template_name"] is None
    assert view["subject"] == "Your order o_9" and view["status"] == "delivered"
    assert view["attachments"] == [{"filename": "receipt.pdf", "content_type": "application/pdf"}]
    content = api.get(f"/v1/messages/{messages['jane@example.com'].pk}/content").json()
    assert content["subject"] == mail["Subject"]
    assert content["text"] == mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert content["html"] == mail.get_body(("html",)).get_content().replace("\r\n", "\n")
    events = [e["type"] for e in api.get(f"/v1/messages/{messages['jane@example.com'].pk}/events").json()["data"]]
    assert events == ["accepted", "queued", "sent", "delivered"]


def test_djangos_smtp_backend_over_starttls_with_cc_and_bcc(
    tls_submission, delivering, smtp_sink, submission_cert, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", submission_cert[0])  # the client trusts the operator's CA
    backend = EmailBackend(
        host="127.0.0.1",
        port=tls_submission.port,
        username="apikey",
        password=key_for(delivering.workspace),
        use_tls=True,
        timeout=30,
    )
    email = EmailMultiAlternatives(
        subject="Welcome aboard",
        body="Hi Sam, welcome.",
        from_email=f"Acme <{FROM}>",
        to=["sam@example.com"],
        cc=["boss@example.com"],
        bcc=["archive@example.org"],
        reply_to=["support@acme.test"],
        connection=backend,
    )
    email.attach_alternative("<h1>Hi Sam</h1><p>welcome.</p>", "text/html")
    email.attach("terms.txt", "Be nice.", "text/plain")
    assert email.send() == 1

    assert {m.to for m in Message.objects.all()} == {"sam@example.com", "boss@example.com", "archive@example.org"}
    assert set(Message.objects.values_list("status", flat=True)) == {"delivered"}
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == [
        "archive@example.org",
        "boss@example.com",
        "sam@example.com",
    ]
    for received in smtp_sink.received:
        mail = parse(received.content)
        assert "Bcc" not in mail and mail["To"] == received.rcpt_tos[0]
        assert mail["Reply-To"] == "support@acme.test" and mail["Subject"] == "Welcome aboard"
        assert mail.get_body(("html",)).get_content().startswith("<h1>Hi Sam</h1>")
        assert [a.get_filename() for a in mail.iter_attachments()] == ["terms.txt"]
        assert dkimpy_verifies(received.content, delivering.domain)


def test_auth_needs_starttls_unless_the_dev_setting_allows_plain_text(tls_submission, delivering, submission_cert):
    key = key_for(delivering.workspace)
    with smtplib.SMTP("127.0.0.1", tls_submission.port, timeout=30) as client:
        client.ehlo()
        assert not client.has_extn("auth") and client.has_extn("starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.login("apikey", key)
        code, reply = client.mail(FROM)
        assert code == 530 and b"STARTTLS" in reply
        client.starttls(context=ssl.create_default_context(cafile=submission_cert[0]))
        client.ehlo()
        assert client.has_extn("auth")
        client.login("apikey", key)
    # The implicit-TLS port takes AUTH at once.
    context = ssl.create_default_context(cafile=submission_cert[0])
    with smtplib.SMTP_SSL("127.0.0.1", tls_submission.tls_port, context=context, timeout=30) as client:
        client.login("apikey", key)
        client.send_message(mime(attachment=False), to_addrs=["jane@example.com"])
    assert Message.objects.get().status == "delivered"


def test_mail_without_auth_is_refused(insecure_submission, delivering):
    with smtplib.SMTP("127.0.0.1", insecure_submission.port, timeout=30) as client:
        client.ehlo()
        code, _ = client.mail(FROM)
        assert code == 530


def test_a_bad_key_or_a_key_without_messages_send_cannot_log_in(insecure_submission, delivering):
    with smtplib.SMTP("127.0.0.1", insecure_submission.port, timeout=30) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            client.login("apikey", "key_live_not-a-real-key")
        assert bad.value.smtp_code == 535
    read_only = key_for(delivering.workspace, scopes=["messages:read"])
    with smtplib.SMTP("127.0.0.1", insecure_submission.port, timeout=30) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as scoped:
            client.login("apikey", read_only)
        assert scoped.value.smtp_code == 535 and b"missing_scope" in scoped.value.smtp_error


def test_refusals_are_smtp_replies_carrying_the_api_error_code(insecure_submission, delivering, smtp_sink):
    SenderFactory(workspace=delivering.workspace, from_address="new@mail.acme.test")  # under review
    SuppressionFactory(workspace=delivering.workspace, email="gone@example.com", reason="bounce")
    key = key_for(delivering.workspace)
    with smtp_client(insecure_submission, key) as client:
        unknown = mime()
        unknown.replace_header("From", "nobody@mail.acme.test")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(unknown, to_addrs=["jane@example.com"])
        assert refused.value.smtp_code == 550
        assert refused.value.smtp_error.startswith(b'5.7.1 sender_not_available: No active sender for "nobody@')

        with pytest.raises(smtplib.SMTPDataError) as suppressed:
            client.send_message(mime(), to_addrs=["jane@example.com", "gone@example.com"])
        assert suppressed.value.smtp_code == 550
        assert suppressed.value.smtp_error.startswith(b"5.1.1 recipient_suppressed:")
    assert not Message.objects.exists()  # all or none
    assert smtp_sink.received == []


def test_the_message_id_is_the_replay_guard(insecure_submission, delivering, smtp_sink):
    key = key_for(delivering.workspace)
    message_id = make_msgid(domain="app.acme.test")
    with smtp_client(insecure_submission, key) as client:
        first = client.send_message(mime(message_id=message_id), to_addrs=["jane@example.com"])
        again = client.send_message(mime(message_id=message_id), to_addrs=["jane@example.com"])
        assert first == again == {}
        with pytest.raises(smtplib.SMTPDataError) as reused:
            client.send_message(mime(message_id=message_id, subject="Other"), to_addrs=["jane@example.com"])
        assert reused.value.smtp_code == 550 and b"idempotency_key_reused" in reused.value.smtp_error
    assert Message.objects.count() == 1
    assert len(smtp_sink.received) == 1


def test_the_monthly_quota_holds_for_submissions(insecure_submission, delivering):
    delivering.workspace.monthly_quota = 1
    delivering.workspace.save()
    client = smtp_client(insecure_submission, key_for(delivering.workspace))
    with client, pytest.raises(smtplib.SMTPDataError) as over:
        client.send_message(mime(), to_addrs=["jane@example.com", "audit@example.org"])
    assert over.value.smtp_code == 452 and b"quota_exceeded" in over.value.smtp_error
    assert not Message.objects.exists()


def test_a_test_key_submits_in_test_mode_and_nothing_reaches_the_mx(
    insecure_submission, delivering, smtp_sink, settings
):
    key = key_for(delivering.workspace, livemode=False)
    with smtp_client(insecure_submission, key) as client:
        client.send_message(mime(), to_addrs=[f"bounced@{settings.PUFFERPOST_SIMULATOR_DOMAIN}", "jane@example.com"])
    statuses = dict(Message.objects.values_list("to", "status"))
    assert statuses == {f"bounced@{settings.PUFFERPOST_SIMULATOR_DOMAIN}": "bounced", "jane@example.com": "delivered"}
    assert not Message.objects.filter(livemode=True).exists()
    assert smtp_sink.received == []
