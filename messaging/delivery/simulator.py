"""Test mode's receiving world: where messages sent with a test key (`key_test_…`) go instead of SMTP.

A test message runs through everything a live one does — claim, render, build, DKIM-sign (when
its from-domain has a key), the commit point, outcome recording, events and webhooks — except
that its transport is `SimulatedTransport` rather than `pufferpost.smtp.Mailer`: nothing
connects anywhere.

Recipients at PUFFERPOST_SIMULATOR_DOMAIN pick the outcome with their local part (a `+tag` is
ignored, so `bounced+signup-42@…` bounces too and CI runs can use unique addresses):

- `delivered@`    250 at the end of DATA: `sent`, `delivered`
- `bounced@`      550 5.1.1 at RCPT (no such mailbox, a hard bounce): `bounced`
- `blocked@`      554 5.7.1 at RCPT (refused by policy): `bounced`, `bounce_type: blocked`
- `deferred@`     451 4.7.1 at RCPT on the first try: `deferred`, then delivered on the retry
- `complained@`   delivered, then a spam report: `complained`
- `unsubscribed@` delivered, then the recipient's one-click unsubscribe: an `unsubscribed` event

Any other recipient of a test message is delivered (simulated). Simulated bounces, complaints and
unsubscribes never write to the suppression list or opt-outs (those are live data shared with live
keys) and never count toward the sender's reputation.
"""

from dataclasses import dataclass

from django.conf import settings

from messaging.lifecycle import message_event_record, message_transition
from messaging.models import EventType, Message, MessageStatus
from pufferpost.smtp import BeforeData, DeliveryResult, Payload, check_line_endings, classify

# What the event detail shows as the receiving host: no real host was contacted.
SIMULATOR_HOST = "simulator"

# Refused at RCPT: local part -> (code, reply text, bounce type).
_REFUSALS = {
    "bounced": (550, "5.1.1 Simulated hard bounce: the mailbox does not exist", "hard"),
    "blocked": (554, "5.7.1 Simulated block: message refused by the receiving server's policy", "blocked"),
}
_DEFERRAL = (451, "4.7.1 Simulated deferral: try again later")
_ACCEPTED = (250, "2.0.0 Simulated delivery: message accepted")
_ABANDONED = "transaction abandoned before the message data"

KINDS = ("delivered", "bounced", "blocked", "deferred", "complained", "unsubscribed")


def simulated_kind(address: str) -> str | None:
    """`bounced` for `bounced+x@<simulator domain>`; None for an address elsewhere or an unknown local part."""
    local, _, domain = address.lower().rpartition("@")
    if domain != settings.PUFFERPOST_SIMULATOR_DOMAIN:
        return None
    kind = local.partition("+")[0]
    return kind if kind in KINDS else None


def bounce_type(address: str) -> str | None:
    refusal = _REFUSALS.get(simulated_kind(address) or "")
    return refusal[2] if refusal else None


@dataclass
class SimulatedTransport:
    """`Mailer.send`'s contract without a network: the same commit point, per-recipient results.

    `attempt` is how many tries of the message came before (0 on the first), which is what makes
    `deferred@` defer once and then take the message.
    """

    attempt: int = 0

    def send(
        self,
        *,
        mail_from: str,
        recipients: list[str],
        data: Payload,
        before_data: BeforeData | None = None,
        ticket: str = "",  # the Mailer's shaping ticket; nothing is shaped here
    ) -> dict[str, DeliveryResult]:
        check_line_endings(data)
        if not isinstance(data, bytes):  # a copy per recipient: a transaction each, as Mailer does
            results = {}
            for recipient in recipients:
                results.update(
                    self.send(
                        mail_from=mail_from,
                        recipients=[recipient],
                        data=data[recipient],
                        before_data=before_data,
                        ticket=ticket,
                    )
                )
            return results
        results: dict[str, DeliveryResult] = {}
        accepted: list[str] = []
        for recipient in recipients:
            kind = simulated_kind(recipient)
            if kind in _REFUSALS:
                code, text, _ = _REFUSALS[kind]
                results[recipient] = classify(code, text, SIMULATOR_HOST)
            elif kind == "deferred" and self.attempt == 0:
                results[recipient] = classify(*_DEFERRAL, SIMULATOR_HOST)
            else:
                accepted.append(recipient)
        if accepted:
            if before_data is not None and not before_data(accepted):
                results.update(dict.fromkeys(accepted, classify(None, _ABANDONED, SIMULATOR_HOST)))
            else:
                code, text = _ACCEPTED
                signed = data.startswith(b"DKIM-Signature:") or b"\r\nDKIM-Signature:" in data
                text += " (DKIM-signed)" if signed else " (not DKIM-signed: the from-domain has no key yet)"
                results.update(dict.fromkeys(accepted, classify(code, text, SIMULATOR_HOST)))
        return results


def simulated_feedback_record(*, messages: list[Message]) -> None:
    """What the simulated recipients do after delivery: complained@ reports spam, unsubscribed@
    clicks one-click unsubscribe. Call once the `delivered` outcomes are recorded."""
    for message in messages:
        if message.livemode:
            continue
        kind = simulated_kind(message.to)
        detail = {"recipient": message.to, "simulated": True}
        if kind == "complained":
            message_transition(
                message_id=message.pk,
                to_status=MessageStatus.COMPLAINED,
                detail={**detail, "feedback_type": "abuse", "source": "simulator"},
            )
        elif kind == "unsubscribed":
            message_event_record(
                message=message,
                type=EventType.UNSUBSCRIBED,
                detail={
                    **detail,
                    "email": message.to,
                    "group": message.unsubscribe_group_id,
                    "source": "simulator",
                },
            )
