"""The batch run: load a claimed batch, prepare each message, send it, collect its outcome.

Everything for the batch is loaded in a fixed number of queries; suppressions and opt-outs are
re-checked; each message is rendered, built, instrumented and DKIM-signed, then sent through one
`Mailer` (connections reused per destination), messages ordered by recipient domain. Results are
handed to `outcomes_record` every few messages.

Choices:
- A from-domain that is no longer verified (drift) or has no key is a temporary failure: the
  message is deferred and retried (drift is usually a DNS blip the re-check repairs), and ends
  `errored` when the retry window closes. Nothing is ever sent unsigned.
- A suppression or group opt-out added after acceptance: `to` → `suppressed`, cc → left out.
- Each recipient gets a copy of its own, signed on its own, in its own SMTP transaction (`to`
  first): the copies differ only in List-Unsubscribe, whose one-click token opts out that copy's
  recipient alone, so a cc can never unsubscribe `to` (#15 item 12). To and Cc read as sent.
- When `to` is retried, recipients that already accepted (or refused) it are left out.
- A 5xx is classified (messaging.feedback.classes): `hard` bounces and suppresses, `block`
  bounces without suppressing, `soft` (a full mailbox answered 5.2.2) is retried like a 4xx.
- A test message (sent with a test key) takes the same path but its transport is the simulator
  (`messaging.delivery.simulator`): it never connects anywhere. Its sender need not be approved nor
  its domain verified; it is signed when its from-domain has a key and left unsigned otherwise.
- A submitted message (SMTP submission) has no template: its own subject, text and HTML
  (`MessageBody`) stand in for the rendering.
- What was built is kept (`MessageContent`, written with the outcome) for `GET …/content`.
"""

import logging
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from domains.models import DkimStatus, Domain
from domains.selectors import envelope_domain_of
from messaging.delivery import dkim, headers
from messaging.delivery.commit_point import CommitPoint
from messaging.delivery.mime import Attachment, build_message, domain_of
from messaging.delivery.outcomes import Outcome, Result, outcomes_record
from messaging.delivery.simulator import SimulatedTransport, simulated_feedback_record
from messaging.feedback.classes import TERMINAL_AT_DELIVERY, bounce_classify
from messaging.models import DeliveryAttempt, Message, MessageStatus, Suppression, Unsubscribe
from messaging.tracking.links import instrument_html, unsubscribe_url
from pufferpost import smtp
from pufferpost.shaping import Shaper
from pufferpost.shaping import policy as shaping_policy
from pufferpost.smtp import DeliveryResult, Mailer
from senders.models import SenderState
from templates_app.rendering import Rendered, RenderError, render_version

log = logging.getLogger(__name__)

S = MessageStatus
MAX_DETAIL_CHARS = 1000


class Batch:
    def __init__(self, message_ids: list[str], token: datetime):
        self.ids = message_ids
        self.token = token
        self.pending: list[Result] = []
        self.first_pending_at: float | None = None

    def run(self) -> None:
        messages = self._load()
        policy = shaping_policy()
        by_pool: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            by_pool[policy.pool_for(message.workspace_id)].append(message)
        try:
            for pool, group in by_pool.items():
                # The connection binds to one address of the workspace's egress pool and greets
                # with that address's name; budgets are that address's.
                egress = policy.egress(pool)
                source = egress.address if egress else ""
                with Mailer(shaper=Shaper(source), source_address=source, helo=egress.helo if egress else "") as mailer:
                    # One destination (MX rollup) after another: its connections close before the
                    # next destination's open, so this batch holds few of the shared slots. The
                    # destinations with the fewest messages go first: the long tail is never
                    # behind a big (and perhaps paced or throttled) destination's share.
                    destinations = {m.pk: self._destination(mailer, m.to) for m in group}
                    sizes = Counter(destinations.values())
                    group.sort(key=lambda m: (sizes[destinations[m.pk]], destinations[m.pk], domain_of(m.to), m.pk))
                    for message in group:
                        result = self._one(mailer, message)
                        if result is not None:
                            self._add(result)
        finally:
            self._flush()

    # -- loading: a fixed number of queries whatever the batch size --

    def _load(self) -> list[Message]:
        messages = list(
            Message.objects.filter(pk__in=self.ids, status=S.QUEUED, claimed_at=self.token)
            .select_related("sender", "template_version", "workspace", "body")
            .prefetch_related("attachments")
        )
        workspace_ids = {m.workspace_id for m in messages}
        addresses = {a.lower() for m in messages for a in (m.to, *m.cc)}
        self.domains = {
            (d.workspace_id, d.domain): d
            for d in Domain.objects.filter(
                workspace_id__in=workspace_ids, domain__in={domain_of(m.from_address) for m in messages}
            )
        }
        self.suppressed = set(
            Suppression.objects.filter(workspace_id__in=workspace_ids, email__in=addresses).values_list(
                "workspace_id", "email"
            )
        )
        group_ids = {m.unsubscribe_group_id for m in messages if m.unsubscribe_group_id}
        self.unsubscribed = (
            set(
                Unsubscribe.objects.filter(group_id__in=group_ids, email__in=addresses).values_list("group_id", "email")
            )
            if group_ids
            else set()
        )
        # Recipients that already accepted (or refused) a message in an earlier try are not sent it again.
        self.settled: dict[str, set[str]] = defaultdict(set)
        retried = [m.pk for m in messages if m.attempts]
        if retried:
            for message_id, recipients in DeliveryAttempt.objects.filter(message_id__in=retried).values_list(
                "message_id", "recipients"
            ):
                for address, outcome in (recipients or {}).items():
                    if outcome.get("outcome") in (Outcome.DELIVERED, Outcome.BOUNCED):
                        self.settled[message_id].add(address.lower())
        messages.sort(key=lambda m: (domain_of(m.to), m.pk))
        return messages

    @staticmethod
    def _destination(mailer: Mailer, address: str) -> str:
        ascii_address = smtp.ascii_address_or_none(address)
        if ascii_address is None:
            return ""
        return mailer.destination(mailer.route(ascii_address.rpartition("@")[2]))[0]

    def _is_suppressed(self, message: Message, address: str) -> bool:
        address = address.lower()
        return (message.workspace_id, address) in self.suppressed or (
            message.unsubscribe_group_id is not None and (message.unsubscribe_group_id, address) in self.unsubscribed
        )

    # -- one message --

    def _one(self, mailer: Mailer, message: Message) -> Result | None:
        """One message's outcome, whatever goes wrong with it: a failure of this message (a
        template the sandbox did not catch, a bug in building or signing) ends it `errored` and
        never reaches the others in the batch, which may belong to other workspaces (#15 item 2).
        Only the database going away stops the batch: the task retries it, nothing is lost."""
        try:
            return self._prepare_and_send(mailer, message)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            log.exception("delivery of %s failed; it ends errored", message.pk)
            return Result(message, Outcome.ERRORED, detail={"reason": "internal_error", "message": _describe(exc)})

    def _prepare_and_send(self, mailer: Mailer, message: Message) -> Result | None:
        if self._is_suppressed(message, message.to):
            return Result(
                message, Outcome.SUPPRESSED, detail={"reason": "recipient_suppressed", "recipient": message.to}
            )
        held = held_reason(message)
        if held is not None:
            return Result(message, Outcome.DEFERRED, detail=held, response=held["reason"])
        if message.livemode and message.to.lower() not in self.settled.get(message.pk, set()):
            # Ask the destination's budget before building: mail that has to wait (a paced backlog,
            # a backoff) costs one round trip, and a paced message is booked its slot.
            waiting = mailer.probe(message.to, ticket=message.pk)
            if waiting is not None:
                return _waiting(message, waiting)
        domain = self.domains.get((message.workspace_id, domain_of(message.from_address)))
        can_sign = domain is not None and bool(domain.dkim_private_key and domain.selector)
        if message.livemode and not (can_sign and domain.dkim_status == DkimStatus.VERIFIED):
            return Result(
                message,
                Outcome.DEFERRED,
                detail={
                    "reason": "domain_not_verified",
                    "message": f"{domain_of(message.from_address)} is not a verified sending domain with a "
                    "signing key in this workspace; retrying until it is verified again.",
                },
                response="sending domain not verified",
            )
        try:
            rendered = _content_of(message)
        except RenderError as exc:
            return Result(message, Outcome.ERRORED, detail={"reason": "render_error", "message": _describe(exc)})
        except Exception as exc:  # a template failure the sandbox did not turn into a RenderError
            log.exception("rendering %s failed", message.pk)
            detail = {
                "reason": "render_error",
                "message": f"The template failed to render: {_describe(exc, kind=True)}",
            }
            return Result(message, Outcome.ERRORED, detail=detail)
        # Stored (Message.subject) as well as sent: a NUL would make PostgreSQL refuse the whole flush.
        subject = headers.one_line(rendered.subject)
        workspace = message.workspace
        cc = _unique([a for a in message.cc if a.lower() != message.to.lower() and not self._is_suppressed(message, a)])
        settled = self.settled.get(message.pk, set())
        try:
            html = instrument_html(
                rendered.html, message_id=message.pk, opens=workspace.open_tracking, clicks=workspace.click_tracking
            )
            outgoing = build_message(
                message_id=message.pk,
                from_email=message.from_address,
                from_name=message.sender.display_name or "",
                to=message.to,
                cc=cc,
                reply_to=message.reply_to,
                subject=subject,
                html=html,
                text=rendered.text,
                attachments=[
                    Attachment(a.filename, a.content_type, bytes(a.content)) for a in message.attachments.all()
                ],
                unsubscribe_url=unsubscribe_url(message.pk),
                cc_unsubscribe_urls={address: unsubscribe_url(message.pk, address) for address in cc},
                # A test message may have no domain row yet: the from-domain then (it never leaves).
                envelope_domain=envelope_domain_of(domain) if domain is not None else "",
            )
            recipients = [r for r in outgoing.copies if r.lower() not in settled]
            # Each copy signed on its own (its List-Unsubscribe differs); settled ones are not built.
            signed = {
                address: dkim.sign(
                    outgoing.copies[address],
                    domain=domain.domain,
                    selector=domain.selector,
                    private_key_pem=domain.dkim_private_key,
                )
                if can_sign
                else outgoing.copies[address]  # only a test message gets here: it never leaves
                for address in recipients
            }
        except Exception as exc:  # a message that cannot be built must not take the batch down
            log.exception("could not build %s", message.pk)
            return Result(message, Outcome.ERRORED, detail={"reason": "build_error", "message": _describe(exc)})
        if not recipients:  # every recipient took it in an earlier try
            return Result(
                message,
                Outcome.DELIVERED,
                subject=subject,
                detail={"recipient": message.to, "note": "every recipient accepted it in an earlier try"},
                started_at=timezone.now(),
            )
        fence = CommitPoint(message.pk, self.token, subject)
        started_at = timezone.now()
        # The one place test mode forks: a test message goes to the simulator, never to a server.
        transport = mailer if message.livemode else SimulatedTransport(attempt=message.attempts)
        try:
            results = transport.send(
                mail_from=outgoing.mail_from, recipients=recipients, data=signed, before_data=fence, ticket=message.pk
            )
        except ValueError as exc:  # addresses the transport cannot carry
            return Result(message, Outcome.ERRORED, detail={"reason": "build_error", "message": _describe(exc)})
        finished_at = timezone.now()
        if fence.lost:
            log.warning("%s: claim lost before DATA (lease expired); another worker owns it", message.pk)
            return None
        result = self._classify(message, subject, results, fence, started_at, finished_at)
        result.content = Rendered(subject=subject, html=_as_mime_text(html), text=_as_mime_text(rendered.text))
        return result

    def _classify(self, message, subject, results: dict[str, DeliveryResult], fence, started_at, finished_at) -> Result:
        to_key = message.to if message.to in results else next(iter(results))
        to_result = results[to_key]
        # Each refusal's class (messaging.feedback.classes): a `soft` 5xx (a full mailbox) is
        # retried like a 4xx, and only a `hard` one suppresses the address.
        classes = {
            address: bounce_classify(text=r.response_text, basic_code=r.code)
            for address, r in results.items()
            if r.outcome != smtp.Outcome.DELIVERED and r.code is not None
        }
        effective = {
            address: smtp.Outcome.DEFERRED
            if r.outcome == smtp.Outcome.BOUNCED and classes[address].bounce_class not in TERMINAL_AT_DELIVERY
            else r.outcome
            for address, r in results.items()
        }
        recipients = {
            address: {
                "outcome": effective[address].value,
                "code": r.code,
                "response": r.response_text,
                "mx_host": r.mx_host,
                **({"bounce_class": classes[address].bounce_class.value} if address in classes else {}),
            }
            for address, r in results.items()
        }
        # Simulated bounces never reach the (live) suppression list.
        bounced = [
            address.lower()
            for address, r in results.items()
            if effective[address] == smtp.Outcome.BOUNCED and classes[address].suppresses and message.livemode
        ]
        response = f"{to_result.code or ''} {to_result.response_text}".strip()
        detail = {
            "recipient": message.to,
            "code": to_result.code,
            "response": to_result.response_text,
            "mx_host": to_result.mx_host,
        }
        if to_key in classes:
            detail |= {
                **classes[to_key].as_detail(),
                "diagnostic": to_result.response_text,
                "remote_mta": to_result.mx_host,
                "reporting_mta": settings.PUFFERPOST_SMTP_HELO_NAME,
            }
        if len(recipients) > 1:
            detail["recipients"] = recipients
        if to_result.rule:
            detail["rule"] = to_result.rule
        if to_result.destination:
            detail["destination"] = to_result.destination
        outcome = Outcome(effective[to_key])
        retry_after = to_result.retry_after
        retry_at = None
        if to_result.wait is not None:
            retry_after = to_result.wait
            retry_at = finished_at + timedelta(seconds=to_result.wait)
            # Nothing was sent: the message waits for the budget. (When a cc of it already passed
            # the commit point, it is an ordinary deferral so that attempt is recorded.)
            if fence.attempt_id is None:
                outcome = Outcome.WAITING
                detail["reason"] = "shaping"
        if message.to.lower() in self.settled.get(message.pk, set()):
            outcome = Outcome.DELIVERED  # `to` took it in an earlier try; this one was for a cc
        elif (
            message.to.lower() in fence.committed
            and to_result.outcome == smtp.Outcome.DEFERRED
            and to_result.code is None
        ):
            # The payload may have reached the server with no reply read back: never send it again.
            outcome = Outcome.UNKNOWN
        return Result(
            message,
            outcome,
            detail=detail,
            subject=subject,
            response=response,
            mx_host=to_result.mx_host,
            recipients=recipients,
            attempt_id=fence.attempt_id,
            started_at=started_at,
            finished_at=finished_at,
            bounced_addresses=bounced,
            bounce_class=classes[to_key].bounce_class.value if outcome == Outcome.BOUNCED else "",
            retry_after=retry_after,
            retry_at=retry_at,
            tls=to_result.tls,
        )

    # -- recording, in bulk --

    def _add(self, result: Result) -> None:
        self.pending.append(result)
        now = time.monotonic()
        if self.first_pending_at is None:
            self.first_pending_at = now
        if (
            len(self.pending) >= settings.PUFFERPOST_DELIVERY_FLUSH_EVERY
            or now - self.first_pending_at >= settings.PUFFERPOST_DELIVERY_FLUSH_SECONDS
        ):
            self._flush()

    def _flush(self) -> None:
        pending, self.pending, self.first_pending_at = self.pending, [], None
        if pending:
            outcomes_record(results=pending, token=self.token)
            simulated_feedback_record(
                messages=[r.message for r in pending if r.outcome == Outcome.DELIVERED and not r.message.livemode]
            )


def _unique(addresses: list[str]) -> list[str]:
    """The addresses in order, each once (compared without case)."""
    seen: set[str] = set()
    return [a for a in addresses if not (a.lower() in seen or seen.add(a.lower()))]


def _waiting(message: Message, result: DeliveryResult) -> Result:
    """A message its destination's budget holds back before anything was built or sent."""
    detail = {
        "recipient": message.to,
        "code": None,
        "response": result.response_text,
        "mx_host": "",
        "rule": result.rule,
        "destination": result.destination,
        "reason": "shaping",
    }
    return Result(
        message,
        Outcome.WAITING,
        detail=detail,
        response=result.response_text,
        retry_after=result.wait,
        retry_at=timezone.now() + timedelta(seconds=result.wait or 0.0),
    )


def _as_mime_text(text: str) -> str:
    """A text part as the MIME message carries it: the email package ends every line, the last one
    included, with a line break (CRLF on the wire), so the kept content is what recipients got."""
    return (b"\n".join(text.encode("utf-8", "surrogatepass").splitlines()) + b"\n").decode("utf-8", "surrogatepass")


def _content_of(message: Message) -> Rendered:
    """The message's subject, HTML and text: its template version rendered, or its own (submitted) body."""
    if message.template_version_id is None:
        body = message.body
        return Rendered(subject=" ".join(body.subject.split()), html=body.html, text=body.text)
    return render_version(message.template_version, data=message.data, locale=message.locale, timezone=message.timezone)


def _describe(exc: BaseException, *, kind: bool = False) -> str:
    """An exception as event detail: one line, no control characters (JSONB refuses NUL), bounded."""
    text = headers.one_line(str(exc)) or type(exc).__name__
    if kind:
        text = f"{type(exc).__name__}: {text}"
    return text[:MAX_DETAIL_CHARS]


def held_reason(message: Message) -> dict | None:
    """Mail accepted before a pause waits (deferred) instead of leaving: a sender paused for its
    bounce or complaint rate, or a workspace paused by staff, must stop sending at once. It goes
    out if the pause is lifted within the retry window, else it ends `errored`."""
    if message.workspace.sending_paused:
        return {"reason": "sending_paused", "message": "Sending is paused for the workspace."}
    # A test message may come from a sender still in review (it never leaves the platform).
    if message.livemode and message.sender.state != SenderState.ACTIVE:
        return {
            "reason": "sender_not_available",
            "message": f"The sender {message.from_address} is {message.sender.state}; held until it is active again.",
        }
    return None
