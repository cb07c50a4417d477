"""Every SMTP conversation the platform has goes through here.

Routing: through PUFFERPOST_SMTP_RELAY when it is set, else straight to each recipient domain's
MX hosts (looked up with `pufferpost.dns`, host addresses included, so tests and `make up` can
point all of it at a loopback DNS server) on PUFFERPOST_SMTP_PORT.

`Mailer` keeps one open connection per destination and reuses it for the next message (its MAIL
follows the last one's final reply; RSET only after a transaction that ended early): a new TCP +
EHLO per message halves throughput on loopback and costs far more against a remote MX (the
machine ceilings in bench/README.md).

Outcomes are per recipient: `delivered` (2xx after DATA), `bounced` (5xx, or a domain that
cannot receive mail: NXDOMAIN, null MX, no address at all) and `deferred` (4xx, 421, refused
connections, timeouts, DNS errors — worth retrying later).
"""

import contextlib
import dataclasses
import functools
import logging
import random
import re
import smtplib
import socket
import ssl
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from urllib.parse import unquote, urlsplit

from django.conf import settings

from pufferpost import dns, http, mta_sts
from pufferpost.shaping import Admission, Limits, Shaper
from pufferpost.tls import client_context

log = logging.getLogger(__name__)

# Called with the recipients the server accepted, right before the DATA payload; False abandons.
BeforeData = Callable[[list[str]], bool]
# The payload: one message for every recipient, or a copy of its own for each (recipient → bytes).
Payload = bytes | Mapping[str, bytes]

RELAY_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class Outcome(StrEnum):
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    DEFERRED = "deferred"


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one recipient. `code` is the SMTP reply code (None when no server answered)."""

    outcome: Outcome
    code: int | None
    response_text: str
    mx_host: str = ""
    # Set by shaping: seconds until the destination's budget allows this recipient (nothing was sent).
    wait: float | None = field(default=None, compare=False)
    # Which shaping rule or reply pattern decided a deferral ("shaping:connections", "throttle:4\.7\.28" …).
    rule: str = field(default="", compare=False)
    # A server-given retry delay (greylisting) that replaces the generic backoff.
    retry_after: float | None = field(default=None, compare=False)
    # {"used": bool, "version": "TLSv1.3", "verified": bool} of the connection that carried it.
    tls: dict | None = field(default=None, compare=False, hash=False)
    destination: str = field(default="", compare=False)

    @property
    def permanent(self) -> bool:
        return self.outcome == Outcome.BOUNCED


@dataclass(frozen=True)
class Route:
    """Where to deliver a recipient domain: hosts to try in order, or why there is nowhere to go."""

    key: str
    hosts: tuple[str, ...] = ()
    port: int = 25
    security: str = "opportunistic"  # "opportunistic" STARTTLS, "starttls" (required), "tls" (implicit)
    username: str = ""
    password: str = ""
    resolve_with_dns_module: bool = True
    failure: DeliveryResult | None = None
    # The recipient domain's MTA-STS policy lookup (direct-to-MX only; None through the relay).
    sts: mta_sts.Lookup | None = None

    @property
    def enforced(self) -> bool:
        return self.sts is not None and self.sts.enforced

    def host_allowed(self, host: str) -> bool:
        """May mail of this route go to `host`? (Under an enforced MTA-STS policy only matching MX hosts.)"""
        return not self.enforced or self.sts.policy.matches(host)

    def sts_record(self, host: str, tls: dict) -> dict | None:
        """What the `sent` event says about MTA-STS for a delivery to `host` over `tls`."""
        if self.sts is None:
            return None
        record = self.sts.record()
        if record is None or self.sts.policy is None or self.sts.policy.mode == "none":
            return record
        record["mx_match"] = self.sts.policy.matches(host)
        record["tls_verified"] = bool(tls.get("used") and tls.get("verified"))
        failures = []
        if not record["mx_match"]:
            failures.append(f"{host} matches none of the policy's mx patterns ({', '.join(self.sts.policy.mx)})")
        if not record["tls_verified"]:
            failures.append(
                f"the connection to {host} was not TLS with a verified certificate"
                if tls.get("used")
                else f"the connection to {host} was not encrypted"
            )
        if failures:
            record["failure"] = "; ".join(failures)
        return record


def classify(code: int | None, text: str = "", mx_host: str = "") -> DeliveryResult:
    """Turn an SMTP reply into a result: 2xx delivered, 5xx bounced, anything else deferred."""
    if code is not None and 200 <= code < 300:
        outcome = Outcome.DELIVERED
    elif code is not None and 500 <= code < 600:
        outcome = Outcome.BOUNCED
    else:
        outcome = Outcome.DEFERRED
    return DeliveryResult(outcome, code, text, mx_host)


def _text(response) -> str:
    return response.decode("utf-8", "replace") if isinstance(response, bytes) else str(response)


def relay_route() -> Route | None:
    """The configured relay, or None for direct-to-MX delivery."""
    url = settings.PUFFERPOST_SMTP_RELAY
    if not url:
        return None
    parts = urlsplit(url)
    security = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}[parts.scheme]
    return Route(
        key=f"relay:{parts.hostname}:{parts.port}",
        hosts=(parts.hostname,),
        port=parts.port or RELAY_DEFAULT_PORTS[parts.scheme],
        security=security,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        # The relay is infrastructure (a name in /etc/hosts or a container network), like the
        # database host: the system resolver finds it.
        resolve_with_dns_module=False,
    )


def resolve_route(domain: str) -> Route:
    """The route for a recipient domain: the relay, else its MX hosts by preference (RFC 5321 §5.1)."""
    relay = relay_route()
    if relay is not None:
        return relay
    domain = domain.lower().rstrip(".")
    port = settings.PUFFERPOST_SMTP_PORT
    answer = dns.mx(domain, cached=True)
    if answer.outcome == dns.Outcome.FOUND:
        if any(host == "." for _, host in answer.records):
            return Route(domain, failure=classify(556, f"{domain} does not accept mail (null MX, RFC 7505)"))
        hosts = []
        # Equal preferences share the load in random order, as RFC 5321 asks.
        for _, group in groupby(answer.records, key=lambda r: r[0]):
            same = [host for _, host in group]
            random.shuffle(same)
            hosts.extend(same)
        return _with_sts(Route(domain, hosts=tuple(hosts), port=port))
    if answer.outcome == dns.Outcome.NXDOMAIN:
        return Route(domain, failure=classify(550, f"{domain} does not exist (NXDOMAIN)"))
    if answer.outcome == dns.Outcome.ERROR:
        return Route(domain, failure=classify(None, f"MX lookup failed: {answer.error}"))
    # No MX record: the domain itself is the implicit MX when it has an address.
    implicit = dns.addresses(domain, cached=True)
    if implicit.outcome == dns.Outcome.FOUND:
        return _with_sts(Route(domain, hosts=(domain,), port=port))
    if implicit.outcome == dns.Outcome.ERROR:
        return Route(domain, failure=classify(None, f"address lookup failed: {implicit.error}"))
    return Route(domain, failure=classify(550, f"{domain} has no MX and no address record"))


def _with_sts(route: Route) -> Route:
    """The route under the domain's MTA-STS policy: an `enforce` policy none of whose patterns matches
    any MX host defers the mail before any connection (never plaintext, never an unlisted host)."""
    if not settings.PUFFERPOST_MTA_STS:
        return route
    lookup = mta_sts.lookup(route.key)
    route = dataclasses.replace(route, sts=lookup)
    if lookup.enforced and not any(lookup.policy.matches(h) for h in route.hosts):
        failure = classify(
            None,
            f"the MTA-STS policy of {route.key} (mode enforce, id {lookup.policy.id}) allows only "
            f"{', '.join(lookup.policy.mx)}; none of its MX hosts ({', '.join(route.hosts)}) matches: not connected",
        )
        route = dataclasses.replace(route, failure=dataclasses.replace(failure, rule="mta-sts:mx_mismatch"))
    return route


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


def helo_name() -> str:
    return settings.PUFFERPOST_SMTP_HELO_NAME or _fqdn()


def ascii_address_or_none(address: str) -> str | None:
    """`local@domain` with an internationalised domain in its IDNA (xn--) form; None when the local
    part itself is not ASCII (that needs SMTPUTF8, RFC 6531)."""
    local, _, domain = address.strip().rpartition("@")
    if not local or not domain or not local.isascii():
        return None
    try:
        domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return f"{local}@{domain}"


class _TryNextHost(Exception):
    def __init__(self, result: DeliveryResult):
        self.result = result


@dataclass
class _Connection:
    smtp: smtplib.SMTP
    host: str
    messages: int = 0
    tls: dict = field(default_factory=lambda: {"used": False})
    destination: str = ""
    lease: str = ""
    last_used: float = field(default_factory=time.monotonic)


class _RetryUnverified(Exception):
    """The certificate did not verify: reconnect and encrypt without verifying (opportunistic TLS)."""


# MX hosts whose certificate did not verify lately: opportunistic TLS goes straight to unverified
# (one connection instead of two), re-checked after an hour.
_UNVERIFIABLE: dict[str, float] = {}
_UNVERIFIABLE_LOCK = threading.Lock()
_UNVERIFIABLE_FOR = 3600.0


def _verification_known_to_fail(host: str) -> bool:
    with _UNVERIFIABLE_LOCK:
        until = _UNVERIFIABLE.get(host)
        return until is not None and until > time.monotonic()


def _verification_failed(host: str) -> None:
    with _UNVERIFIABLE_LOCK:
        _UNVERIFIABLE[host] = time.monotonic() + _UNVERIFIABLE_FOR


# Waits whose `wait` is a slot booked for the message in the destination's schedule.
_BOOKING_RULES = frozenset({"shaping:per_minute", "shaping:per_hour", "shaping:booked"})


def _pacing_step(limits: Limits, reason: str, shaper: Shaper) -> float:
    """Seconds between two messages the budget lets through, for the reason it said no."""
    if reason == "per_minute" and limits.per_minute:
        return 60.0 / limits.per_minute
    if reason == "per_hour" and limits.per_hour:
        return 3600.0 / limits.per_hour
    if reason in ("backoff", "backoff_recovery"):
        return 60.0 / max(shaper.policy.backoff.per_minute, 1)
    return 0.0


def _connection_key(route: Route) -> str:
    """Routes to the same MX hosts share a connection (and a destination): key them by host set."""
    if route.key.startswith("relay:") or not route.hosts:
        return route.key
    return "mx/" + ",".join(sorted(route.hosts)) + f":{route.port}"


def _host_addresses(host: str, route: Route) -> list[str]:
    """The addresses to try for an MX host: never private, loopback, link-local or reserved ones
    (the webhook policy, `pufferpost.http.address_allowed`), since a recipient domain's owner
    picks them; the operator's relay and a test world (PUFFERPOST_SMTP_ALLOW_PRIVATE) excepted."""
    if not route.resolve_with_dns_module:  # the operator's relay: infrastructure, like the database
        return [host]
    literal = http.literal_address(host)
    if literal is not None:
        candidates = [literal]
    else:
        answer = dns.addresses(host, cached=True)
        if answer.outcome != dns.Outcome.FOUND:
            raise _TryNextHost(classify(None, f"no address for MX host {host}: {answer.error or answer.outcome}", host))
        candidates = answer.records
    if settings.PUFFERPOST_SMTP_ALLOW_PRIVATE:
        return candidates
    allowed = [address for address in candidates if http.address_allowed(address)]
    if not allowed:
        raise _TryNextHost(
            classify(
                None,
                f"MX host {host} resolves only to private or reserved addresses ({', '.join(candidates)}); "
                "not connected",
                host,
            )
        )
    return allowed


def _open(
    route: Route,
    host: str,
    address: str,
    timeout: float,
    *,
    source_address: str = "",
    helo: str = "",
    tls_required: bool = False,
    verify: bool = True,
) -> tuple[smtplib.SMTP, dict]:
    """Connect, EHLO, STARTTLS and AUTH as the route asks; (connection, TLS facts).
    Raises _TryNextHost on any failure, _RetryUnverified when opportunistic TLS failed to verify.
    Under an enforced MTA-STS policy the certificate must verify for the MX host name, or nothing is sent."""
    enforced = route.enforced
    cls = smtplib.SMTP_SSL if route.security == "tls" else smtplib.SMTP
    kwargs = {"context": client_context()} if route.security == "tls" else {}
    if source_address:
        kwargs["source_address"] = (source_address, 0)
    smtp = cls(local_hostname=helo or helo_name(), timeout=timeout, **kwargs)
    tls = {"used": route.security == "tls", "version": "", "verified": route.security == "tls"}
    try:
        # smtplib takes the TLS server name from `_host`; keep the MX name, not the address.
        smtp._host = host
        code, banner = smtp.connect(address, route.port)
        if code != 220:
            raise _TryNextHost(classify(code, _text(banner), host))
        smtp.ehlo_or_helo_if_needed()
        must_encrypt = route.security == "starttls" or tls_required or enforced
        if route.security != "tls" and must_encrypt and not smtp.has_extn("starttls"):
            why = (
                f"the MTA-STS policy of {route.key} (enforce) requires TLS"
                if enforced
                else "TLS is required for this destination"
            )
            raise _TryNextHost(
                dataclasses.replace(
                    classify(None, f"{host} does not offer STARTTLS and {why}", host),
                    rule="mta-sts:starttls" if enforced else "tls_required",
                )
            )
        if route.security == "starttls" or (route.security == "opportunistic" and smtp.has_extn("starttls")):
            checked = route.security == "starttls" or verify or enforced
            # Opportunistic TLS to an MX (RFC 7435) unchecked: encrypt when offered, do not insist
            # on a certificate many MX hosts do not have for their own name.
            context = client_context(verify=checked)
            try:
                code, text = smtp.starttls(context=context)
            except ssl.SSLCertVerificationError as exc:
                if enforced:
                    raise _TryNextHost(
                        dataclasses.replace(
                            classify(
                                None,
                                f"the certificate of {host} did not verify ({exc.verify_message}); the MTA-STS "
                                f"policy of {route.key} (enforce) requires a verified one: not sent",
                                host,
                            ),
                            rule="mta-sts:certificate",
                        )
                    ) from None
                if route.security == "starttls":
                    raise
                _verification_failed(host)
                raise _RetryUnverified() from None
            if code != 220:
                raise _TryNextHost(classify(code, _text(text), host))
            tls = {"used": True, "version": smtp.sock.version() or "", "verified": checked}
            smtp.ehlo()
        elif route.security == "tls":
            tls["version"] = smtp.sock.version() or ""
        if route.username:
            smtp.login(route.username, route.password)
        return smtp, tls
    except (_TryNextHost, _RetryUnverified):
        _close_quietly(smtp)
        raise
    except smtplib.SMTPAuthenticationError as exc:
        _close_quietly(smtp)
        # Bad relay credentials are an operator's mistake: defer, so fixing them delivers the mail.
        raise _TryNextHost(
            classify(None, f"relay refused the credentials: {exc.smtp_code} {_text(exc.smtp_error)}", host)
        )
    except smtplib.SMTPResponseException as exc:
        _close_quietly(smtp)
        raise _TryNextHost(classify(exc.smtp_code if exc.smtp_code >= 400 else None, _text(exc.smtp_error), host))
    except (OSError, smtplib.SMTPException) as exc:
        _close_quietly(smtp)
        failure = classify(None, f"could not talk to {host} ({address}:{route.port}): {exc!r}", host)
        raise _TryNextHost(dataclasses.replace(failure, rule="unreachable"))


def _close_quietly(smtp: smtplib.SMTP, *, quit: bool = False) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        if quit:
            smtp.quit()
    with contextlib.suppress(OSError):
        smtp.close()


def _reusable(route: Route, connection: _Connection, limits: Limits) -> bool:
    """May this open connection carry one more message of the route (its lease held, under the
    destination's messages per connection, and fit for the route's TLS policy)?"""
    return bool(connection.lease) and connection.messages < limits.per_connection and _fits(route, connection)


def _fits(route: Route, connection: _Connection) -> bool:
    """May an open connection (opened for another domain with the same MX hosts) carry this route's
    mail? Not when the route's MTA-STS policy is enforced and the connection is not verified TLS to
    a host the policy lists."""
    if not route.enforced:
        return True
    return bool(connection.tls.get("used") and connection.tls.get("verified")) and route.host_allowed(connection.host)


class _ConnectionLost(Exception):
    """The server went away (or said 421) before any recipient was accepted: safe to retry."""

    def __init__(self, result: DeliveryResult):
        super().__init__(result.response_text)
        self.result = result


@dataclass
class Mailer:
    """A pool of SMTP connections, one per destination, reused across messages; close() QUITs them.

    Connections are keyed by MX host set, so recipient domains served by the same MX hosts share
    one. With a `shaper` (pufferpost.shaping), every message asks the destination's budget first:
    over it, nothing is sent and the recipients come back deferred with `wait` set; a throttling
    reply starts the destination's backoff; an unreachable host is skipped for a while. The
    connection binds to `source_address` (an egress address) and greets with `helo`.

    Not thread-safe: one per worker thread. Use as a context manager around a batch of sends.
    """

    timeout: float | None = None
    shaper: Shaper | None = None
    source_address: str = ""
    helo: str = ""
    _connections: dict[str, _Connection] = field(default_factory=dict)
    # Routes are looked up once per Mailer (one batch): a resolver timeout costs seconds, and
    # a batch is short next to any DNS TTL.
    _routes: dict[str, Route] = field(default_factory=dict)
    # destination → (monotonic deadline, the deferral): the budget said no; later messages of the
    # batch for it are answered without asking again.
    _waits: dict[str, tuple[float, DeliveryResult]] = field(default_factory=dict)
    # ticket → (lease, admission): a probe that found the destination's connection already open
    # took the message's admission on it, so its send asks Redis nothing more.
    _admitted: dict[str, tuple[str, Admission]] = field(default_factory=dict)
    _destinations: dict[tuple[str, ...], tuple[str, Limits]] = field(default_factory=dict)

    def __post_init__(self):
        if self.timeout is None:
            self.timeout = settings.PUFFERPOST_SMTP_TIMEOUT

    def __enter__(self) -> "Mailer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        for key in list(self._connections):
            connection = self._connections.pop(key)
            _close_quietly(connection.smtp, quit=True)
            self._release(connection)
        self._routes.clear()
        self._waits.clear()
        self._admitted.clear()
        self._destinations.clear()

    def send(
        self,
        *,
        mail_from: str,
        recipients: list[str],
        data: Payload,
        before_data: BeforeData | None = None,
        ticket: str = "",
    ) -> dict[str, DeliveryResult]:
        """Deliver `data` (CRLF bytes) to each recipient; the result for every one of them.

        Recipients are grouped by route (one group through a relay, one per domain direct to MX);
        each group is one SMTP transaction. When `data` maps each recipient to a copy of its own,
        each copy is a transaction of its own (one RCPT), one after the other on the group's
        connection; the group is still one message for the destination's budget.

        `before_data(recipients)` is the commit point of an exactly-once sender: it is called after
        the server answered DATA with 354 and before a byte of the payload goes out. Returning
        False abandons the transaction (the connection is closed without the final dot, so the
        server discards it) and those recipients are reported deferred; an exception it raises
        closes the connection the same way and propagates.

        `ticket` (the message's id) books a paced destination's next free slot for the message
        when its budget turns it away (see `pufferpost.shaping`).
        """
        check_line_endings(data)
        sender = ascii_address_or_none(mail_from)
        if sender is None:
            raise ValueError(f"envelope sender {mail_from!r} is not an ASCII address")
        results: dict[str, DeliveryResult] = {}
        by_route: dict[Route, list[str]] = defaultdict(list)
        wire: dict[str, str] = {}
        for recipient in recipients:
            ascii_address = ascii_address_or_none(recipient)
            if ascii_address is None:
                results[recipient] = classify(
                    553, f"{recipient}: non-ASCII mailbox names need SMTPUTF8, which is not supported"
                )
                continue
            wire[ascii_address] = recipient
            domain = ascii_address.rpartition("@")[2]
            by_route[self.route(domain)].append(ascii_address)
        if not isinstance(data, bytes):
            data = {ascii_address: data[recipient] for ascii_address, recipient in wire.items()}
        for route, group in by_route.items():
            if route.failure is not None:
                outcome = dict.fromkeys(group, route.failure)
            elif self.shaper is None:
                outcome = self._send_route(route, sender, group, data, before_data)
            else:
                outcome = self._send_shaped(route, sender, group, data, before_data, ticket)
            results.update({wire[address]: result for address, result in outcome.items()})
        return results

    def route(self, domain: str) -> Route:
        """The (cached) route for a recipient domain."""
        domain = domain.lower()
        if domain not in self._routes:
            self._routes[domain] = resolve_route(domain)
        return self._routes[domain]

    def destination(self, route: Route) -> tuple[str, Limits]:
        """The shaping destination a route belongs to (its MX rollup) and its limits."""
        if self.shaper is None:
            return _connection_key(route), Limits()
        # Asked three times per message (ordering, probe, send); the shaper's policy is fixed for
        # its life, so one batch matches each set of MX hosts against the rules once.
        found = self._destinations.get(route.hosts)
        if found is None:
            found = self._destinations[route.hosts] = self.shaper.destination(route.hosts)
        return found

    def _send_route(self, route: Route, mail_from: str, recipients: list[str], data: Payload, before_data=None):
        key = _connection_key(route)
        connection = self._connections.get(key)
        if connection is not None and not _fits(route, connection):
            self._drop(key, quit=True)
            connection = None
        if connection is not None:
            try:
                return self._transactions(connection, mail_from, recipients, data, before_data)
            except _ConnectionLost:
                # The server closed an idle connection or limits messages per connection.
                self._drop(key)
        try:
            connection = self._connect(route)
        except _TryNextHost as exc:
            return dict.fromkeys(recipients, exc.result)
        try:
            return self._transactions(connection, mail_from, recipients, data, before_data)
        except _ConnectionLost as exc:
            self._drop(key)
            return dict.fromkeys(recipients, exc.result)

    # -- shaped sending --

    def probe(self, recipient: str, *, ticket: str) -> DeliveryResult | None:
        """The deferral `recipient`'s message would get from its destination's budget now (nothing
        sent, a paced message booked its slot), or None when it may go: asked before a message is
        rendered and signed, so mail that has to wait costs one Redis round trip, not a build.
        On a connection the batch already holds, the probe is the admission itself."""
        if self.shaper is None:
            return None
        ascii_address = ascii_address_or_none(recipient)
        if ascii_address is None:
            return None
        route = self.route(ascii_address.rpartition("@")[2])
        if route.failure is not None:
            return None
        destination, limits = self.destination(route)
        known = self._known_wait(destination, ticket)
        if known is not None:
            return known
        connection = self._connections.get(_connection_key(route))
        if ticket and connection is not None and _reusable(route, connection, limits):
            # It would go on a connection this batch holds: admit it on that lease now (what its
            # send would ask), so the probe is the message's only round trip to the budget. If it
            # is not sent after all (it fails to build), its rate slot goes unused: never over.
            admission = self.shaper.admit(destination, limits, connection.lease, new_connection=False, ticket=ticket)
            if admission.ok:
                self._admitted[ticket] = (connection.lease, admission)
                return None
            if admission.reason == "lease_lost":
                return None  # the send takes a new connection and asks again
        else:
            admission = self.shaper.probe(destination, limits, ticket)
        if admission.ok:
            return None
        return self._wait(
            destination, admission.reason, admission.wait, _pacing_step(limits, admission.reason, self.shaper)
        )

    def _known_wait(self, destination: str, ticket: str) -> DeliveryResult | None:
        """A wait this batch already learnt for the destination (a backoff, full connection slots),
        answered without asking Redis again; paced messages with a ticket always ask (they book)."""
        now = time.monotonic()
        waiting = self._waits.get(destination)
        if waiting is None or waiting[0] <= now:
            return None
        deadline, result, step = waiting
        if ticket and result.rule in _BOOKING_RULES:
            return None
        # Each message turned away comes back one pacing step after the one before it, so a
        # backlog returns at the rate the budget allows instead of all at once.
        self._waits[destination] = (deadline + step, result, step)
        return dataclasses.replace(result, wait=deadline + step - now)

    def _send_shaped(
        self, route: Route, mail_from: str, recipients: list[str], data: Payload, before_data=None, ticket: str = ""
    ):
        shaper = self.shaper
        key = _connection_key(route)
        destination, limits = self.destination(route)
        self._close_idle(keep=key)
        known = self._known_wait(destination, ticket)
        if known is not None:
            return dict.fromkeys(recipients, known)
        connection = self._connections.get(key)
        if connection is not None and not _reusable(route, connection, limits):
            self._drop(key, quit=True)
            connection = None
        admitted = self._admitted.pop(ticket, None) if ticket else None
        if admitted is not None and connection is not None and connection.lease == admitted[0]:
            lease, admission = admitted  # the probe admitted it on this very connection
        else:
            for _ in range(2):  # a second pass when our lease vanished (Redis state lost)
                lease = connection.lease if connection is not None else uuid.uuid4().hex
                admission = shaper.admit(destination, limits, lease, new_connection=connection is None, ticket=ticket)
                if admission.ok or admission.reason != "lease_lost" or connection is None:
                    break
                self._drop(key, quit=True)
                connection = None
        if not admission.ok:
            step = _pacing_step(limits, admission.reason, shaper)
            return dict.fromkeys(recipients, self._wait(destination, admission.reason, admission.wait, step))
        if connection is None:
            skipped = {h for h in route.hosts if shaper.host_skipped(h)}
            if skipped and skipped >= set(route.hosts):
                shaper.release(destination, lease)
                wait = self._wait(destination, "hosts_down", settings.PUFFERPOST_SHAPING_HOST_SKIP / 2)
                return dict.fromkeys(recipients, dataclasses.replace(wait, rule="circuit:hosts_down"))
            try:
                connection = self._connect(route, tls_required=limits.tls_required, skip=skipped)
            except _TryNextHost as exc:
                shaper.release(destination, lease)
                results = dict.fromkeys(recipients, exc.result)
                return self._observe(destination, None, results)
            connection.destination, connection.lease = destination, lease
        connection.last_used = time.monotonic()
        try:
            results = self._transactions(connection, mail_from, recipients, data, before_data)
        except _ConnectionLost as exc:
            self._drop(key)
            results = dict.fromkeys(recipients, exc.result)
        connection.last_used = time.monotonic()
        tls = dict(connection.tls)
        sts = route.sts_record(connection.host, connection.tls)
        if sts is not None:
            tls["mta_sts"] = sts
        results = {r: dataclasses.replace(v, tls=tls, destination=destination) for r, v in results.items()}
        return self._observe(destination, connection, results, recovering=admission.reason == "backoff_recovery")

    def _wait(self, destination: str, reason: str, wait: float, step: float = 0.0) -> DeliveryResult:
        if f"shaping:{reason}" not in _BOOKING_RULES:
            # Jitter so the messages a budget turned away do not all come back in the same instant
            # (a booked slot is exact: the schedule already spreads them).
            wait = max(wait, 0.2) * random.uniform(1.0, 1.25)
        result = DeliveryResult(
            Outcome.DEFERRED,
            None,
            f"waiting for the budget of {destination} ({reason.replace('_', ' ')})",
            "",
            wait=wait,
            rule=f"shaping:{reason}",
            destination=destination,
        )
        self._waits[destination] = (time.monotonic() + wait, result, step)
        return result

    def _observe(
        self,
        destination: str,
        connection: "_Connection | None",
        results: dict[str, DeliveryResult],
        *,
        recovering: bool = False,
    ):
        """Feed the replies to the shaper: throttles start a backoff, greylisting sets the retry, a
        dead host is skipped, deliveries walk a backoff back (`recovering`: the admission said the
        destination is coming back from one; otherwise there is nothing to walk back and no round
        trip is spent on it)."""
        shaper = self.shaper
        delivered = False
        out = {}
        for recipient, result in results.items():
            if result.outcome == Outcome.DELIVERED:
                delivered = True
            elif result.outcome == Outcome.DEFERRED and result.wait is None:
                reaction = shaper.policy.reaction(result.code, result.response_text)
                if reaction is not None:
                    kind, pattern, seconds = reaction
                    if kind == "greylist":
                        retry = seconds if seconds is not None else settings.PUFFERPOST_GREYLIST_RETRY
                        result = dataclasses.replace(result, rule=f"greylist:{pattern}", retry_after=retry)
                    else:
                        pause = shaper.throttled(destination)
                        log.warning("%s throttled (%s): backing off %.0fs", destination, pattern, pause)
                        result = dataclasses.replace(result, rule=f"throttle:{pattern}", retry_after=pause)
                        self._waits[destination] = (
                            time.monotonic() + pause,
                            dataclasses.replace(result, wait=pause, rule="shaping:backoff"),
                            60.0 / max(shaper.policy.backoff.per_minute, 1),
                        )
                        if connection is not None:
                            self._drop_connection(connection)
                            connection = None
            out[recipient] = result
        if delivered and recovering:
            shaper.delivered(destination)
        return out

    def _close_idle(self, *, keep: str) -> None:
        """Close connections idle past PUFFERPOST_SHAPING_IDLE_CLOSE: their slots serve other workers."""
        limit = time.monotonic() - settings.PUFFERPOST_SHAPING_IDLE_CLOSE
        for key, connection in list(self._connections.items()):
            if key != keep and connection.last_used < limit:
                self._drop(key, quit=True)

    def _release(self, connection: "_Connection") -> None:
        if self.shaper is not None and connection.lease:
            self.shaper.release(connection.destination, connection.lease)
            connection.lease = ""

    def _connect(self, route: Route, *, tls_required: bool = False, skip=frozenset()) -> _Connection:
        last = None
        for host in route.hosts:
            if host in skip or not route.host_allowed(host):
                continue
            try:
                for address in _host_addresses(host, route):
                    try:
                        smtp, tls = self._open(route, host, address, tls_required)
                    except _TryNextHost as exc:
                        last = exc
                        log.info("smtp: %s", exc.result.response_text)
                        if exc.result.rule == "unreachable" and self.shaper is not None:
                            self.shaper.host_failed(host)
                        continue
                    connection = _Connection(smtp=smtp, host=host, tls=tls)
                    self._connections[_connection_key(route)] = connection
                    return connection
            except _TryNextHost as exc:
                last = exc
        raise last or _TryNextHost(classify(None, "no host to deliver to"))

    def _open(self, route: Route, host: str, address: str, tls_required: bool):
        options = {"source_address": self.source_address, "helo": self.helo, "tls_required": tls_required}
        try:
            verify = route.enforced or not _verification_known_to_fail(host)
            return _open(route, host, address, self.timeout, verify=verify, **options)
        except _RetryUnverified:
            return _open(route, host, address, self.timeout, verify=False, **options)

    def _drop(self, key: str, *, quit: bool = False) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            _close_quietly(connection.smtp, quit=quit)
            self._release(connection)

    def _transactions(self, connection: _Connection, mail_from: str, recipients: list[str], data: Payload, before_data):
        """One transaction for the group, or one per recipient when each has a copy of its own.

        A copy whose connection broke before any copy of the group was answered raises
        `_ConnectionLost` (the caller reconnects and sends the group again: nothing was sent); once
        a copy was answered, the rest are deferred with the reason, never sent twice.
        """
        if isinstance(data, bytes):
            return self._transaction(connection, mail_from, recipients, data, before_data)
        results: dict[str, DeliveryResult] = {}
        for index, recipient in enumerate(recipients):
            if results and connection not in self._connections.values():
                # The previous copy's transaction closed the connection (a 421, a timeout).
                lost = classify(
                    None, f"{connection.host} closed the connection after the previous copy", connection.host
                )
                results.update(dict.fromkeys(recipients[index:], lost))
                break
            try:
                results.update(self._transaction(connection, mail_from, [recipient], data[recipient], before_data))
            except _ConnectionLost as exc:
                if not results:
                    raise
                self._drop_connection(connection)
                results.update(dict.fromkeys(recipients[index:], exc.result))
                break
        return results

    def _transaction(
        self, connection: _Connection, mail_from: str, recipients: list[str], data: bytes, before_data=None
    ):
        smtp, host = connection.smtp, connection.host
        results: dict[str, DeliveryResult] = {}
        try:
            # No RSET first: a transaction that got its final reply left the session clean (RFC
            # 5321 4.1.1.4), and every one that ended early reset it then. A server that dropped
            # the idle connection answers MAIL with 421 or not at all: lost, so safe to resend.
            connection.messages += 1
            code, text = smtp.mail(mail_from)
            if code == 421:
                raise _ConnectionLost(classify(code, _text(text), host))
            if code != 250:
                smtp.rset()
                return dict.fromkeys(recipients, classify(code, _text(text), host))
            accepted = []
            for recipient in recipients:
                code, text = smtp.rcpt(recipient)
                if code == 421 and not accepted:
                    raise _ConnectionLost(classify(code, _text(text), host))
                results[recipient] = classify(code, _text(text), host)
                if code in (250, 251):
                    accepted.append(recipient)
            if not accepted:
                smtp.rset()
                return results
            if before_data is None:
                try:
                    code, text = smtp.data(data)
                except smtplib.SMTPDataError as exc:  # DATA itself refused: the envelope is still open
                    code, text = exc.smtp_code, exc.smtp_error
                    if code != 421:
                        smtp.rset()
            else:
                code, text = self._data_after_commit_point(connection, data, before_data, accepted)
                if code is None:
                    abandoned = classify(None, text, host)
                    return {r: abandoned if r in accepted else results[r] for r in recipients}
            result = classify(code, _text(text), host)
            for recipient in accepted:
                results[recipient] = result
            if code == 421:
                self._drop_connection(connection)
            return results
        except smtplib.SMTPServerDisconnected as exc:
            self._drop_connection(connection)
            if not results:
                raise _ConnectionLost(classify(None, f"{host} closed the connection: {exc}", host)) from exc
            return self._defer_rest(recipients, results, f"{host} closed the connection: {exc}", host)
        except (OSError, smtplib.SMTPException) as exc:
            # A timeout or reset halfway: the server's state is unknown, so never reuse the connection.
            self._drop_connection(connection)
            return self._defer_rest(recipients, results, f"{host}: {exc!r}", host)

    def _data_after_commit_point(self, connection: _Connection, data: bytes, before_data, accepted: list[str]):
        """smtplib's `data()` split at the 354: `before_data` runs between the command and the payload.

        Returns (None, reason) when `before_data` declined, after closing the connection.
        """
        smtp = connection.smtp
        smtp.putcmd("data")
        code, text = smtp.getreply()
        if code != 354:
            if code != 421:
                smtp.rset()  # DATA itself refused: close the envelope for the next transaction
            return code, text
        try:
            go_ahead = before_data(list(accepted))
        except BaseException:
            self._drop_connection(connection)
            raise
        if not go_ahead:
            self._drop_connection(connection)
            return None, "not sent: the commit point declined (the message is no longer this sender's)"
        payload = re.sub(rb"(?m)^\.", b"..", data)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        smtp.send(payload + b".\r\n")
        return smtp.getreply()

    def _drop_connection(self, connection: _Connection) -> None:
        for key, value in list(self._connections.items()):
            if value is connection:
                self._drop(key)
        _close_quietly(connection.smtp)
        self._release(connection)

    @staticmethod
    def _defer_rest(recipients, results, text, host):
        """Anything not answered definitively (or accepted at RCPT but without a DATA reply) is deferred."""
        deferred = classify(None, text, host)
        return {
            r: results[r] if r in results and results[r].outcome != Outcome.DELIVERED else deferred for r in recipients
        }


def check_line_endings(data: Payload) -> None:
    """Refuse a payload (or any copy of it) with a bare CR or LF: it must be CRLF throughout."""
    for blob in [data] if isinstance(data, bytes) else data.values():
        stripped = blob.replace(b"\r\n", b"")
        if b"\n" in stripped or b"\r" in stripped:
            raise ValueError("message data has bare LF or CR line endings; serialise it with email.policy.SMTP")


def send_message(*, mail_from: str, recipients: list[str], data: bytes) -> dict[str, DeliveryResult]:
    """One message over fresh connections (closed afterwards); use a `Mailer` for batches."""
    with Mailer() as mailer:
        return mailer.send(mail_from=mail_from, recipients=recipients, data=data)
