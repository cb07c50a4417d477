"""Bounce classes from real receivers' replies (texts as Gmail, Microsoft, Yahoo and Postfix send them)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from messaging.feedback.classes import bounce_classify, bounce_rules_reload

REPLIES = [
    # (reply as the server sent it, basic code, expected class, expected enhanced code)
    ("550-5.1.1 The email account that you tried to reach does not exist. Please try", 550, "hard", "5.1.1"),
    ("550 5.1.1 <jane@example.org>: Recipient address rejected: User unknown", 550, "hard", "5.1.1"),
    ("550-5.2.1 The email account that you tried to reach is disabled.", 550, "hard", "5.2.1"),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", 550, "hard", "5.1.10"),
    ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", 550, "hard", "5.4.1"),
    ("550 No such user here", 550, "hard", ""),
    ("550 Requested action not taken: mailbox unavailable", 550, "hard", ""),
    ("example.org does not accept mail (null MX, RFC 7505)", 556, "hard", ""),
    (
        "550-5.7.1 [192.0.2.25] Our system has detected that this message is likely suspicious due to "
        "the very low reputation of the sending IP address.",
        550,
        "block",
        "5.7.1",
    ),
    (
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all "
        "senders to authenticate with either SPF or DKIM.",
        550,
        "block",
        "5.7.26",
    ),
    (
        "550 5.7.515 Access denied, sending domain mail.acme.test doesn't meet the required authentication "
        "level. The sender's domain in the 5322.From address doesn't meet the authentication requirements",
        550,
        "block",
        "5.7.515",
    ),
    (
        "550 5.7.1 Unfortunately, messages from [192.0.2.25] weren't sent. Please contact your Internet "
        "service provider since part of their network is on our block list (S3140).",
        550,
        "block",
        "5.7.1",
    ),
    # Microsoft's blocklist code outranks a recipient-looking status.
    ("550 5.1.1 Messages from [192.0.2.25] weren't sent (S3150).", 550, "block", "5.1.1"),
    (
        "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.25, because the ip is in Spamhaus's list",
        553,
        "block",
        "5.7.1",
    ),
    ("554 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org", 554, "block", ""),
    ("554 5.7.9 Message not accepted for policy reasons.", 554, "block", "5.7.9"),
    ("552 5.3.4 Message size exceeds fixed limit", 552, "block", "5.3.4"),
    ("550 5.0.0 Message rejected as spam", 550, "block", "5.0.0"),
    ("452-4.2.2 The email account that you tried to reach is over quota.", 452, "soft", "4.2.2"),
    ("552 5.2.2 Mailbox full", 552, "soft", "5.2.2"),
    ("550 Mailbox is full", 550, "soft", ""),
    ("421-4.7.0 [192.0.2.25] Our system has detected an unusual rate of unsolicited mail", 421, "soft", "4.7.0"),
    ("451 4.7.1 Greylisted, please try again later", 451, "soft", "4.7.1"),
    ("Connection refused", None, "soft", ""),
]


@pytest.mark.parametrize(("text", "code", "expected", "enhanced"), REPLIES, ids=[r[0][:40] for r in REPLIES])
def test_synchronous_replies_get_their_class(text, code, expected, enhanced):
    result = bounce_classify(text=text, basic_code=code)
    assert (result.bounce_class, result.enhanced_code, result.basic_code) == (expected, enhanced, code)
    assert result.suppresses is (expected == "hard")


def test_the_basic_code_is_read_from_the_diagnostic_when_not_given():
    result = bounce_classify(text="550 5.1.1 <jane@example.org>: User unknown", enhanced_code="5.1.1", action="failed")
    assert (result.bounce_class, result.basic_code, result.enhanced_code) == ("hard", 550, "5.1.1")


def test_a_failed_dsn_with_a_temporary_status_is_expired():
    result = bounce_classify(
        text="connect to mx.example.org[192.0.2.1]:25: Connection timed out", enhanced_code="4.4.1", action="failed"
    )
    assert result.bounce_class == "expired"
    assert not result.suppresses
    # The same status while the relay is still trying is only soft.
    assert bounce_classify(text="", enhanced_code="4.4.1", action="delayed").bounce_class == "soft"


def test_the_dsn_status_field_outranks_codes_in_the_text():
    result = bounce_classify(text="550 mailbox unavailable 5.0.0", enhanced_code="5.7.1", action="failed")
    assert (result.bounce_class, result.enhanced_code) == ("block", "5.7.1")


def test_an_ip_address_is_not_an_enhanced_code():
    result = bounce_classify(text="550 Host 10.5.1.1 rejected the recipient: user unknown", basic_code=550)
    assert (result.bounce_class, result.enhanced_code) == ("hard", "")


@pytest.fixture
def operator_rules(tmp_path, settings):
    path = tmp_path / "rules.toml"
    settings.PUFFERPOST_BOUNCE_RULES_FILE = str(path)
    yield path
    settings.PUFFERPOST_BOUNCE_RULES_FILE = ""
    bounce_rules_reload()


def test_operator_rules_are_tried_before_the_built_in_ones(operator_rules):
    text = "550 5.1.1 Mailbox temporarily locked by ACME-Filter (policy 17)"
    assert bounce_classify(text=text, basic_code=550).bounce_class == "hard"

    operator_rules.write_text('[[rule]]\nname = "acme-filter"\nclass = "block"\ntext = \'ACME-Filter\'\n')
    bounce_rules_reload()

    result = bounce_classify(text=text, basic_code=550)
    assert (result.bounce_class, result.rule) == ("block", "acme-filter")


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ('[[rule]]\nclass = "hard"\n', "needs `status` or `text`"),
        ('[[rule]]\nclass = "fatal"\ntext = "x"\n', "fatal"),
        ('[[rule]]\nclass = "expired"\ntext = "x"\n', "decided by the report"),
        ('[[rule]]\nclass = "hard"\ntext = "(unclosed"\n', "unterminated subpattern"),
        ('[[rule]]\nclass = "hard"\ntext = "x"\nregex = "y"\n', "unknown keys"),
        ("[[rule]\n", "rules.toml"),
    ],
)
def test_a_malformed_rules_file_is_a_loud_configuration_error(operator_rules, content, complaint):
    operator_rules.write_text(content)
    bounce_rules_reload()
    with pytest.raises(ImproperlyConfigured, match=complaint):
        bounce_classify(text="550 x", basic_code=550)


def test_a_huge_reply_text_is_searched_only_to_its_limit():
    # Rules are regular expressions: they only ever see the first TEXT_LIMIT characters.
    result = bounce_classify(text="550 " + "a" * 1_000_000 + " spamhaus", basic_code=550)
    assert result.bounce_class == "hard"
