"""Every SMTP conversation the platform has goes through here.

Routing: through PUFFERPOST_SMTP_RELAY when it is set, else straight to each recipient domain's
MX hosts (looked up with `pufferpost.dns`, host addresses included, so tests and `make up` can
point all of it at a loopback DNS server) on PUFFERPOST_SMTP_PORT.

`Mailer` keeps one open connection per destination and reuses it for the next message (RSET
in between): a new TCP + EHLO per message halves throughput on loopback and costs far more
against a remote MX (the machine ceilings in bench/README.md).

Outcomes are per recipient: `delivered` (2xx after DATA), `bounced` (5xx, or a domain that
cannot receive mail: NXDOMAIN, null MX, no address at all) and `deferred` (4xx, 421, refused
connections, timeouts, DNS errors — worth retrying later).
"""

import contextlib
import functools
import ipaddress
import logging
import random
import re
import smtplib
import socket
import ssl
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from urllib.parse import unquote, urlsplit

from django.conf import settings

from pufferpost import dns

log = logging.getLogger(__name__)

# Called with the recipients the server accepted, right before the DATA payload; False abandons.
BeforeData = Callable[[list[str]], bool]

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
    answer = dns.mx(domain)
    if answer.outcome == dns.Outcome.FOUND:
        if any(host == "." for _, host in answer.records):
            return Route(domain, failure=classify(556, f"{domain} does not accept mail (null MX, RFC 7505)"))
        hosts = []
        # Equal preferences share the load in random order, as RFC 5321 asks.
        for _, group in groupby(answer.records, key=lambda r: r[0]):
            same = [host for _, host in group]
            random.shuffle(same)
            hosts.extend(same)
        return Route(domain, hosts=tuple(hosts), port=port)
    if answer.outcome == dns.Outcome.NXDOMAIN:
        return Route(domain, failure=classify(550, f"{domain} does not exist (NXDOMAIN)"))
    if answer.outcome == dns.Outcome.ERROR:
        return Route(domain, failure=classify(None, f"MX lookup failed: {answer.error}"))
    # No MX record: the domain itself is the implicit MX when it has an address.
    implicit = dns.addresses(domain)
    if implicit.outcome == dns.Outcome.FOUND:
        return Route(domain, hosts=(domain,), port=port)
    if implicit.outcome == dns.Outcome.ERROR:
        return Route(domain, failure=classify(None, f"address lookup failed: {implicit.error}"))
    return Route(domain, failure=classify(550, f"{domain} has no MX and no address record"))


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


def _host_addresses(host: str, route: Route) -> list[str]:
    if not route.resolve_with_dns_module:
        return [host]
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    answer = dns.addresses(host)
    if answer.outcome != dns.Outcome.FOUND:
        raise _TryNextHost(classify(None, f"no address for MX host {host}: {answer.error or answer.outcome}", host))
    return answer.records


def _open(route: Route, host: str, address: str, timeout: float) -> smtplib.SMTP:
    """Connect, EHLO, STARTTLS and AUTH as the route asks; raises _TryNextHost on any failure."""
    cls = smtplib.SMTP_SSL if route.security == "tls" else smtplib.SMTP
    kwargs = {"context": ssl.create_default_context()} if route.security == "tls" else {}
    smtp = cls(local_hostname=helo_name(), timeout=timeout, **kwargs)
    try:
        # smtplib takes the TLS server name from `_host`; keep the MX name, not the address.
        smtp._host = host
        code, banner = smtp.connect(address, route.port)
        if code != 220:
            raise _TryNextHost(classify(code, _text(banner), host))
        smtp.ehlo_or_helo_if_needed()
        if route.security == "starttls" or (route.security == "opportunistic" and smtp.has_extn("starttls")):
            context = ssl.create_default_context()
            if route.security == "opportunistic":
                # Opportunistic TLS to an MX (RFC 7435): encrypt when offered, do not insist on
                # a certificate most MX hosts do not have for their own name.
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            code, text = smtp.starttls(context=context)
            if code != 220:
                raise _TryNextHost(classify(code, _text(text), host))
            smtp.ehlo()
        if route.username:
            smtp.login(route.username, route.password)
        return smtp
    except _TryNextHost:
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
        raise _TryNextHost(classify(None, f"could not talk to {host} ({address}:{route.port}): {exc!r}", host))


def _close_quietly(smtp: smtplib.SMTP, *, quit: bool = False) -> None:
    with contextlib.suppress(OSError, smtplib.SMTPException):
        if quit:
            smtp.quit()
    with contextlib.suppress(OSError):
        smtp.close()


class _ConnectionLost(Exception):
    """The server went away (or said 421) before any recipient was accepted: safe to retry."""

    def __init__(self, result: DeliveryResult):
        super().__init__(result.response_text)
        self.result = result


@dataclass
class Mailer:
    """A pool of SMTP connections, one per destination, reused across messages; close() QUITs them.

    Not thread-safe: one per worker thread. Use as a context manager around a batch of sends.
    """

    timeout: float | None = None
    _connections: dict[str, _Connection] = field(default_factory=dict)
    # Routes are looked up once per Mailer (one batch): a resolver timeout costs seconds, and
    # a batch is short next to any DNS TTL.
    _routes: dict[str, Route] = field(default_factory=dict)

    def __post_init__(self):
        if self.timeout is None:
            self.timeout = settings.PUFFERPOST_SMTP_TIMEOUT

    def __enter__(self) -> "Mailer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        for connection in self._connections.values():
            _close_quietly(connection.smtp, quit=True)
        self._connections.clear()
        self._routes.clear()

    def send(
        self, *, mail_from: str, recipients: list[str], data: bytes, before_data: BeforeData | None = None
    ) -> dict[str, DeliveryResult]:
        """Deliver `data` (CRLF bytes) to each recipient; the result for every one of them.

        Recipients are grouped by route (one group through a relay, one per domain direct to MX);
        each group is one SMTP transaction.

        `before_data(recipients)` is the commit point of an exactly-once sender: it is called after
        the server answered DATA with 354 and before a byte of the payload goes out. Returning
        False abandons the transaction (the connection is closed without the final dot, so the
        server discards it) and those recipients are reported deferred; an exception it raises
        closes the connection the same way and propagates.
        """
        stripped = data.replace(b"\r\n", b"")
        if b"\n" in stripped or b"\r" in stripped:
            raise ValueError("message data has bare LF or CR line endings; serialise it with email.policy.SMTP")
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
            if domain not in self._routes:
                self._routes[domain] = resolve_route(domain)
            by_route[self._routes[domain]].append(ascii_address)
        for route, group in by_route.items():
            if route.failure is not None:
                outcome = dict.fromkeys(group, route.failure)
            else:
                outcome = self._send_route(route, sender, group, data, before_data)
            results.update({wire[address]: result for address, result in outcome.items()})
        return results

    def _send_route(self, route: Route, mail_from: str, recipients: list[str], data: bytes, before_data=None):
        connection = self._connections.get(route.key)
        if connection is not None:
            try:
                return self._transaction(connection, mail_from, recipients, data, before_data)
            except _ConnectionLost:
                # The server closed an idle connection or limits messages per connection.
                self._drop(route.key)
        try:
            connection = self._connect(route)
        except _TryNextHost as exc:
            return dict.fromkeys(recipients, exc.result)
        try:
            return self._transaction(connection, mail_from, recipients, data, before_data)
        except _ConnectionLost as exc:
            self._drop(route.key)
            return dict.fromkeys(recipients, exc.result)

    def _connect(self, route: Route) -> _Connection:
        last = None
        for host in route.hosts:
            try:
                for address in _host_addresses(host, route):
                    try:
                        smtp = _open(route, host, address, self.timeout)
                    except _TryNextHost as exc:
                        last = exc
                        log.info("smtp: %s", exc.result.response_text)
                        continue
                    connection = _Connection(smtp=smtp, host=host)
                    self._connections[route.key] = connection
                    return connection
            except _TryNextHost as exc:
                last = exc
        raise last or _TryNextHost(classify(None, "no host to deliver to"))

    def _drop(self, key: str) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            _close_quietly(connection.smtp)

    def _transaction(
        self, connection: _Connection, mail_from: str, recipients: list[str], data: bytes, before_data=None
    ):
        smtp, host = connection.smtp, connection.host
        results: dict[str, DeliveryResult] = {}
        try:
            if connection.messages:
                code, text = smtp.rset()
                if code != 250:
                    raise _ConnectionLost(classify(None, f"RSET answered {code} {_text(text)}", host))
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
                except smtplib.SMTPDataError as exc:
                    code, text = exc.smtp_code, exc.smtp_error
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

    @staticmethod
    def _defer_rest(recipients, results, text, host):
        """Anything not answered definitively (or accepted at RCPT but without a DATA reply) is deferred."""
        deferred = classify(None, text, host)
        return {
            r: results[r] if r in results and results[r].outcome != Outcome.DELIVERED else deferred for r in recipients
        }


def send_message(*, mail_from: str, recipients: list[str], data: bytes) -> dict[str, DeliveryResult]:
    """One message over fresh connections (closed afterwards); use a `Mailer` for batches."""
    with Mailer() as mailer:
        return mailer.send(mail_from=mail_from, recipients=recipients, data=data)
