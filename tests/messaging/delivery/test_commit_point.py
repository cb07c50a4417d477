"""`Mailer.send(before_data=…)`: the exactly-once commit point between DATA's 354 and the payload."""

import pytest

from pufferpost.smtp import Mailer, Outcome
from tests.messaging.delivery.test_smtp import DATA, direct, publish_mx  # noqa: F401

MAIL_FROM = "bounces+x@mail.acme.test"


@pytest.fixture
def route(direct):  # noqa: F811
    publish_mx(direct, "example.com", (10, "mx1.example.com", "127.0.0.1"))


def test_the_hook_runs_once_per_transaction_with_the_accepted_recipients(route, smtp_sink):
    smtp_sink.refuse("gone@example.com")
    calls = []

    def before_data(recipients):
        calls.append((recipients, len(smtp_sink.received)))
        return True

    with Mailer() as mailer:
        results = mailer.send(
            mail_from=MAIL_FROM, recipients=["jane@example.com", "gone@example.com"], data=DATA, before_data=before_data
        )
    assert calls == [(["jane@example.com"], 0)]  # called before the server had the message
    assert results["jane@example.com"].outcome == Outcome.DELIVERED
    assert results["gone@example.com"].outcome == Outcome.BOUNCED
    (received,) = smtp_sink.received
    assert received.content == DATA  # leading dots stuffed on the wire, restored by the server


def test_declining_abandons_the_transaction_and_the_server_discards_it(route, smtp_sink):
    with Mailer() as mailer:
        results = mailer.send(
            mail_from=MAIL_FROM, recipients=["jane@example.com"], data=DATA, before_data=lambda recipients: False
        )
        assert results["jane@example.com"].outcome == Outcome.DEFERRED
        assert "declined" in results["jane@example.com"].response_text
        # The connection was closed; the next message opens a fresh one and goes through.
        again = mailer.send(mail_from=MAIL_FROM, recipients=["jane@example.com"], data=DATA)
    assert again["jane@example.com"].outcome == Outcome.DELIVERED
    assert len(smtp_sink.received) == 1
    assert smtp_sink.connections == 2


def test_no_hook_call_when_no_recipient_was_accepted(route, smtp_sink):
    smtp_sink.defer("busy@example.com")
    calls = []
    with Mailer() as mailer:
        results = mailer.send(
            mail_from=MAIL_FROM, recipients=["busy@example.com"], data=DATA, before_data=lambda r: calls.append(r)
        )
    assert calls == [] and results["busy@example.com"].code == 451


def test_an_exception_in_the_hook_propagates_and_nothing_is_delivered(route, smtp_sink):
    def broken(recipients):
        raise RuntimeError("database gone")

    with Mailer() as mailer, pytest.raises(RuntimeError, match="database gone"):
        mailer.send(mail_from=MAIL_FROM, recipients=["jane@example.com"], data=DATA, before_data=broken)
    assert smtp_sink.received == []
