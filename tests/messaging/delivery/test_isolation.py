"""#15 items 2 and 11 at delivery: whatever goes wrong while preparing one message ends that
message `errored` with a reason and never touches the rest of its batch, other workspaces' mail
included. The poison versions are written straight to the database, as the API may refuse them."""

import pytest

from messaging.delivery.services import deliver_due_messages, deliver_messages, delivery_sweep
from messaging.models import DeliveryAttempt, Message, MessageEvent
from tests.factories import TemplateFactory, TemplateVersionFactory
from tests.messaging.delivery.pipeline import make_sendable, parse, timeline
from tests.messaging.factories import MessageFactory

POISONS = {
    "call-block": "{% call nothing() %}{% endcall %}",
    "call-dict": "{% call dict() %}{% endcall %}",
}


@pytest.fixture
def setup(settings, dns, smtp_sink, workspace, other_workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns), make_sendable(other_workspace, dns)


def poisoned(sendable, **fields):
    """A message factory for a version of the sendable workspace's own, written as given."""
    template = TemplateFactory(workspace=sendable.workspace, name="Poison", slug="poison")
    version = TemplateVersionFactory(template=template, version=1, **fields)

    def message(**message_fields):
        message_fields.setdefault("data", {})
        return MessageFactory(
            workspace=sendable.workspace,
            sender=sendable.sender,
            template=template,
            template_version=version,
            **message_fields,
        )

    return message


def errored_detail(message) -> dict:
    return MessageEvent.objects.get(message_id=message.pk, type="errored").detail


@pytest.mark.parametrize("source", POISONS.values(), ids=POISONS.keys())
def test_a_poison_template_errors_alone_and_every_other_workspace_message_is_delivered(setup, smtp_sink, source):
    mine, theirs = setup
    make = poisoned(mine, subject="Invoice", html=source, text="")
    # The poison sorts first in the batch (same recipient domain, oldest id).
    poison = make(to="a0@example.com")
    others = [theirs.message(to=f"b{i}@example.com") for i in range(3)] + [mine.message(to="c@example.com")]

    deliver_messages(message_ids=[poison.pk, *(m.pk for m in others)])

    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == sorted(m.to for m in others)
    assert {Message.objects.get(pk=m.pk).status for m in others} == {"delivered"}
    assert Message.objects.get(pk=poison.pk).status == "errored"
    assert timeline(poison.pk) == ["accepted", "queued", "errored"]
    detail = errored_detail(poison)
    assert detail["reason"] == "render_error"
    assert "failed to render" in detail["message"] or "html" in detail["message"]
    assert not DeliveryAttempt.objects.filter(message_id=poison.pk).exists()
    # Nothing is left for the sweeper to re-claim and crash on, lease after lease.
    assert delivery_sweep() == {"unknown": 0, "requeued": 0}


def test_a_poison_message_taken_by_the_retry_path_errors_alone(setup, smtp_sink):
    mine, theirs = setup
    make = poisoned(mine, subject="Invoice", html=POISONS["call-block"], text="")
    poison = make(to="a0@example.com")
    other = theirs.message(to="b@example.com")
    # Both were claimed once by a worker that died before doing anything (the lease ran out).
    Message.objects.filter(pk__in=[poison.pk, other.pk]).update(status="queued", next_attempt_at="2000-01-01T00:00Z")

    deliver_due_messages(message_ids=[poison.pk, other.pk])

    assert [r.rcpt_tos for r in smtp_sink.received] == [["b@example.com"]]
    assert Message.objects.get(pk=poison.pk).status == "errored"
    assert Message.objects.get(pk=other.pk).status == "delivered"


def test_a_nul_rendered_into_the_subject_cannot_poison_the_batchs_bookkeeping(setup, smtp_sink):
    """PostgreSQL refuses NUL in text: stored as is, the subject failed the batch's bulk write."""
    mine, theirs = setup
    make = poisoned(mine, subject='Hi{{ "\\x00" }}there', html="<p>x</p>", text="x")
    message = make(to="a0@example.com")
    other = theirs.message(to="b@example.com")

    deliver_messages(message_ids=[message.pk, other.pk])

    assert len(smtp_sink.received) == 2
    assert Message.objects.get(pk=message.pk).subject == "Hi there"
    assert parse(smtp_sink.received[0].content)["Subject"] == "Hi there"
    assert Message.objects.get(pk=other.pk).status == "delivered"


def test_a_rendered_subject_over_998_characters_errors_with_the_reason(setup, smtp_sink):
    mine, theirs = setup
    make = poisoned(mine, subject="{{ s }}", html="<p>x</p>", text="x")
    long = make(to="a0@example.com", data={"s": "x" * 480_000})
    fits = make(to="a1@example.com", data={"s": "y" * 998})

    deliver_messages(message_ids=[long.pk, fits.pk])

    assert [r.rcpt_tos for r in smtp_sink.received] == [["a1@example.com"]]
    assert str(parse(smtp_sink.received[0].content)["Subject"]) == "y" * 998
    stored = Message.objects.get(pk=long.pk)
    assert stored.status == "errored" and stored.subject == ""
    detail = errored_detail(long)
    assert detail["reason"] == "render_error" and "at most 998" in detail["message"]
