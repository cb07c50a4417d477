"""A receiving world on loopback: MX hosts that push back like the big providers (tests, the bench, `make up`).

Each `Provider` is a set of MX host names on its own loopback address (127.0.20.N, …; Linux
routes all of 127/8 to `lo`), all on one port (the platform's PUFFERPOST_SMTP_PORT), found through
the loopback DNS: the world publishes an MX record for every recipient domain and an A record for
every MX host name. Many recipient domains share one provider's MX hosts, as Google Workspace
domains do. MX host names look like the real providers' (`aspmx.l.google.com`, …) so the shaping
presets that match them are what gets tested; they resolve only in the loopback zone.

What a provider can be told to do, per client address (the sending IP), as receivers do:
- `max_connections`: more concurrent connections than this → `421 4.7.0 Too many connections`;
- `max_messages_per_connection`: then `421` and close;
- `rate_per_minute`: more messages than this in a sliding minute → `throttle_reply` (a
  provider's own text) to everything from that address for `penalty_seconds`;
- `greylist_seconds`: the first try of a (client, sender, recipient) triplet gets `451 4.7.1`,
  accepted once that many seconds have passed;
- `require_tls`: `530 5.7.0 Must issue a STARTTLS command first` before STARTTLS (certificates
  from a `TestCA` the clients are told to trust);
- `tempfail_rate` / `permfail_rate` (seeded, so reproducible), `banner_delay`, `data_delay`;
- `reputation_blocked` / `auth_blocked`: sender addresses or domains refused with
  `550 5.7.1 … very low reputation …` / `550 5.7.515 …`.

MTA-STS (RFC 8461): `World.mta_sts(domain, mode=…, mx=[…])` publishes the domain's
`_mta-sts` TXT record and serves its policy from a loopback HTTPS `PolicyServer` (certificates
from the same test CA, one per `mta-sts.<domain>` name by SNI) at `World.policy_port`; the
server can serve any status, media type or body, and be stopped and started again.

Everything is recorded in `World.log`: every connection (client address, start, end, TLS and its
version, whether it was refused), every accepted transaction, every reply, so tests assert on how
the platform behaved, not only on outcomes.
"""

import asyncio
import bisect
import contextlib
import http.server
import itertools
import random
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP

from pufferpost.localdev.test_ca import TestCA

TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your IP, try again later"
TOO_MANY_MESSAGES = "421 4.7.0 Too many messages on this connection, closing"
STARTTLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
GREYLISTED = "451 4.7.1 Greylisted, please try again in {seconds:g} seconds"
TEMPFAIL = "451 4.3.0 Temporary system problem, try again later"
PERMFAIL = "550 5.1.1 The email account that you tried to reach does not exist"
REPUTATION_BLOCK = (
    "550 5.7.1 Unfortunately, messages from [{client}] weren't sent. Our systems have detected "
    "that this sender has a very low reputation"
)
AUTH_BLOCK = "550 5.7.515 Access denied, sending domain {domain} doesn't meet the required authentication level"

# Multi-line, as Gmail sends it (RFC 5321 §4.2.1: `code-` continues, `code ` ends).
GOOGLE_THROTTLE = (
    "421-4.7.28 [{client}] Our system has detected an unusual rate of unsolicited mail\r\n"
    "421-4.7.28 originating from your IP address. To protect our users from spam, mail sent\r\n"
    "421 4.7.28 from your IP address has been temporarily rate limited. - world"
)
MICROSOFT_THROTTLE = "451 4.7.650 The mail server [{client}] has been temporarily rate limited due to IP reputation"
YAHOO_THROTTLE = "421 4.7.0 [TSS04] Messages from {client} temporarily deferred due to unexpected volume"


@dataclass
class Provider:
    """One receiving provider: its MX host names (all on one address) and how it pushes back."""

    name: str
    mx_hosts: list[str]
    domains: list[str] = field(default_factory=list)
    max_connections: int | None = None
    max_messages_per_connection: int | None = None
    rate_per_minute: int | None = None
    throttle_reply: str = "421 4.7.0 Try again later, closing connection"
    penalty_seconds: float = 60.0
    greylist_seconds: float | None = None
    require_tls: bool = False
    tls: bool = True
    tempfail_rate: float = 0.0
    permfail_rate: float = 0.0
    banner_delay: float = 0.0
    data_delay: float = 0.0
    reputation_blocked: set[str] = field(default_factory=set)
    auth_blocked: set[str] = field(default_factory=set)
    address: str = ""  # set by the world


@dataclass
class Connection:
    id: int
    provider: str
    host: str  # the address the client connected to
    client: str
    started: float  # time.monotonic()
    ended: float | None = None
    refused: str = ""  # the reply when the world turned the connection away at the banner
    tls: bool = False
    tls_version: str = ""
    messages: int = 0
    helo: str = ""


@dataclass
class Transaction:
    connection: int
    provider: str
    client: str
    mail_from: str
    rcpt_tos: list[str]
    at: float
    tls: bool
    content: bytes = b""


@dataclass
class Reply:
    connection: int
    provider: str
    client: str
    text: str
    at: float


class Log:
    """Thread-safe record of everything the world saw; read it after (or while) the platform sends."""

    def __init__(self, keep_content: bool = True):
        self._lock = threading.Lock()
        self.keep_content = keep_content
        self.connections: list[Connection] = []
        self.transactions: list[Transaction] = []
        self.replies: list[Reply] = []
        self._ids = itertools.count(1)

    def connection_open(self, provider: str, host: str, client: str) -> Connection:
        with self._lock:
            conn = Connection(next(self._ids), provider, host, client, time.monotonic())
            self.connections.append(conn)
            return conn

    def add(self, item) -> None:
        with self._lock:
            (self.transactions if isinstance(item, Transaction) else self.replies).append(item)

    def clear(self) -> None:
        with self._lock:
            self.connections.clear()
            self.transactions.clear()
            self.replies.clear()

    # -- assertions read these --

    def accepted(self, provider: str | None = None) -> list[Transaction]:
        return [t for t in list(self.transactions) if provider in (None, t.provider)]

    def replies_matching(self, text: str, provider: str | None = None) -> list[Reply]:
        return [r for r in list(self.replies) if text in r.text and provider in (None, r.provider)]

    def max_concurrent(self, provider: str, client: str | None = None) -> int:
        """The most connections the world accepted at once from `client` (any client: per client,
        the highest), refused ones not counted."""
        by_client: dict[str, list[tuple[float, int]]] = defaultdict(list)
        now = time.monotonic()
        for c in list(self.connections):
            if c.provider != provider or c.refused or client not in (None, c.client):
                continue
            by_client[c.client] += [(c.started, 1), (c.ended if c.ended is not None else now, -1)]
        best = 0
        for events in by_client.values():
            level = 0
            for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
                level += delta
                best = max(best, level)
        return best

    def max_messages_per_connection(self, provider: str) -> int:
        return max((c.messages for c in list(self.connections) if c.provider == provider), default=0)

    def max_per_minute(self, provider: str, client: str | None = None) -> int:
        """The most messages accepted within any sliding 60 s from one client address."""
        by_client: dict[str, list[float]] = defaultdict(list)
        for t in self.accepted(provider):
            if client in (None, t.client):
                by_client[t.client].append(t.at)
        best = 0
        for times in by_client.values():
            times.sort()
            for i, start in enumerate(times):
                best = max(best, bisect.bisect_left(times, start + 60.0) - i)
        return best

    def plaintext_transactions(self, provider: str) -> list[Transaction]:
        return [t for t in self.accepted(provider) if not t.tls]


class _State:
    """Per provider and client address: open connections, recent messages, penalty, greylist."""

    def __init__(self, provider: Provider, seed: int):
        self.provider = provider
        self.open: dict[str, int] = defaultdict(int)
        self.recent: dict[str, deque] = defaultdict(deque)
        self.penalty_until: dict[str, float] = {}
        self.greylist: dict[tuple[str, str, str], float] = {}
        self.random = random.Random(seed)


class _WorldSMTP(SMTP):
    """aiosmtpd's SMTP session with the provider's connection-level behaviour and a reply log."""

    def __init__(self, world: "World", state: _State, hostname: str, tls_context, **kwargs):
        self.world, self.state = world, state
        self.record: Connection | None = None
        super().__init__(
            _Handler(world, state),
            hostname=hostname,
            ident="ESMTP world",
            tls_context=tls_context,
            require_starttls=bool(tls_context) and state.provider.require_tls,
            enable_SMTPUTF8=True,
            **kwargs,
        )

    def connection_made(self, transport):
        tls_upgrade = self._original_transport is not None
        super().connection_made(transport)
        if tls_upgrade:
            ssl_object = transport.get_extra_info("ssl_object")
            self.record.tls = True
            self.record.tls_version = ssl_object.version() if ssl_object else ""
            return
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.record = self.world.log.connection_open(self.state.provider.name, sock[0], peer[0])

    def connection_lost(self, error):
        if self.record is not None and self.record.ended is None:
            self.record.ended = time.monotonic()
            if not self.record.refused:
                self.state.open[self.record.client] -= 1
        super().connection_lost(error)

    async def push(self, status):
        text = status.decode() if isinstance(status, bytes) else status
        record = self.record
        if record is not None and not getattr(self, "_banner_done", False) and text.startswith("220 "):
            self._banner_done = True
            provider = self.state.provider
            if provider.banner_delay:
                await asyncio.sleep(provider.banner_delay)
            limit = provider.max_connections
            if limit is not None and self.state.open[record.client] >= limit:
                record.refused = TOO_MANY_CONNECTIONS
                text = TOO_MANY_CONNECTIONS
            else:
                self.state.open[record.client] += 1
        if text.startswith("530 Must issue a STARTTLS"):
            text = STARTTLS_REQUIRED
        if record is not None:
            self.world.log.add(Reply(record.id, self.state.provider.name, record.client, text, time.monotonic()))
        await super().push(text)
        if text.startswith("421") and self.transport is not None:
            # 421 means the server is closing the channel (RFC 5321 §3.8).
            self.transport.close()


class _Handler:
    def __init__(self, world: "World", state: _State):
        self.world, self.state = world, state

    def _client(self, session) -> str:
        return session.peer[0]

    def _penalised(self, client: str, now: float) -> str | None:
        provider = self.state.provider
        if self.state.penalty_until.get(client, 0) > now:
            return provider.throttle_reply.format(client=client)
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        provider, client, now = self.state.provider, self._client(session), time.monotonic()
        record = server.record
        record.helo = session.host_name or ""
        if provider.max_messages_per_connection is not None and record.messages >= provider.max_messages_per_connection:
            return TOO_MANY_MESSAGES
        throttled = self._penalised(client, now)
        if throttled:
            return throttled
        sender = address.lower()
        domain = sender.rpartition("@")[2]
        if sender in provider.reputation_blocked or domain in provider.reputation_blocked:
            return REPUTATION_BLOCK.format(client=client)
        if sender in provider.auth_blocked or domain in provider.auth_blocked:
            return AUTH_BLOCK.format(domain=domain)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        provider, state, client, now = self.state.provider, self.state, self._client(session), time.monotonic()
        throttled = self._penalised(client, now)
        if throttled:
            return throttled
        if provider.rate_per_minute is not None and not envelope.rcpt_tos:
            recent = state.recent[client]
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= provider.rate_per_minute:
                state.penalty_until[client] = now + provider.penalty_seconds
                return provider.throttle_reply.format(client=client)
        if provider.greylist_seconds is not None:
            triplet = (client, (envelope.mail_from or "").lower(), address.lower())
            first = state.greylist.setdefault(triplet, now)
            if now - first < provider.greylist_seconds:
                return GREYLISTED.format(seconds=provider.greylist_seconds)
        roll = state.random.random()
        if roll < provider.permfail_rate:
            return PERMFAIL
        if roll < provider.permfail_rate + provider.tempfail_rate:
            return TEMPFAIL
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        provider, client = self.state.provider, self._client(session)
        if provider.data_delay:
            await asyncio.sleep(provider.data_delay)
        record = server.record
        now = time.monotonic()
        record.messages += 1
        self.state.recent[client].append(now)
        self.world.log.add(
            Transaction(
                record.id,
                provider.name,
                client,
                envelope.mail_from,
                list(envelope.rcpt_tos),
                now,
                record.tls,
                (envelope.original_content or envelope.content) if self.world.log.keep_content else b"",
            )
        )
        return f"250 2.0.0 OK {record.id}.{record.messages} - world"


def sts_policy(mode: str, mx: list[str], max_age: int = 86400) -> str:
    """An MTA-STS policy body (RFC 8461 §3.2)."""
    return "\r\n".join(["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}", ""])


class PolicyServer:
    """A loopback HTTPS server for MTA-STS policies: `serve(domain, body, …)` answers
    `https://mta-sts.<domain>/.well-known/mta-sts.txt`; every request is recorded in `requests`."""

    def __init__(self, ca: TestCA, address: str = "127.0.21.1", port: int = 0):
        self.ca, self.address, self.port = ca, address, port
        self.documents: dict[str, tuple[int, str, bytes, dict]] = {}
        self.requests: list[tuple[str, str, float]] = []
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def serve(
        self, domain: str, body: str | bytes, *, status: int = 200, content_type: str = "text/plain", headers=None
    ) -> None:
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self.documents[domain.lower()] = (status, content_type, raw, dict(headers or {}))

    def _context_for(self, name: str) -> ssl.SSLContext:
        with self._lock:
            if name not in self._contexts:
                self._contexts[name] = self.ca.server_context(name)
            return self._contexts[name]

    def start(self) -> "PolicyServer":
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                domain = host.removeprefix("mta-sts.")
                owner.requests.append((domain, self.path, time.monotonic()))
                document = owner.documents.get(domain) if self.path == "/.well-known/mta-sts.txt" else None
                status, content_type, body, extra = document or (404, "text/plain", b"not found\n", {})
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self.ca.issue("mta-sts.invalid"))
        context.sni_callback = lambda sock, name, _ctx: setattr(sock, "context", self._context_for(name or ""))
        server = http.server.ThreadingHTTPServer((self.address, self.port), Handler, bind_and_activate=False)
        server.allow_reuse_address = True
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.server_bind()
        server.server_activate()
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="mta-sts-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (fetches fail: connection refused) until `start()` again, on the same port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None


def google(domains: int = 40, **overrides) -> Provider:
    """Google-like: 5 connections per IP, a per-minute rate, TLS required, the 4.7.28 throttle."""
    return Provider(
        **{
            "name": "google",
            "mx_hosts": ["aspmx.l.google.com", "alt1.aspmx.l.google.com", "alt2.aspmx.l.google.com"],
            "domains": ["gmail.test"] + [f"workspace{i}.test" for i in range(domains)],
            "max_connections": 5,
            "max_messages_per_connection": 100,
            "rate_per_minute": 6000,
            "throttle_reply": GOOGLE_THROTTLE,
            "require_tls": True,
            **overrides,
        }
    )


def microsoft(domains: int = 10, **overrides) -> Provider:
    return Provider(
        **{
            "name": "microsoft",
            "mx_hosts": ["outlook-test.mail.protection.outlook.com"],
            "domains": ["outlook.test"] + [f"m365-{i}.test" for i in range(domains)],
            "max_connections": 5,
            "max_messages_per_connection": 50,
            "rate_per_minute": 3000,
            "throttle_reply": MICROSOFT_THROTTLE,
            **overrides,
        }
    )


def yahoo(**overrides) -> Provider:
    return Provider(
        **{
            "name": "yahoo",
            "mx_hosts": ["mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net"],
            "domains": ["yahoo.test", "aol.test"],
            "max_connections": 10,
            "max_messages_per_connection": 20,
            "rate_per_minute": 3000,
            "throttle_reply": YAHOO_THROTTLE,
            **overrides,
        }
    )


def long_tail(count: int = 20, **overrides) -> list[Provider]:
    """Small receivers, one domain and MX host each, permissive."""
    return [
        Provider(**{"name": f"tail{i}", "mx_hosts": [f"mx.tail{i}.test"], "domains": [f"tail{i}.test"], **overrides})
        for i in range(count)
    ]


def realistic(*, tail: int = 20, **overrides) -> list[Provider]:
    """The weighted-mix world: Google-, Microsoft- and Yahoo-like providers and a long tail."""
    return [google(**overrides), microsoft(**overrides), yahoo(**overrides), *long_tail(tail)]


def for_make_up() -> list[Provider]:
    """The `make up` world: mail to gmail.test / workspace0.test greylists for 30 s and throttles
    past 30 a minute; outlook.test and yahoo.test push back like theirs; everything else goes to the
    mail catcher as before. Deterministic, so the dev DNS publishes its records without asking it."""
    return [
        google(domains=1, greylist_seconds=30, rate_per_minute=30, penalty_seconds=120),
        microsoft(domains=0, rate_per_minute=20, penalty_seconds=120),
        yahoo(rate_per_minute=20, penalty_seconds=120),
    ]


def records_for(providers: list[Provider], address_base: str = "127.0.20.") -> list[tuple[str, str, object]]:
    """The DNS records a world of `providers` would publish (addresses assigned as `World` does)."""
    world = World(providers, address_base=address_base)
    for index, provider in enumerate(world.providers.values(), start=1):
        provider.address = f"{address_base}{index}"
    return world.records()


# The load mix (KumoMTA's published test method): share of recipients per provider kind.
MIX = {"google": 0.67, "microsoft": 0.09, "yahoo": 0.06}


class World:
    """Start with `World(providers, zone=dns_zone).start()`; `stop()` closes every listener.

    Every provider listens on `127.0.<first_octet>.<n>` at one shared port (`.port`), so the
    platform reaches them all with one PUFFERPOST_SMTP_PORT.
    """

    def __init__(
        self,
        providers: list[Provider],
        *,
        zone=None,
        ca: TestCA | None = None,
        port: int = 0,
        address_base: str = "127.0.20.",
        seed: int = 1,
        keep_content: bool = True,
    ):
        self.providers = {p.name: p for p in providers}
        self.zone = zone
        self.ca = ca or TestCA()
        self.port = self._asked_port = port
        self.seed = seed
        self.log = Log(keep_content=keep_content)
        self._address_base = address_base
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._states: dict[str, _State] = {}
        self.policy_server: PolicyServer | None = None
        self._sts: dict[str, str] = {}  # domain → the id its _mta-sts TXT record carries

    # -- lifecycle --

    def start(self) -> "World":
        for index, provider in enumerate(self.providers.values(), start=1):
            provider.address = f"{self._address_base}{index}"
            self._states[provider.name] = _State(provider, self.seed + index)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="receiving-world", daemon=True)
        self._thread.start()
        ready.wait()
        self._bind_all()
        if self.zone is not None:
            self.publish(self.zone)
        return self

    def _bind_all(self) -> None:
        # One port for every provider: the first bind picks a free one, the rest must get the same
        # (on their own address); a clash with another process means trying another port.
        for _ in range(50):
            try:
                for provider in self.providers.values():
                    self._servers[provider.name] = self._run(self._serve(provider))
                return
            except OSError:
                for server in self._servers.values():
                    server.close()
                self._servers.clear()
                if self._asked_port:
                    raise
                self.port = 0
        raise OSError("no port free on every world address")

    async def _serve(self, provider: Provider):
        state = self._states[provider.name]
        tls_context = self.ca.server_context(*provider.mx_hosts) if provider.tls else None
        hostname = provider.mx_hosts[0]

        def factory():
            return _WorldSMTP(self, state, hostname, tls_context)

        server = await self._loop.create_server(factory, host=provider.address, port=self.port)
        if not self.port:
            self.port = server.sockets[0].getsockname()[1]
        return server

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close():
            for server in self._servers.values():
                server.close()
            # Open sessions end with the loop; their transports are closed here.
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self.policy_server is not None:
            self.policy_server.stop()
        with contextlib.suppress(Exception):
            self._run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None
        self._servers.clear()

    def __enter__(self) -> "World":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- faults --

    def host_down(self, name: str) -> None:
        """Stop listening for `name`'s provider: connections are refused until `host_up`."""
        server = self._servers.pop(name, None)
        if server is not None:
            server.close()

    def host_up(self, name: str) -> None:
        if name not in self._servers:
            self._servers[name] = self._run(self._serve(self.providers[name]))

    # -- MTA-STS --

    @property
    def policy_port(self) -> int:
        """The port the MTA-STS policy server listens on (the platform's PUFFERPOST_MTA_STS_PORT)."""
        if self.policy_server is None:
            self.policy_server = PolicyServer(self.ca, address=self._address_base.rsplit(".", 2)[0] + ".21.1").start()
        return self.policy_server.port

    def mta_sts(
        self,
        domain: str,
        *,
        mode: str = "enforce",
        mx: list[str] | None = None,
        max_age: int = 86400,
        policy_id: str = "1",
        body: str | bytes | None = None,
        **serve,
    ) -> None:
        """Give `domain` an MTA-STS policy: its TXT record (id `policy_id`), the policy host's address
        and the policy itself (`body` overrides the one built from mode, mx and max_age)."""
        self.policy_port  # noqa: B018 (starts the server)
        if body is None:
            provider = next((p for p in self.providers.values() if domain in p.domains), None)
            body = sts_policy(mode, mx if mx is not None else list(provider.mx_hosts if provider else []), max_age)
        self.policy_server.serve(domain, body, **serve)
        self._sts[domain] = policy_id
        if self.zone is not None:
            self.zone.remove(f"_mta-sts.{domain}", "TXT")
            for name, rtype, value in self._sts_records(domain):
                self.zone.publish(name, rtype, value)

    def _sts_records(self, domain: str) -> list[tuple[str, str, object]]:
        return [
            (f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={self._sts[domain]}"),
            (f"mta-sts.{domain}", "A", self.policy_server.address),
        ]

    # -- DNS --

    def records(self) -> list[tuple[str, str, object]]:
        """(name, type, value) for every recipient domain's MX, every MX host's address and every
        MTA-STS policy the world serves."""
        records = [r for domain in self._sts for r in self._sts_records(domain)]
        for provider in self.providers.values():
            for host in provider.mx_hosts:
                records.append((host, "A", provider.address))
            for domain in provider.domains:
                for preference, host in enumerate(provider.mx_hosts, start=1):
                    records.append((domain, "MX", (preference * 10, host)))
        return records

    def publish(self, zone) -> None:
        for name, rtype, value in self.records():
            zone.publish(name, rtype, value)

    # -- load --

    def recipients(self, count: int, *, seed: int | None = None) -> list[str]:
        """`count` addresses in the weighted mix: 67 % Google-like, 9 % Microsoft-like, 6 %
        Yahoo-like (each spread over that provider's domains), the rest over the long tail."""
        rng = random.Random(self.seed if seed is None else seed)
        big = [p for p in self.providers.values() if p.name in MIX]
        tail = [p for p in self.providers.values() if p.name not in MIX]
        weights = [MIX[p.name] for p in big]
        if tail:
            weights.append(1.0 - sum(weights))
        kinds = [*big, tail] if tail else big
        addresses = []
        for i in range(count):
            kind = rng.choices(kinds, weights=weights)[0]
            provider = rng.choice(kind) if isinstance(kind, list) else kind
            addresses.append(f"user{i}@{rng.choice(provider.domains)}")
        return addresses

    def provider_of(self, address: str) -> str:
        domain = address.rpartition("@")[2].lower()
        for provider in self.providers.values():
            if domain in provider.domains:
                return provider.name
        raise KeyError(domain)

    def allowed_rate(self, provider: str, clients: int = 1) -> float | None:
        """Messages per second the provider lets `clients` addresses deliver, by its own limits."""
        p = self.providers[provider]
        return None if p.rate_per_minute is None else p.rate_per_minute * clients / 60.0


def loopback_alias_usable(address: str = "127.0.20.1") -> bool:
    """True when this machine lets a socket bind to a 127/8 alias (Linux does without configuration)."""
    with contextlib.suppress(OSError), socket.socket() as sock:
        sock.bind((address, 0))
        return True
    return False


__all__ = [
    "Connection",
    "Log",
    "Provider",
    "Reply",
    "Transaction",
    "PolicyServer",
    "World",
    "google",
    "long_tail",
    "microsoft",
    "realistic",
    "sts_policy",
    "yahoo",
]
