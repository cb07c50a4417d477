"""A small SMTP server on loopback that records what it receives (tests and `make up`, never production).

What it answers each recipient is decided by a rule function, so the same server is the mail
catcher of `make up` (bounce…@ refused, defer…@ deferred) and the configurable sink of the tests.
"""

import asyncio
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ACCEPT = "accept"
REFUSE = "refuse"  # 550: a permanent failure, the message bounces
DEFER = "defer"  # 451: a temporary failure, the sender retries
STALL = "stall"  # answer RCPT only after `seconds`: drills client timeouts
REPLY = "reply"  # answer RCPT with the literal `reply`, e.g. "421 4.3.2 Shutting down"


@dataclass(frozen=True)
class Rule:
    action: str = ACCEPT
    seconds: float = 0.0
    reply: str = ""


@dataclass
class Received:
    """One accepted DATA: the envelope and the bytes exactly as they arrived (CRLF, dot-unstuffed)."""

    peer: tuple
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None = None
    tls: bool = False


def accept_all(address: str) -> Rule:
    return Rule()


def by_local_part_prefix(address: str) -> Rule:
    """The mail catcher's rule: `bounce…@` is refused, `defer…@` deferred, everything else accepted."""
    local = address.rpartition("@")[0].lower()
    if local.startswith("bounce"):
        return Rule(REFUSE)
    if local.startswith("defer"):
        return Rule(DEFER)
    return Rule()


@dataclass
class RecordingHandler:
    rule_for: Callable[[str], Rule] = accept_all
    on_message: Callable[[Received], None] | None = None
    # Long-running servers hand messages to `on_message` and keep none in memory.
    keep: bool = True
    received: list[Received] = field(default_factory=list)
    # Client (host, port) of every connection that got as far as RCPT: one per SMTP session.
    peers: list[tuple] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            if session.peer not in self.peers:
                self.peers.append(session.peer)
        rule = self.rule_for(address)
        if rule.action == STALL:
            await asyncio.sleep(rule.seconds)
        elif rule.action == REPLY:
            return rule.reply
        elif rule.action == REFUSE:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        elif rule.action == DEFER:
            return f"451 4.2.1 <{address}>: Mailbox temporarily unavailable, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        item = Received(
            peer=session.peer,
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=envelope.original_content or envelope.content,
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            tls=session.ssl is not None,
        )
        if self.keep:
            with self._lock:
                self.received.append(item)
        if self.on_message is not None:
            self.on_message(item)
        return "250 2.0.0 OK: queued"

    @property
    def connections(self) -> int:
        return len(self.peers)


def password_authenticator(username: str, password: str):
    """An aiosmtpd authenticator accepting exactly one LOGIN/PLAIN user."""

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == username.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


class LoopbackSmtpServer(Controller):
    """aiosmtpd's threaded Controller that can listen on port 0 (a free port, read `.port` after start)."""

    def __init__(self, handler, *, host: str = "127.0.0.1", port: int = 0, **smtp_kwargs):
        smtp_kwargs.setdefault("enable_SMTPUTF8", True)
        # The name in the greeting; set so aiosmtpd does not call getfqdn() (slow without DNS).
        smtp_kwargs.setdefault("server_hostname", "localhost")
        super().__init__(handler, hostname=host, port=port, **smtp_kwargs)

    def factory(self):
        # AUTH without TLS is what a loopback test relay wants; aiosmtpd warns about it on every
        # connection.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return super().factory()

    async def _bind(self):
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _create_server(self):
        return self._bind()

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"
