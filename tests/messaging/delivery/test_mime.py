import base64
import email
import quopri
import re
import shutil
import subprocess
from email.header import decode_header, make_header
from email.policy import default

import pytest

from messaging.delivery import dkim
from messaging.delivery.headers import HeaderError, check_header_block
from messaging.delivery.mime import Attachment, message_id_header
from messaging.return_path import message_id_from_return_path as parse_return_path
from messaging.return_path import return_path_for, verp_local_part
from tests.messaging.delivery.conftest import MESSAGE_ID

EXPECTED_HEADERS = [
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
]


def parse(data: bytes):
    return email.message_from_bytes(data, policy=default)


def test_every_header_is_there_and_nothing_else(built_message):
    out = built_message()
    msg = parse(out.data)
    assert list(msg.keys()) == EXPECTED_HEADERS
    assert msg["From"].addresses[0].display_name == "Acme Shop"
    assert msg["From"].addresses[0].addr_spec == "no-reply@mail.acme.test"
    assert msg["To"] == "jane@example.com"
    assert msg["Cc"] == "audit@example.org"
    assert msg["Reply-To"] == "support@acme.test"
    assert msg["Subject"] == "Your order o_9 is confirmed"
    assert msg["Date"] == "Tue, 09 Jun 2026 10:15:30 +0000"
    assert msg["Message-ID"] == f"<{MESSAGE_ID}@mail.acme.test>"
    assert msg["List-Unsubscribe"] == (
        "<https://app.example.net/v1/unsubscribe/TOKEN123>, <mailto:unsubscribe+TOKEN123@mail.acme.test>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["MIME-Version"] == "1.0"


def test_envelope_uses_a_verp_return_path_and_every_recipient(built_message):
    out = built_message(cc=["a@example.org", "b@example.net"])
    assert out.mail_from == f"{verp_local_part(message_id=MESSAGE_ID)}@mail.acme.test"
    assert out.recipients == ["jane@example.com", "a@example.org", "b@example.net"]
    assert out.message_id == f"<{MESSAGE_ID}@mail.acme.test>"


def test_without_attachments_it_is_multipart_alternative_text_then_html(built_message):
    msg = parse(built_message().data)
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content_charset() == "utf-8"
    assert text.get_content().replace("\r\n", "\n") == (
        "Hello Jane,\n\nYour order o_9 is confirmed. Total: 42.00 EUR.\n\nThanks for shopping with Acme.\n"
    )
    assert "<b>o_9</b>" in html.get_content()
    # Sub-parts carry no MIME-Version of their own.
    assert "MIME-Version" not in text and "MIME-Version" not in html


def test_attachments_wrap_the_alternative_in_multipart_mixed(built_message, pdf):
    logo = Attachment("Logo März.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    out = built_message(attachments=[pdf, logo])
    msg = parse(out.data)
    assert msg.get_content_type() == "multipart/mixed"
    alternative, first, second = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    assert (first.get_filename(), first.get_content_type(), first.get_content()) == (
        "receipt.pdf",
        "application/pdf",
        pdf.content,
    )
    assert first.get_content_disposition() == "attachment"
    assert (second.get_filename(), second.get_content()) == ("Logo März.png", logo.content)
    # RFC 2231 encoding of the non-ASCII filename on the wire.
    assert b"filename*=utf-8''Logo%20M%C3%A4rz.png" in out.data


def test_non_ascii_subject_and_display_name_are_rfc2047_encoded(built_message):
    out = built_message(
        subject="Ihre Bestellung über €42 ist bestätigt ✓",
        from_name="Bäckerei Müller",
        text="Grüße, Jänë",
        html="<p>Grüße, Jänë</p>",
    )
    header_block = out.data.split(b"\r\n\r\n", 1)[0]
    header_block.decode("ascii")  # 7-bit clean on the wire
    assert b"=?utf-8?" in header_block
    msg = parse(out.data)
    assert msg["Subject"] == "Ihre Bestellung über €42 ist bestätigt ✓"
    assert msg["From"].addresses[0].display_name == "Bäckerei Müller"
    text, html = msg.get_payload()
    assert text.get_content().strip() == "Grüße, Jänë"
    assert html.get_content().strip() == "<p>Grüße, Jänë</p>"
    out.data.decode("ascii")  # the whole message is 7-bit: no 8BITMIME needed anywhere


def test_crlf_only_and_lines_within_998_octets(built_message, pdf):
    out = built_message(
        html="<p>" + "a very long line without any break " * 600 + "</p>",
        text="x" * 5000,
        subject="S" * 400,
        attachments=[pdf],
    )
    assert b"\n" not in out.data.replace(b"\r\n", b"")
    assert b"\r" not in out.data.replace(b"\r\n", b"")
    assert max(len(line) for line in out.data.split(b"\r\n")) <= 998
    assert out.data.endswith(b"\r\n")
    msg = parse(out.data)
    assert msg["Subject"] == "S" * 400
    assert msg.get_body(("html",)).get_content().count("a very long line") == 600


def test_no_header_names_the_platform(built_message, pdf):
    data = built_message(attachments=[pdf]).data
    msg = parse(data)
    assert not [name for name in msg if name.lower().startswith("x-")]
    assert b"pufferpost" not in data.lower()
    assert b"python" not in data.lower()


def test_message_id_is_stable_and_under_the_from_domain(built_message):
    first = parse(built_message().data)["Message-ID"]
    second = parse(built_message(subject="retry").data)["Message-ID"]
    assert first == second == message_id_header(MESSAGE_ID, "no-reply@Mail.Acme.test")


def test_return_path_round_trips_through_its_parser(settings):
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    address = return_path_for(message_id=MESSAGE_ID, from_address="no-reply@mail.acme.test")
    assert address == f"{verp_local_part(message_id=MESSAGE_ID)}@mail.acme.test"
    assert parse_return_path(address) == MESSAGE_ID
    assert parse_return_path(f"<{address.lower()}>") == MESSAGE_ID
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = "bounces.example.net"
    assert (
        return_path_for(message_id=MESSAGE_ID, from_address="no-reply@mail.acme.test")
        == f"{verp_local_part(message_id=MESSAGE_ID)}@bounces.example.net"
    )


@pytest.mark.parametrize(
    "address",
    ["jane@example.com", "bounces@mail.acme.test", "bounces+msg_123@mail.acme.test", f"other+{MESSAGE_ID}@x.test", ""],
)
def test_parse_return_path_ignores_other_addresses(address):
    assert parse_return_path(address) is None


# --- SpamAssassin ------------------------------------------------------------------------------

# Rules about headers and MIME structure that a correctly built message must never trigger.
HEADER_AND_MIME_RULES = {
    "MISSING_MID",
    "MISSING_DATE",
    "MISSING_FROM",
    "MISSING_SUBJECT",
    "MISSING_HEADERS",
    "MISSING_MIMEOLE",
    "MIME_HTML_ONLY",
    "MIME_HTML_MOSTLY",
    "MIME_QP_LONG_LINE",
    "MIME_BASE64_TEXT",
    "MIME_BOUND_DIGITS_15",
    "MPART_ALT_DIFF",
    "MPART_ALT_DIFF_COUNT",
    "INVALID_DATE",
    "INVALID_MSGID",
    "DATE_IN_FUTURE_03_06",
    "DATE_IN_PAST_03_06",
    "FROM_EXCESS_BASE64",
    "SUBJ_ALL_CAPS",
    "TO_NO_BRKTS_MSFT",
    "HEADER_FROM_DIFFERENT_DOMAINS",
    "FREEMAIL_FORGED_REPLYTO",
    "MSGID_NOFQDN1",
    "MSGID_SHORT",
    "NO_DNS_FOR_FROM",
    "DKIM_INVALID",
    "DKIM_ADSP_NXDOMAIN",
    "__MIME_QP_LONG_LINE",
    "HTML_MIME_NO_HTML_TAG",
    "CTE_8BIT_MISMATCH",
    "MIME_CHARSET_FARAWAY",
    "UNPARSEABLE_RELAY",
}
# Informational rules that fire on any message handed to SpamAssassin directly (never relayed).
EXPECTED_INFORMATIONAL = {"NO_RECEIVED", "NO_RELAYS", "HTML_MESSAGE", "DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU"}


def spamassassin_rules(data: bytes) -> set[str]:
    binary = shutil.which("spamassassin")
    if binary is None:
        pytest.fail(
            "spamassassin is not installed; `make test` needs it: apt-get install -y spamassassin "
            "(Debian package; tests/messaging/delivery/test_mime.py runs `spamassassin -L -t`)"
        )
    proc = subprocess.run([binary, "-L", "-t"], input=data, capture_output=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    report = proc.stdout.decode("utf-8", "replace").split("Content analysis details:", 1)[1]
    table = report.split("----\n", 1)[1] if "----\n" in report else report
    return set(re.findall(r"^\s*-?\d+(?:\.\d+)?\s+([A-Z0-9_]+)\s", table, re.M))


def test_spamassassin_finds_nothing_wrong_with_a_signed_message(built_message, dkim_key, pdf):
    data = dkim.sign(
        built_message(attachments=[pdf]).data,
        domain="mail.acme.test",
        selector="mlr1",
        private_key_pem=dkim_key.private_pem,
    )
    fired = spamassassin_rules(data)
    assert not fired & HEADER_AND_MIME_RULES
    assert fired <= EXPECTED_INFORMATIONAL, f"unexpected SpamAssassin rules: {sorted(fired - EXPECTED_INFORMATIONAL)}"


def test_spamassassin_check_does_notice_a_broken_message():
    # Proves the harness reads the report: no Message-ID, no Date and HTML only must be flagged.
    broken = (
        b"From: a@mail.acme.test\r\nTo: jane@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>hello</p></body></html>\r\n"
    )
    fired = spamassassin_rules(broken)
    assert {"MISSING_MID", "MISSING_DATE", "MIME_HTML_ONLY"} <= fired


def test_line_breaks_in_a_rendered_subject_or_name_cannot_inject_headers(built_message):
    out = built_message(subject="Hello\r\nBcc: victim@example.com\nthere", from_name="Acme\r\nX-Evil: 1")
    msg = parse(out.data)
    assert msg["Subject"] == "Hello Bcc: victim@example.com there"
    assert msg["From"].addresses[0].display_name == "Acme X-Evil: 1"
    assert "Bcc" not in msg and "X-Evil" not in msg


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("text/csv", "text/csv"),
        ("Application/PDF", "application/pdf"),
        ("pdf", "application/octet-stream"),
        ("multipart/mixed", "application/octet-stream"),
        ('a/b; x="y"', "application/octet-stream"),
    ],
)
def test_attachment_content_types_are_sanitised(built_message, given, expected):
    out = built_message(attachments=[Attachment("f.bin", given, b"data")])
    (_, attachment) = parse(out.data).get_payload()
    assert attachment.get_content_type() == expected
    assert attachment.get_payload(decode=True) == b"data"


def test_a_long_unsubscribe_url_is_written_verbatim_not_encoded(built_message):
    url = "https://app.example.net/u/msg_01M86557YNKGP94R6QV5EG5KXX:yEwlroL8-SlfIaLJR2ItYbpYOkOe4UsmHyVHVe4isG8"
    data = built_message(unsubscribe_url=url, unsubscribe_mailto="unsubscribe+T@mail.acme.test").data
    assert f"\r\nList-Unsubscribe: <{url}>,\r\n <mailto:unsubscribe+T@mail.acme.test>\r\n".encode() in data
    assert b"=?utf-8?" not in data


# --- RFC 2047 encoded-words in header inputs (#15 item 1) -------------------------------------

B64_BCC = "=?utf-8?b?" + base64.b64encode(b"Your invoice\r\nBcc: victim@evil.test").decode() + "?="
INJECTIONS = [
    "=?utf-8?q?Your_invoice=0D=0AContent-Type:_text/html=0D=0A=0D=0A<h1>Pay_here</h1>?=",
    "=?utf-8?q?Your_invoice=0D=0ABcc:_victim@evil.test?=",
    "=?UTF-8?Q?Your_invoice=0ABcc:_victim@evil.test?=",
    B64_BCC,
    "prefix=?utf-8?q?x=0D=0ABcc:_victim@evil.test?=suffix",
    "=?iso-8859-1?q?Your_invoice=0D=0A=0D=0A<h1>body</h1>?=",
]


def raw_header(data: bytes, name: str) -> str:
    """One top-level header's value as on the wire, unfolded, not decoded."""
    block = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").decode("ascii")
    (value,) = [line.split(": ", 1)[1] for line in block.split("\r\n") if line.startswith(f"{name}: ")]
    return value


def display_name(data: bytes) -> str:
    """The From display name as an RFC 2047 decoder reads it (the standard library's address parser
    keeps the space between two adjacent encoded-words of a phrase, which the RFC says to drop)."""
    phrase = raw_header(data, "From").rpartition(" <")[0]
    return str(make_header(decode_header(phrase)))


def header_fields(data: bytes) -> list[str]:
    """The field names of the top-level header block, read without any decoding."""
    block = data.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode() for line in block.split(b"\r\n") if line[:1] not in (b" ", b"\t")]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_encoded_words_in_subject_name_and_filename_stay_text(built_message, payload):
    out = built_message(
        subject=payload,
        from_name=payload,
        attachments=[Attachment(f"{payload}=2F..=2Fetc.pdf", "application/pdf", b"%PDF")],
    )
    assert header_fields(out.data) == EXPECTED_HEADERS
    msg = parse(out.data)
    assert "Bcc" not in msg
    # What the recipient's client shows is exactly the characters that were sent, undecoded.
    assert str(msg["Subject"]) == payload
    assert display_name(out.data) == payload
    assert msg["From"].addresses[0].addr_spec == "no-reply@mail.acme.test"
    alternative, attachment = msg.get_payload()
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    # `=2F` stays the three characters it is; a real slash never names a directory.
    assert attachment.get_filename() == f"{payload}=2F..=2Fetc.pdf".replace("/", "_")
    for part in msg.walk():
        assert set(part.keys()) <= {*EXPECTED_HEADERS, "Content-Transfer-Encoding", "Content-Disposition"}
    # No byte of the header block decodes to a CR or LF, whatever decoder a receiver runs.
    block = out.data.split(b"\r\n\r\n", 1)[0]
    unfolded = block.replace(b"\r\n ", b" ")
    assert len(unfolded.split(b"\r\n")) == len(EXPECTED_HEADERS)
    for word in re.findall(rb"=\?[^?]+\?([bqBQ])\?([^?]*)\?=", unfolded):
        raw = base64.b64decode(word[1]) if word[0] in b"bB" else quopri.decodestring(word[1].replace(b"_", b" "))
        assert b"\r" not in raw and b"\n" not in raw


def test_control_characters_never_reach_a_header(built_message):
    nasty = "A\x00B\x0bC\x0cD\x1bE\x7fF\x85G\u2028H\u2029I\tJ\r\nK"
    out = built_message(subject=nasty, from_name=nasty, attachments=[Attachment(nasty, "text/plain", b"x")])
    msg = parse(out.data)
    assert str(msg["Subject"]) == "A B C D E F G H I J K"
    assert msg["From"].addresses[0].display_name == "A B C D E F G H I J K"
    assert msg.get_payload()[1].get_filename() == "A B C D E F G H I J K"


def test_lone_surrogates_in_a_subject_do_not_stop_the_build(built_message):
    assert str(parse(built_message(subject="Hi \ud800 there").data)["Subject"]) == "Hi ? there"


@pytest.mark.parametrize(
    ("block", "complaint"),
    [
        (b"From: a@b.test\r\nBcc: x@y.test\r\n\r\n", "fields"),
        (b"From: a@b.test\r\n\r\nSubject: early end\r\n\r\n", "early"),
        (b"From: a@b.test\r\nSubject: x\ny\r\n\r\n", "control"),
        (b"From: a@b.test\r\nSubject: x\ry\r\n\r\n", "control"),
        (b"From: a@b.test\r\nSubject: caf\xc3\xa9\r\n\r\n", "control"),
        (b"From: a@b.test\r\nSubject: x\r\n \r\n\r\n", "empty"),
        (b"From: a@b.test\r\nSubject: " + b"x" * 1000 + b"\r\n\r\n", "octets"),
        (b"From: a@b.test\r\nSubject x\r\n\r\n", "not a field"),
        (b"From: a@b.test\r\nSubject: x\r\n", "empty line"),
    ],
)
def test_the_final_header_check_refuses_anything_but_what_was_written(block, complaint):
    with pytest.raises(HeaderError, match=complaint):
        check_header_block(block, ["From", "Subject"])


def test_the_final_header_check_passes_a_folded_block():
    check_header_block(b"From: a@b.test\r\nSubject: one\r\n two\r\n\tthree\r\n\r\n", ["From", "Subject"])


def test_a_long_subject_folds_in_one_pass_within_the_limits():
    from messaging.delivery.headers import unstructured

    text = " ".join(f"wörd{i} plain{i}" for i in range(2_000))  # ~30,000 characters, every kind of word
    folded = unstructured("Subject", text)
    lines = folded.removesuffix("\r\n").split("\r\n")
    assert all(len(line) <= 78 for line in lines)
    assert all(len(line) <= 76 for line in lines if "=?" in line)
    assert all(len(w) <= 75 for w in re.findall(r"=\?[^ ]*\?=", folded))
    assert str(make_header(decode_header(folded.split(": ", 1)[1].replace("\r\n", "")))) == text
