"""#11 item 6: every line of built messages against the MIME limits.

RFC 5322 §2.1.1: lines at most 998 octets, header lines folded at 78 where they can be (every
header the platform writes here can be). RFC 2047 §2: encoded-words at most 75 characters, a
header line holding one at most 76. RFC 2045 §6.7 and §6.8: quoted-printable and base64 lines at
most 76 characters. Then SpamAssassin reads one of them.
"""

import re
from email import message_from_bytes
from email.policy import compat32, default

import pytest

from messaging.delivery import dkim
from messaging.delivery.mime import Attachment
from tests.messaging.delivery.test_mime import HEADER_AND_MIME_RULES, spamassassin_rules

LONG_LINE = "Ein sehr langer Satz über Größen, Preise (€ 42,00) und Lieferzeiten ohne Zeilenumbruch; " * 40
CASES = {
    "german": {
        "subject": "Ihre Bestellung über €42 ist bestätigt ✓ — Lieferung voraussichtlich am Donnerstag, 11. Juni",
        "from_name": "Bäckerei Müller & Söhne GmbH, Filiale Münster-Hiltrup",
        "text": LONG_LINE + "\n\nGrüße\n",
        "html": f"<html><body><p>{LONG_LINE}</p></body></html>",
    },
    "japanese": {
        "subject": "ご注文ありがとうございます。ご注文番号 o_9 の発送準備が整いました。お届けまでしばらくお待ちください。",
        "from_name": "株式会社サンプル商店 カスタマーサポート",
        "text": "こんにちは、" * 300,
        "html": "<p>" + "こんにちは、" * 300 + "</p>",
    },
    "ascii-long-words": {
        "subject": "Reset your password: https://accounts.example.net/reset/" + "a" * 120 + " (valid for 1 hour)",
        "from_name": "Accounts (no reply) <not an address>",
        "text": "x" * 5000 + "\n" + "trailing space at a soft break " * 200 + " \n\tindented\n",
        "html": "<p>" + "=" * 3000 + "</p>",
    },
}


def attachments():
    return [
        Attachment("receipt.pdf", "application/pdf", bytes(range(256)) * 64),
        Attachment("Übersicht der Bestellungen März 2026 — Filiale Münster.csv", "text/csv; charset=utf-8", b"a;b\r\n"),
        Attachment("long-" + "n" * 150 + ".txt", "text/plain", b"plain text\r\n"),
    ]


def header_blocks(data: bytes) -> list[list[str]]:
    """The raw header lines of the message and of every MIME part, in order."""
    text = data.decode("ascii")
    blocks = [text.split("\r\n\r\n", 1)[0]]
    for boundary in re.findall(r'boundary="([^"]+)"', text):
        for chunk in text.split(f"--{boundary}\r\n")[1:]:
            blocks.append(chunk.split("\r\n\r\n", 1)[0])
    return [block.split("\r\n") for block in blocks]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_line_of_a_built_message_is_within_the_limits(built_message, case):
    data = built_message(**case, cc=["audit@example.org", "finance@example.org"], attachments=attachments()).data
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(map(len, lines)) <= 998

    blocks = header_blocks(data)
    assert len(blocks) == 1 + 1 + 2 + 3  # message, alternative, text, html, three attachments
    for block in blocks:
        for line in block:
            assert len(line) <= 78, line
            if "=?" in line:
                assert len(line) <= 76, line
            for word in re.findall(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=", line):
                assert len(word) <= 75, word

    message = message_from_bytes(data, policy=compat32)
    encodings = {}
    for part in message.walk():
        if part.is_multipart():
            continue
        cte = part["Content-Transfer-Encoding"]
        encodings[(part.get_content_type(), part["Content-Disposition"] is not None)] = cte
        raw = part.get_payload()
        assert raw, part.get_content_type()
        for line in raw.split("\r\n") if "\r\n" in raw else raw.split("\n"):
            assert len(line) <= 76, (cte, line)
            if cte == "quoted-printable":
                assert not line.endswith((" ", "\t")), line  # trailing whitespace is always encoded
    assert encodings[("text/plain", False)] == encodings[("text/html", False)] == "quoted-printable"
    assert encodings[("application/pdf", True)] == encodings[("text/csv", True)] == "base64"

    # What a client reads back is what was given.
    parsed = message_from_bytes(data, policy=default)
    assert str(parsed["Subject"]) == case["subject"]
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == case["text"].rstrip("\n")
    assert parsed.get_body(("html",)).get_content().rstrip("\r\n") == case["html"]
    csv = [p for p in parsed.iter_attachments() if p.get_content_type() == "text/csv"][0]
    assert csv.get_content_charset() == "utf-8" and b"\r\nContent-Type: text/csv; charset=utf-8\r\n" in data
    assert csv.get_filename() == "Übersicht der Bestellungen März 2026 — Filiale Münster.csv"
    assert [p.get_content() for p in parsed.iter_attachments()][0] == bytes(range(256)) * 64


def test_spamassassin_finds_no_mime_fault_in_a_non_ascii_message_with_long_lines(built_message, dkim_key):
    data = dkim.sign(
        built_message(**CASES["german"], attachments=attachments()).data,
        domain="mail.acme.test",
        selector="mlr1",
        private_key_pem=dkim_key.private_pem,
    )
    fired = spamassassin_rules(data)
    assert not fired & HEADER_AND_MIME_RULES, sorted(fired & HEADER_AND_MIME_RULES)
