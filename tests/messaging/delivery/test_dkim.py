import subprocess
from pathlib import Path

import dkim as dkimpy
import pytest
from django.conf import settings

from messaging.delivery import dkim
from tests.messaging.delivery.conftest import DkimKey

DOMAIN, SELECTOR = "mail.acme.test", "mlr1"
PERL_VERIFIER = Path(__file__).with_name("verify_dkim.pl")


def sign(message_bytes, key):
    return dkim.sign(message_bytes, domain=DOMAIN, selector=SELECTOR, private_key_pem=key.private_pem)


def mail_dkim_verify(message_bytes, dns, key) -> list[str]:
    """Verify with Perl's Mail::DKIM, which fetches the key from the loopback DNS server: one result per signature."""
    dns.publish(f"{SELECTOR}._domainkey.{DOMAIN}", "TXT", key.txt)
    (host, port) = settings.PUFFERPOST_DNS_NAMESERVERS[0]
    proc = subprocess.run(
        ["perl", str(PERL_VERIFIER), host, str(port)], input=message_bytes, capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return [line.split("\t")[0] for line in proc.stdout.decode().splitlines()]


def test_signature_verifies_with_stock_dkimpy(built_message, dkim_key):
    signed = sign(built_message().data, dkim_key)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=mail.acme.test;")
    assert dkimpy.verify(signed, dnsfunc=dkim_key.dnsfunc)


def test_signature_verifies_with_perl_mail_dkim(built_message, dkim_key, dns, pdf):
    signed = sign(built_message(attachments=[pdf]).data, dkim_key)
    assert mail_dkim_verify(signed, dns, dkim_key) == ["pass"]


def test_signature_is_byte_identical_to_stock_dkimpy(built_message, dkim_key, monkeypatch):
    # RSASSA-PKCS1-v1_5 is deterministic: same key, headers and t= must give the same header.
    message = built_message().data
    monkeypatch.setattr(dkimpy.time, "time", lambda: 1_780_000_000)
    ours = dkim.signature_header(
        message, domain=DOMAIN, selector=SELECTOR, private_key_pem=dkim_key.private_pem, timestamp=1_780_000_000
    )
    stock = dkimpy.sign(
        message,
        SELECTOR.encode(),
        DOMAIN.encode(),
        dkim_key.private_pem.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=dkim.headers_to_sign(dkimpy.rfc822_parse(message)[0]),
    )
    assert ours == stock


def test_signs_the_listed_headers_and_oversigns_from(built_message, dkim_key):
    signed = sign(built_message().data, dkim_key)
    fields = dkimpy.util.parse_tag_value(dkimpy.rfc822_parse(signed)[0][0][1])
    assert [h.strip() for h in fields[b"h"].split(b":")] == [
        b"from",
        b"to",
        b"cc",
        b"subject",
        b"date",
        b"message-id",
        b"reply-to",
        b"mime-version",
        b"content-type",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"from",
    ]
    assert fields[b"d"] == b"mail.acme.test" and fields[b"s"] == b"mlr1"


def test_absent_cc_and_reply_to_are_not_listed(built_message, dkim_key):
    signed = sign(built_message(cc=[], reply_to=None).data, dkim_key)
    fields = dkimpy.util.parse_tag_value(dkimpy.rfc822_parse(signed)[0][0][1])
    names = [h.strip() for h in fields[b"h"].split(b":")]
    assert b"cc" not in names and b"reply-to" not in names
    assert dkimpy.verify(signed, dnsfunc=dkim_key.dnsfunc)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: Your order o_9 is confirmed", b"Subject: Your order o_9 is cancelled"),
        (b"To: jane@example.com", b"To: mallory@example.com"),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nothing"),
        (b"Total: 42.00 EUR.", b"Total: 4200 EUR.."),
    ],
)
def test_tampering_breaks_the_signature_for_both_verifiers(built_message, dkim_key, dns, old, new):
    signed = sign(built_message().data, dkim_key)
    assert old in signed
    tampered = signed.replace(old, new, 1)
    assert not dkimpy.verify(tampered, dnsfunc=dkim_key.dnsfunc)
    assert mail_dkim_verify(tampered, dns, dkim_key) == ["fail"]


def test_a_second_from_added_in_transit_breaks_the_signature(built_message, dkim_key):
    signed = sign(built_message().data, dkim_key)
    tampered = signed.replace(b"To: ", b"From: attacker@evil.test\r\nTo: ", 1)
    assert not dkimpy.verify(tampered, dnsfunc=dkim_key.dnsfunc)


def test_relaxed_canonicalisation_survives_header_refolding(built_message, dkim_key):
    signed = sign(built_message().data, dkim_key)
    refolded = signed.replace(b"Subject: Your order", b"Subject:   Your\r\n  order", 1)
    assert dkimpy.verify(refolded, dnsfunc=dkim_key.dnsfunc)


def test_a_different_key_does_not_verify(built_message, dkim_key):
    signed = sign(built_message().data, DkimKey(key_size=1024))
    assert not dkimpy.verify(signed, dnsfunc=dkim_key.dnsfunc)


def test_the_parsed_key_is_cached_per_domain_and_key(dkim_key, built_message):
    dkim.load_private_key.cache_clear()
    for _ in range(3):
        sign(built_message().data, dkim_key)
    info = dkim.load_private_key.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_a_message_without_from_is_refused(dkim_key):
    with pytest.raises(dkimpy.MessageFormatError):
        sign(b"To: a@example.com\r\nSubject: x\r\n\r\nbody\r\n", dkim_key)
