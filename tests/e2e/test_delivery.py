"""End to end: POST /v1/messages → a real Celery worker → loopback DNS (MX, DKIM) → an SMTP server.

Nothing runs eagerly here: the API commits, the worker process claims, renders, signs and sends,
and the tests read the outcome back from the database and from what the SMTP server received.
"""

import time

import pytest
from django.conf import settings

from messaging.models import AttemptState, DeliveryAttempt, Message, MessageEvent, Suppression
from messaging.return_path import verp_local_part
from tests.helpers import assert_envelope, wait_for
from tests.messaging.delivery.conftest import RELAY_PASSWORD, RELAY_USER
from tests.messaging.delivery.pipeline import FROM, dkimpy_verifies, make_sendable, parse, perl_verifies, timeline

pytestmark = pytest.mark.e2e

FAST = {"PUFFERPOST_SMTP_HELO_NAME": "out.acme.test", "PUFFERPOST_SMTP_TIMEOUT": "5", "PUFFERPOST_LOG_LEVEL": "INFO"}


@pytest.fixture
def sendable(workspace, dns):
    return make_sendable(workspace, dns)


@pytest.fixture
def send(api, sendable):
    def send(to, **extra):
        body = {"from": FROM, "to": to, "templateId": sendable.template.id, "data": {"name": "Jane", "order_id": "o_9"}}
        return api.post("/v1/messages", {**body, **extra}, format="json")

    return send


def sent_id(response) -> str:
    assert response.status_code == 202, response.content
    return response.json()["id"]


def wait_for_status(message_id, status, processes=(), timeout=30.0):
    return wait_for(
        lambda: Message.objects.filter(pk=message_id, status=status).first(),
        what=f"{message_id} → {status}",
        detail=lambda: f"now {list(Message.objects.filter(pk=message_id).values_list('status', flat=True))}",
        timeout=timeout,
        processes=processes,
    )


def copies(sink, message_id) -> int:
    return sum(1 for r in sink.received if parse(r.content)["Message-ID"] == f"<{message_id}@mail.acme.test>")


def test_a_send_is_delivered_signed_and_a_550_bounces_and_suppresses(processes, smtp_sink, send, sendable):
    worker = processes.worker(PUFFERPOST_SMTP_PORT=smtp_sink.port, **FAST)

    delivered_id = sent_id(send("jane@example.com", cc=["audit@example.com"], replyTo="support@acme.test"))
    smtp_sink.refuse("bounce-me@example.com")
    bounced_id = sent_id(send("bounce-me@example.com"))

    wait_for_status(delivered_id, "delivered", [worker])
    assert timeline(delivered_id) == ["accepted", "queued", "sent", "delivered"]
    (received,) = [r for r in smtp_sink.received if "jane@example.com" in r.rcpt_tos]
    assert received.rcpt_tos == ["jane@example.com", "audit@example.com"]
    assert received.mail_from == f"{verp_local_part(message_id=delivered_id)}@mail.acme.test"
    mail = parse(received.content)
    assert mail["From"] == f"Acme Shop <{FROM}>" and mail["Subject"] == "Order o_9 confirmed"
    assert mail["Reply-To"] == "support@acme.test" and mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dkimpy_verifies(received.content, sendable.domain)
    assert perl_verifies(received.content, settings.PUFFERPOST_DNS_NAMESERVERS[0]) == ["pass"]
    assert Message.objects.get(pk=delivered_id).subject == "Order o_9 confirmed"

    wait_for_status(bounced_id, "bounced", [worker])
    assert timeline(bounced_id) == ["accepted", "queued", "bounced"]
    assert Suppression.objects.filter(email="bounce-me@example.com", reason="bounce").exists()
    assert_envelope(send("bounce-me@example.com"), 422, "recipient_suppressed")


def test_a_451_is_deferred_and_retried_until_it_is_delivered(processes, smtp_sink, send):
    worker = processes.worker(PUFFERPOST_SMTP_PORT=smtp_sink.port, PUFFERPOST_DELIVERY_RETRY_BASE="1", **FAST)
    smtp_sink.defer("busy@example.com")
    message_id = sent_id(send("busy@example.com"))

    wait_for(
        lambda: MessageEvent.objects.filter(message_id=message_id, type="deferred").exists(),
        what="deferral",
        processes=[worker],
    )
    smtp_sink.rules.clear()  # the receiving server recovers; the countdown retry delivers
    wait_for_status(message_id, "delivered", [worker])
    assert timeline(message_id)[:3] == ["accepted", "queued", "deferred"]
    assert timeline(message_id)[-2:] == ["sent", "delivered"]
    assert copies(smtp_sink, message_id) == 1
    states = list(DeliveryAttempt.objects.filter(message_id=message_id).values_list("state", flat=True))
    assert states[-1] == AttemptState.SUCCEEDED and set(states[:-1]) == {AttemptState.DEFERRED}


def test_relay_mode_authenticates_and_delivers_through_the_relay(processes, smtp_relay, send, sendable):
    relay = f"smtp://{RELAY_USER}:{RELAY_PASSWORD.replace(' ', '%20').replace('@', '%40')}@127.0.0.1:{smtp_relay.port}"
    worker = processes.worker(PUFFERPOST_SMTP_RELAY=relay, **FAST)
    message_id = sent_id(send("someone@nowhere.invalid"))  # no MX anywhere: only the relay can take it
    wait_for_status(message_id, "delivered", [worker])
    (received,) = smtp_relay.received
    assert received.login == RELAY_USER and received.rcpt_tos == ["someone@nowhere.invalid"]
    assert dkimpy_verifies(received.content, sendable.domain)


def test_a_worker_killed_inside_the_smtp_transaction_delivers_exactly_once(processes, smtp_sink, send):
    # A short lease, written at claim time by the worker that is going to die.
    env = {
        "PUFFERPOST_SMTP_PORT": smtp_sink.port,
        "PUFFERPOST_DELIVERY_LEASE": "1",
        **FAST,
        "PUFFERPOST_SMTP_TIMEOUT": "30",
    }
    doomed = processes.worker("doomed", **env)
    smtp_sink.stall("stuck@example.com", 8)
    message_id = sent_id(send("stuck@example.com"))

    # The worker is inside the transaction (RCPT sent, no answer yet) when it dies.
    wait_for(lambda: smtp_sink.handler.peers, what="the worker's RCPT", processes=[doomed])
    doomed.kill()
    assert Message.objects.get(pk=message_id).status == "queued"
    assert not DeliveryAttempt.objects.filter(message_id=message_id).exists()  # it died before the commit point

    smtp_sink.rules.clear()
    sweep = {"PUFFERPOST_DELIVERY_SWEEP_INTERVAL": "0.5", "PUFFERPOST_DELIVERY_SWEEP_GRACE": "0"}
    survivor = processes.worker("survivor", **env, **sweep)
    processes.beat(**env, **sweep)

    wait_for_status(message_id, "delivered", [survivor])
    time.sleep(1.5)  # a few more sweeps: nothing is sent again
    assert copies(smtp_sink, message_id) == 1
    assert timeline(message_id) == ["accepted", "queued", "sent", "delivered"]
    (attempt,) = DeliveryAttempt.objects.filter(message_id=message_id)
    assert attempt.state == AttemptState.SUCCEEDED
