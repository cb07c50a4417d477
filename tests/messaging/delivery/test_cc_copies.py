"""#15 item 12: each recipient gets a copy of its own, so a cc can unsubscribe only itself.

Checked at a real MX (the aiosmtpd sink on loopback, reached through the loopback DNS): what each
RCPT received, that every copy is DKIM-valid (dkimpy and Mail::DKIM), that the visible To and Cc
are as the customer sent them, and — over real HTTP to the running app — that the one-click token
in a cc's copy opts out that cc alone and the `to` recipient's token opts out `to` alone.
"""

import re
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from messaging.delivery import commit_point
from messaging.delivery.services import deliver_due_messages, deliver_messages
from messaging.models import DeliveryAttempt, Message, MessageEvent, Suppression, Unsubscribe
from messaging.tracking.links import unsubscribe_url
from tests.messaging.delivery.pipeline import dkimpy_verifies, make_sendable, parse, perl_verifies, timeline
from tests.messaging.factories import UnsubscribeGroupFactory

TO, SAME_DOMAIN_CC, OTHER_DOMAIN_CC = "jane@example.com", "audit@example.com", "ops@example.org"
ONE_CLICK = {"data": b"List-Unsubscribe=One-Click", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def setup(settings, dns, smtp_sink, workspace, live_server):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    # The links in the mail point at the running app, as PUFFERPOST_PUBLIC_URL does in production.
    settings.PUFFERPOST_PUBLIC_URL = live_server.url
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns)


def post(url: str, **request) -> int:
    request = urllib.request.Request(url, method="POST" if "data" in request else "GET", **request)
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def fields(raw: bytes) -> dict[str, str]:
    """Each header field of the block as written (unfolded), by lowercased name."""
    unfolded = header_block(raw).replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t").decode("ascii")
    out = {}
    for line in unfolded.split("\r\n"):
        name, _, value = line.partition(":")
        assert name.lower() not in out, f"{name} appears twice"
        out[name.lower()] = value.strip()
    return out


def one_click_target(raw: bytes) -> str:
    (url,) = re.findall(r"<(http[^>]+)>", parse(raw)["List-Unsubscribe"])
    return url


def by_recipient(sink) -> dict[str, bytes]:
    assert all(len(r.rcpt_tos) == 1 for r in sink.received), [r.rcpt_tos for r in sink.received]
    return {r.rcpt_tos[0]: r.content for r in sink.received}


def test_each_recipient_gets_its_own_signed_copy_with_the_headers_as_sent(setup, smtp_sink):
    message = setup.message(to=TO, cc=[SAME_DOMAIN_CC, OTHER_DOMAIN_CC])
    deliver_messages(message_ids=[message.pk])

    # `to` first; the cc on the same MX rides the same connection as a second transaction.
    assert [r.rcpt_tos for r in smtp_sink.received] == [[TO], [SAME_DOMAIN_CC], [OTHER_DOMAIN_CC]]
    assert {r.mail_from for r in smtp_sink.received} == {smtp_sink.received[0].mail_from}
    assert smtp_sink.connections == 2  # one per MX host, not one per copy
    copies = by_recipient(smtp_sink)
    tokens = {address: unsubscribe_url(message.pk, None if address == TO else address) for address in copies}
    assert len(set(tokens.values())) == 3
    for address, raw in copies.items():
        mail = parse(raw)
        assert mail["To"] == TO
        assert mail["Cc"] == f"{SAME_DOMAIN_CC}, {OTHER_DOMAIN_CC}"
        assert mail["Message-ID"] == f"<{message.pk}@mail.acme.test>"
        assert mail["List-Unsubscribe"] == f"<{tokens[address]}>"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # No copy carries anyone else's token, in its headers or its body.
        for other, token in tokens.items():
            if other != address:
                assert token.encode() not in raw
        assert dkimpy_verifies(raw, setup.domain), address
        assert perl_verifies(raw, settings.PUFFERPOST_DNS_NAMESERVERS[0]) == ["pass"], address
        signed = dict(t.strip().split("=", 1) for t in mail["DKIM-Signature"].split(";") if "=" in t)
        assert "list-unsubscribe" in signed["h"].replace(" ", "").lower().split(":")

    # The copies differ in List-Unsubscribe and their own signature only; the body is byte-identical.
    to_fields = fields(copies[TO])
    for address in (SAME_DOMAIN_CC, OTHER_DOMAIN_CC):
        cc_fields = fields(copies[address])
        assert cc_fields.keys() == to_fields.keys()
        assert {k for k in to_fields if to_fields[k] != cc_fields[k]} == {"list-unsubscribe", "dkim-signature"}
        assert copies[address].split(b"\r\n\r\n", 1)[1] == copies[TO].split(b"\r\n\r\n", 1)[1]

    assert Message.objects.get(pk=message.pk).status == "delivered"
    assert timeline(message.pk) == ["accepted", "queued", "sent", "delivered"]
    (attempt,) = DeliveryAttempt.objects.filter(message=message)
    assert {a: v["outcome"] for a, v in attempt.recipients.items()} == dict.fromkeys(copies, "delivered")


@pytest.mark.parametrize("grouped", [True, False], ids=["group", "no-group"])
def test_a_cc_token_unsubscribes_only_the_cc_and_the_to_token_only_the_to(setup, smtp_sink, grouped):
    group = UnsubscribeGroupFactory(workspace=setup.workspace) if grouped else None
    message = setup.message(to=TO, cc=[OTHER_DOMAIN_CC], unsubscribe_group=group)
    deliver_messages(message_ids=[message.pk])
    copies = by_recipient(smtp_sink)

    def opted_out() -> set[str]:
        if grouped:
            return set(Unsubscribe.objects.filter(group=group).values_list("email", flat=True))
        return set(
            Suppression.objects.filter(workspace=setup.workspace, reason="unsubscribe").values_list("email", flat=True)
        )

    cc_target = one_click_target(copies[OTHER_DOMAIN_CC])
    assert post(cc_target) == 200  # the confirmation page a link scanner prefetches
    assert opted_out() == set()
    assert post(cc_target, **ONE_CLICK) == 200  # RFC 8058 one-click POST from the cc's mailbox
    assert opted_out() == {OTHER_DOMAIN_CC}
    (event,) = MessageEvent.objects.filter(message=message, type="unsubscribed")
    assert event.detail["email"] == OTHER_DOMAIN_CC and event.detail["source"] == "one-click"

    assert post(one_click_target(copies[TO]), **ONE_CLICK) == 200
    assert opted_out() == {OTHER_DOMAIN_CC, TO}
    assert [
        e.detail["email"] for e in MessageEvent.objects.filter(message=message, type="unsubscribed").order_by("id")
    ] == [
        OTHER_DOMAIN_CC,
        TO,
    ]


def test_a_token_for_an_address_that_is_not_a_cc_of_the_message_opts_nobody_out(setup, smtp_sink):
    message = setup.message(to=TO, cc=[OTHER_DOMAIN_CC])
    deliver_messages(message_ids=[message.pk])
    # Signed by us, but for an address this message never went to (or for `to` in the cc form).
    for address in ("victim@example.net", TO):
        url = unsubscribe_url(message.pk, address)
        assert post(url) == 404
        assert post(url, **ONE_CLICK) == 404
    forged = one_click_target(by_recipient(smtp_sink)[OTHER_DOMAIN_CC])[:-4] + "AAAA"
    assert post(forged, **ONE_CLICK) == 404
    assert not Suppression.objects.exists() and not Unsubscribe.objects.exists()
    assert not MessageEvent.objects.filter(message=message, type="unsubscribed").exists()


def test_a_cc_that_unsubscribed_is_left_out_of_the_next_message(setup, smtp_sink):
    first = setup.message(to=TO, cc=[OTHER_DOMAIN_CC])
    deliver_messages(message_ids=[first.pk])
    assert post(one_click_target(by_recipient(smtp_sink)[OTHER_DOMAIN_CC]), **ONE_CLICK) == 200
    smtp_sink.received.clear()

    second = setup.message(to=TO, cc=[OTHER_DOMAIN_CC])
    deliver_messages(message_ids=[second.pk])
    assert [r.rcpt_tos for r in smtp_sink.received] == [[TO]]
    assert parse(smtp_sink.received[0].content)["Cc"] is None
    assert Message.objects.get(pk=second.pk).status == "delivered"


def test_a_retry_for_to_sends_only_its_copy_and_the_cc_gets_one(setup, smtp_sink):
    smtp_sink.defer(TO)
    message = setup.message(to=TO, cc=[OTHER_DOMAIN_CC])
    deliver_messages(message_ids=[message.pk])
    assert [r.rcpt_tos for r in smtp_sink.received] == [[OTHER_DOMAIN_CC]]
    assert Message.objects.get(pk=message.pk).status == "queued"

    smtp_sink.rules.clear()
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    deliver_due_messages(message_ids=[message.pk])
    assert [r.rcpt_tos for r in smtp_sink.received] == [[OTHER_DOMAIN_CC], [TO]]
    retried = smtp_sink.received[1].content
    assert parse(retried)["List-Unsubscribe"] == f"<{unsubscribe_url(message.pk)}>"
    assert parse(retried)["Cc"] == OTHER_DOMAIN_CC
    assert dkimpy_verifies(retried, setup.domain)
    assert Message.objects.get(pk=message.pk).status == "delivered"
    assert timeline(message.pk) == ["accepted", "queued", "deferred", "sent", "delivered"]
    assert DeliveryAttempt.objects.filter(message=message).count() == 2


def test_a_connection_the_server_closes_after_the_to_copy_never_resends_it(setup, smtp_sink):
    """The MX shuts down between two copies on one connection: `to` has it once, the cc's copy is
    deferred and (as for any cc once `to` settled) recorded, not retried; nothing is sent twice."""
    smtp_sink.reply(SAME_DOMAIN_CC, "421 4.3.2 Shutting down")
    message = setup.message(to=TO, cc=[SAME_DOMAIN_CC])
    deliver_messages(message_ids=[message.pk])
    assert [r.rcpt_tos for r in smtp_sink.received] == [[TO]]
    assert Message.objects.get(pk=message.pk).status == "delivered"
    recipients = MessageEvent.objects.get(message=message, type="delivered").detail["recipients"]
    assert recipients[TO]["outcome"] == "delivered" and recipients[SAME_DOMAIN_CC]["outcome"] == "deferred"
    deliver_due_messages(message_ids=[message.pk])
    assert len(smtp_sink.received) == 1


def test_a_claim_lost_at_the_first_copy_sends_no_copy_at_all(setup, smtp_sink, monkeypatch):
    """The commit point is shared by the copies: once the claim is gone, no copy goes out."""
    smtp_sink.refuse(TO)  # `to` never reaches DATA, so the cc's copy meets the commit point first
    message = setup.message(to=TO, cc=[SAME_DOMAIN_CC, OTHER_DOMAIN_CC])
    original = commit_point.CommitPoint.__call__
    calls = []

    def reclaimed_meanwhile(self, recipients):
        calls.append(recipients)
        Message.objects.filter(pk=self.message_id).update(claimed_at=timezone.now())
        return original(self, recipients)

    monkeypatch.setattr(commit_point.CommitPoint, "__call__", reclaimed_meanwhile)
    deliver_messages(message_ids=[message.pk])
    assert smtp_sink.received == []
    assert calls == [[SAME_DOMAIN_CC], [OTHER_DOMAIN_CC]]
    assert Message.objects.get(pk=message.pk).status == "queued"
    assert not DeliveryAttempt.objects.filter(message=message).exists()


def test_a_cc_copy_without_a_url_of_its_own_carries_no_list_unsubscribe(built_message):
    out = built_message(
        cc=["a@example.org", "b@example.net"], cc_unsubscribe_urls={"a@example.org": "https://x.test/u/a"}
    )
    assert list(out.copies) == ["jane@example.com", "a@example.org", "b@example.net"]
    assert out.copies["jane@example.com"] == out.data
    assert parse(out.copies["a@example.org"])["List-Unsubscribe"] == "<https://x.test/u/a>"
    for header in ("List-Unsubscribe", "List-Unsubscribe-Post"):
        assert parse(out.copies["b@example.net"])[header] is None
    assert b"TOKEN123" in out.data and all(b"TOKEN123" not in out.copies[a] for a in ("a@example.org", "b@example.net"))
