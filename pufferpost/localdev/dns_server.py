"""A small authoritative DNS server on loopback, for tests and `make up` (never for production).

Records live in a dict the owner edits while the server runs; a name can also be made to
fail (SERVFAIL) or to stall (no answer), to drill the resolver-failure paths. Every change
clears this process's cache of delivery lookups (`pufferpost.dns`), so a test that edits the zone
sees its change at once, as it would once a real record's TTL ran out.
"""

import threading
import time
from collections import Counter

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from pufferpost import dns as pp_dns


class Zone(BaseResolver):
    def __init__(self):
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], list] = {}
        self._failing: dict[str, str] = {}
        self.stall_seconds = 3.0
        # Questions received, by (name, type): what the tests count to see what was asked.
        self.asked: Counter = Counter()

    @staticmethod
    def _key(name: str) -> str:
        return str(DNSLabel(name.rstrip(".").lower()))

    def publish(self, name: str, rtype: str, value, *, ttl: int = 60) -> None:
        """Add a record. TXT values longer than 255 bytes are split into strings, as providers do."""
        rtype = rtype.upper()
        if rtype == "TXT":
            raw = value.encode() if isinstance(value, str) else value
            rdata = TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])
        elif rtype == "MX":
            preference, host = value
            rdata = MX(host, preference)
        elif rtype == "A":
            rdata = A(value)
        elif rtype == "AAAA":
            rdata = AAAA(value)
        elif rtype == "CNAME":
            rdata = CNAME(value)
        else:
            raise ValueError(f"unsupported record type {rtype}")
        with self._lock:
            self._records.setdefault((self._key(name), rtype), []).append((rdata, ttl))
        pp_dns.cache_clear()

    def replace_all(self, records: list[tuple[str, str, object]]) -> None:
        """Swap every record for `records` ((name, type, value) as for `publish`) in one step."""
        staging = Zone()
        for name, rtype, value in records:
            staging.publish(name, rtype, value)
        with self._lock:
            self._records = staging._records
        pp_dns.cache_clear()

    def remove(self, name: str, rtype: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._records if k[0] == self._key(name) and rtype in (None, k[1])]:
                del self._records[key]
        pp_dns.cache_clear()

    def fail(self, name: str, mode: str = "servfail") -> None:
        """Make lookups of `name` answer SERVFAIL (`servfail`) or not at all (`timeout`)."""
        with self._lock:
            self._failing[self._key(name)] = mode
        pp_dns.cache_clear()

    def heal(self, name: str) -> None:
        with self._lock:
            self._failing.pop(self._key(name), None)
        pp_dns.cache_clear()

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._failing.clear()
            self.asked.clear()
        pp_dns.cache_clear()

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.asked[(qname.rstrip("."), qtype)] += 1
            mode = self._failing.get(qname)
            answers = list(self._records.get((qname, qtype), []))
            exists = any(k[0] == qname for k in self._records)
            alias = self._records.get((qname, "CNAME")) if qtype != "CNAME" else None
        if alias and mode is None:
            # A CNAME answers for every type: the alias, then what its target has (one level).
            target = alias[0][0].label
            reply.add_answer(RR(request.q.qname, QTYPE.CNAME, rdata=alias[0][0], ttl=alias[0][1]))
            key = str(target).lower()
            with self._lock:
                found = list(self._records.get((key, qtype), []))
                target_exists = any(k[0] == key for k in self._records)
            for rdata, ttl in found:
                reply.add_answer(RR(target, QTYPE.reverse[qtype], rdata=rdata, ttl=ttl))
            if not target_exists:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if mode == "timeout":
            # Answer only after any sane client has given up (the server is threaded).
            time.sleep(self.stall_seconds)
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if mode == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        for rdata, ttl in answers:
            reply.add_answer(RR(request.q.qname, QTYPE.reverse[qtype], rdata=rdata, ttl=ttl))
        if not answers and not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class LoopbackDnsServer:
    """UDP and TCP on 127.0.0.1; port 0 picks a free port (read `.port` after `start()`)."""

    def __init__(self, zone: Zone | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.zone = zone or Zone()
        self.host = host
        self.port = port
        self._servers = []

    def start(self) -> "LoopbackDnsServer":
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        # Port 0 gives a free UDP port, but the same TCP port may be taken (by any outgoing
        # connection's ephemeral port): pick again until both are ours.
        for attempt in range(50):
            udp = DNSServer(self.zone, address=self.host, port=self.port, logger=logger)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(self.zone, address=self.host, port=port, tcp=True, logger=logger)
            except OSError:
                udp.server.server_close()
                if self.port or attempt == 49:
                    raise
                continue
            break
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            server.start_thread()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
        self._servers = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
