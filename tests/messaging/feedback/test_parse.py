from messaging.feedback.parse import _ID_AFTER_FIELD, quoted_message_id_scan, report_parse
from pufferpost.ids import new_id
from tests.messaging.feedback import samples


def test_a_postfix_dsn_yields_one_permanent_failure_for_the_verp_message():
    message_id = new_id("msg")
    report = report_parse(samples.postfix_dsn(message_id), envelope_recipients=[samples.verp(message_id)])

    assert report.kind == "dsn"
    assert report.report_id == "<20260609101541.3F1C21A0@mx.example.org>"
    [delivery] = report.deliveries
    assert delivery.message_id == message_id
    assert delivery.recipient == "jane@example.org"
    assert delivery.original_recipient == "jane@example.org"
    assert (delivery.action, delivery.status) == ("failed", "5.1.1")
    assert delivery.permanent and not delivery.transient
    assert delivery.remote_mta == "mx.example.org"
    assert delivery.diagnostic.startswith("550 5.1.1 <jane@example.org>: Recipient address rejected: User unknown")


def test_without_a_verp_recipient_the_returned_headers_name_the_message():
    message_id = new_id("msg")
    report = report_parse(samples.postfix_dsn(message_id), envelope_recipients=["fbl@mail.acme.test"])
    assert report.deliveries[0].message_id == message_id

    # No Return-Path among the returned headers either: the Message-ID still does.
    report = report_parse(samples.postfix_dsn(message_id, return_path=False), envelope_recipients=[])
    assert report.deliveries[0].message_id == message_id


def test_an_exchange_ndr_is_read_from_its_delivery_status_and_the_returned_original():
    message_id = new_id("msg")
    report = report_parse(samples.exchange_dsn(message_id), envelope_recipients=["postmaster@mail.acme.test"])

    assert report.kind == "dsn"
    [delivery] = report.deliveries
    # The original's Message-ID came back lowercased; the id is restored to its canonical form.
    assert delivery.message_id == message_id
    assert delivery.recipient == "john.doe@contoso.example"
    assert delivery.status == "5.1.10"
    assert delivery.permanent
    assert "RESOLVER.ADR.RecipientNotFound" in delivery.diagnostic


def test_a_delayed_dsn_is_transient_and_never_permanent():
    message_id = new_id("msg")
    report = report_parse(samples.postfix_delayed_dsn(message_id), envelope_recipients=[samples.verp(message_id)])

    [delivery] = report.deliveries
    assert (delivery.action, delivery.status) == ("delayed", "4.4.1")
    assert delivery.transient and not delivery.permanent
    assert "Connection timed out" in delivery.diagnostic


def test_a_failure_with_a_temporary_status_is_transient():
    message_id = new_id("msg")
    raw = samples.postfix_dsn(message_id).replace(b"Status: 5.1.1", b"Status: 4.4.7")
    [delivery] = report_parse(raw, envelope_recipients=[samples.verp(message_id)]).deliveries
    assert delivery.action == "failed" and delivery.status == "4.4.7"
    assert delivery.transient and not delivery.permanent


def test_a_qmail_failure_notice_is_found_by_flufl_bounce():
    message_id = new_id("msg")
    report = report_parse(samples.qmail_bounce(message_id), envelope_recipients=[samples.verp(message_id).lower()])

    assert report.kind == "heuristic"
    [delivery] = report.deliveries
    assert delivery.message_id == message_id
    assert delivery.recipient == "jane@example.org"
    assert delivery.heuristic and delivery.permanent


def test_a_qmail_failure_notice_without_verp_falls_back_to_the_quoted_message_id():
    message_id = new_id("msg")
    report = report_parse(samples.qmail_bounce(message_id), envelope_recipients=["fbl@mail.acme.test"])
    assert report.deliveries[0].message_id == message_id


def test_a_yahoo_feedback_report_is_a_complaint_about_the_original():
    message_id = new_id("msg")
    report = report_parse(samples.yahoo_arf(message_id), envelope_recipients=["fbl@mail.acme.test"])

    assert report.kind == "arf"
    assert report.deliveries == ()
    [complaint] = report.complaints
    assert complaint.message_id == message_id  # from Original-Mail-From, our VERP address
    assert complaint.recipient == "jane@example.org"
    assert complaint.feedback_type == "abuse"
    assert complaint.is_complaint
    assert complaint.user_agent == "Yahoo!-Mail-Feedback/2.0"
    assert complaint.source_ip == "192.0.2.25"


def test_a_feedback_report_without_original_mail_from_is_matched_by_the_originals_message_id():
    message_id = new_id("msg")
    raw = samples.yahoo_arf(message_id, mail_from=False)
    [complaint] = report_parse(raw, envelope_recipients=["fbl@mail.acme.test"]).complaints
    assert complaint.message_id == message_id


def test_not_spam_feedback_is_not_a_complaint():
    message_id = new_id("msg")
    [complaint] = report_parse(samples.yahoo_arf(message_id, feedback_type="not-spam")).complaints
    assert not complaint.is_complaint


def test_an_ordinary_reply_is_neither_bounce_nor_report():
    message_id = new_id("msg")
    report = report_parse(samples.plain_reply(message_id), envelope_recipients=[samples.verp(message_id)])
    assert (report.kind, report.deliveries, report.complaints) == ("none", (), ())


def test_garbage_does_not_raise():
    report = report_parse(b"\x00\xff not an email at all\r\n\r\n--", envelope_recipients=["x"])
    assert report.kind == "none"


def test_a_mail_that_breaks_the_parser_is_reported_as_nothing(monkeypatch, caplog):
    def explode(*args):
        raise ValueError("boom")

    monkeypatch.setattr("messaging.feedback.parse._deliveries", explode)
    message_id = new_id("msg")

    report = report_parse(samples.postfix_dsn(message_id), envelope_recipients=[samples.verp(message_id)])

    assert report.kind == "none"
    assert "could not parse an inbound mail" in caplog.text


def _padded_qmail_bounce(message_id: str) -> bytes:
    """The ReDoS input: a 10 KB bounce text plus 5,000 blank lines before the quoted original."""
    raw = samples.qmail_bounce(message_id)
    head, marker, tail = raw.partition(b"--- Below this line is a copy of the message.")
    filler = b"".join(b"x" * 70 + b"\r\n" for _ in range(150)) + b"\r\n" * 5000 + b" \t\r\n" * 100
    return head + filler + marker + tail


def test_the_quoted_message_id_scan_is_linear_on_blank_line_padding():
    message_id = new_id("msg")
    text = _padded_qmail_bounce(message_id).decode()
    assert len(text) > 10_000 and text.count("\r\n\r\n") > 2_000

    found, candidates = quoted_message_id_scan(text)

    assert found == message_id
    # One look per "Message-ID:" in the text (the bounce's own header, then the quoted original's):
    # the blank lines cost nothing, whatever their number.
    assert candidates == text.lower().count("message-id:") == 2
    # No part of the scan can span lines except one header fold after the field name.
    assert r"\s" not in _ID_AFTER_FIELD.pattern and "MULTILINE" not in repr(_ID_AFTER_FIELD.flags)


def test_the_padded_bounce_still_maps_to_its_message_without_a_verp_recipient():
    message_id = new_id("msg")
    [delivery] = report_parse(_padded_qmail_bounce(message_id), envelope_recipients=["fbl@mail.acme.test"]).deliveries
    assert delivery.message_id == message_id


def test_a_quoted_message_id_is_found_indented_quoted_or_folded_but_not_mid_sentence():
    message_id = new_id("msg")
    assert quoted_message_id_scan(f"x\n  > Message-ID: <{message_id}@a.test>\n")[0] == message_id
    assert quoted_message_id_scan(f"Message-Id:\r\n\t<{message_id.lower()}@a.test>")[0] == message_id
    assert quoted_message_id_scan(f"the header Message-ID: <{message_id}@a.test>")[0] is None
    assert quoted_message_id_scan(f">> > Message-ID: <{message_id}@a.test>")[0] is None


def test_an_address_only_an_attachments_base64_holds_is_hidden():
    import base64
    import email

    from messaging.feedback.parse import _split_text

    secret = base64.encodebytes(b"<victim@example.org>: user unknown").decode()
    raw = (
        "From: mailer-daemon@example.net\r\nTo: fbl@acme.test\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
        "<jane@example.org>: user unknown\r\n--XX\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; filename=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n{secret}--XX--\r\n"
    )
    visible, hidden = _split_text(email.message_from_string(raw))
    assert "jane@example.org" in visible and "victim@example.org" not in visible
    assert "victim@example.org" in hidden
