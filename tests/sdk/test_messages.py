"""The SDK's sends and message reads against the real server (gunicorn + a Celery worker)."""

import pytest

from messaging.models import IdempotencyRecord, Message, MessageAttachment
from pufferpost_client import Attachment, ConflictError, Event, Paginator
from pufferpost_client import Message as MessageView
from tests.helpers import REQUEST_ID, wait_for

pytestmark = pytest.mark.e2e


def test_send_stores_every_field_and_answers_with_the_rate_limit(account):
    client = account.client()
    sent = client.messages.send(
        **account.send_body(
            cc=["audit@example.com"],
            reply_to="support@acme.test",
            metadata={"order_id": "o_9"},
            locale="de",
            timezone="Europe/Berlin",
            attachments=[Attachment.from_bytes("receipt.txt", "text/plain", b"total 42")],
        )
    )
    assert sent.status == "accepted" and sent.replayed is False
    assert sent.id.startswith("msg_") and REQUEST_ID.match(sent.request_id)
    assert sent.rate_limit.limit == account.workspace.rate_limit_per_minute
    assert sent.rate_limit.remaining == sent.rate_limit.limit - 1
    stored = Message.objects.get(pk=sent.id)
    assert (stored.from_address, stored.to, stored.cc, stored.reply_to) == (
        "receipts@mail.acme.test",
        "delivered@simulator.invalid",
        ["audit@example.com"],
        "support@acme.test",
    )
    assert stored.metadata == {"order_id": "o_9"} and stored.data == {"name": "Jane", "order_id": "o_9"}
    assert (stored.locale, stored.timezone, stored.livemode) == ("de", "Europe/Berlin", False)
    [attachment] = MessageAttachment.objects.filter(message=stored)
    assert (attachment.filename, attachment.content_type, bytes(attachment.content)) == (
        "receipt.txt",
        "text/plain",
        b"total 42",
    )

    view = client.messages.get(sent.id)
    assert isinstance(view, MessageView)
    assert (view.id, view.from_, view.to, view.cc, view.test) == (
        sent.id,
        "receipts@mail.acme.test",
        "delivered@simulator.invalid",
        ["audit@example.com"],
        True,
    )
    assert [(a.filename, a.content_type) for a in view.attachments] == [("receipt.txt", "text/plain")]
    assert view.raw["template_id"] == account.template.pk == view.template_id


def test_the_same_idempotency_key_replays_and_a_different_body_is_refused(account):
    client = account.client()
    first = client.messages.send(**account.send_body(), idempotency_key="order-9-confirmation")
    again = client.messages.send(**account.send_body(), idempotency_key="order-9-confirmation")
    assert first.replayed is False and again.replayed is True  # the Idempotent-Replayed header
    assert again.id == first.id
    assert Message.objects.filter(workspace=account.workspace).count() == 1
    assert IdempotencyRecord.objects.get(workspace=account.workspace, key="order-9-confirmation").message_id == first.id

    with pytest.raises(ConflictError) as caught:
        client.messages.send(
            **account.send_body(to="bounced@simulator.invalid"), idempotency_key="order-9-confirmation"
        )
    assert caught.value.status == 409 and caught.value.code == "idempotency_key_reused"
    assert REQUEST_ID.match(caught.value.request_id) and caught.value.request_id == caught.value.headers["X-Request-Id"]
    assert Message.objects.filter(workspace=account.workspace).count() == 1


def test_a_delivered_message_has_its_timeline_and_content(account):
    client = account.client()
    sent = client.messages.send(**account.send_body())
    view = wait_for(
        lambda: (m := client.messages.get(sent.id)).status == "delivered" and m, what="the message to be delivered"
    )
    assert view.subject == "Order o_9 confirmed"
    events = client.messages.events(sent.id)
    assert isinstance(events, Paginator)
    timeline = list(events)
    assert all(isinstance(e, Event) and e.id.startswith("evt_") for e in timeline)
    assert [e.type for e in timeline] == ["accepted", "queued", "sent", "delivered"]
    assert [e.id for e in timeline] == list(
        Message.objects.get(pk=sent.id).events.order_by("occurred_at", "recorded_at").values_list("id", flat=True)
    )
    content = client.messages.content(sent.id)
    assert content.id == sent.id and content.subject == "Order o_9 confirmed"
    assert "Hi Jane, order o_9 is on its way." in content.text
    assert "order o_9 is on its way" in content.html


def test_a_batch_answers_per_item_and_stores_only_the_accepted(account):
    client = account.client()
    result = client.messages.batch(
        [
            account.send_body(to="delivered@simulator.invalid"),
            account.send_body(to="not-an-address"),
            {"from": account.sender.from_address, "to": "bounced@simulator.invalid", "template": "order"},
        ]
    )
    assert [(i.index, i.status) for i in result.items] == [(0, "accepted"), (1, "error"), (2, "accepted")]
    assert result.items[1].error.code == "validation_failed"
    assert [(v.field, v.code) for v in result.items[1].error.violations] == [("to", "invalid_email")]
    assert {i.id for i in result.accepted} == set(
        Message.objects.filter(workspace=account.workspace).values_list("id", flat=True)
    )
    assert result.rate_limit.remaining == result.rate_limit.limit - 1  # a batch counts as one request


def test_listing_messages_follows_the_cursor_through_every_page(account):
    client = account.client()
    result = client.messages.batch([account.send_body(to=f"delivered+{n}@simulator.invalid") for n in range(5)])
    ids = [item.id for item in result.items]

    pages = list(client.messages.list(limit=2).pages())
    assert [len(p.data) for p in pages] == [2, 2, 1]
    assert pages[-1].next_cursor is None and all(p.next_cursor for p in pages[:-1])
    newest_first = list(
        Message.objects.filter(workspace=account.workspace).order_by("-created_at", "-id").values_list("id", flat=True)
    )
    assert [m.id for p in pages for m in p.data] == newest_first
    assert sorted(newest_first) == sorted(ids)

    assert [m.id for m in client.messages.list(recipient="delivered+3@simulator.invalid")] == [ids[3]]
    assert [m.id for m in client.messages.list(template_id=account.template.pk, limit=3)] == newest_first
    # A live key sees no test message: the modes never mix.
    assert list(account.client(account.live_key).messages.list()) == []
