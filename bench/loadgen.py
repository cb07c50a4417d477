"""A small asyncio HTTP/1.1 load generator: N connections, each sending requests back to back.

Requests are serialised before the clock starts, so the client spends its CPU on sockets and
parsing a status line and a Content-Length only. Keep-alive when the server offers it (gthread);
gunicorn's sync workers close after every response, so the client reconnects, as any client must.
The client's own CPU time is measured: it shares the machine's two cores with the server.
"""

import asyncio
import json
import time
from dataclasses import dataclass, field

from bench.common import LOOPBACK, percentile

REQUEST_TIMEOUT = 30.0


def http_request(method: str, path: str, *, body=None, headers: dict | None = None, port: int) -> bytes:
    """One raw HTTP/1.1 request (a dict/list body is sent as JSON)."""
    payload = b""
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


@dataclass
class LoadResult:
    requests: int
    concurrency: int
    wall_seconds: float
    client_cpu_seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: dict[int, int]
    errors: int
    reconnects: int
    unexpected_sample: str = ""

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.ok / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "concurrency": self.concurrency,
            "wall_s": round(self.wall_seconds, 3),
            "req_per_s": round(self.rps, 1),
            "p50_ms": _round(percentile(self.latencies_ms, 50)),
            "p90_ms": _round(percentile(self.latencies_ms, 90)),
            "p99_ms": _round(percentile(self.latencies_ms, 99)),
            "max_ms": _round(max(self.latencies_ms) if self.latencies_ms else None),
            "client_cpu_share_of_one_core": round(self.client_cpu_seconds / self.wall_seconds, 3)
            if self.wall_seconds
            else None,
            "reconnects": self.reconnects,
            "unexpected_sample": self.unexpected_sample[:500],
        }


def _round(value):
    return None if value is None else round(value, 2)


class _Connection:
    def __init__(self, port: int):
        self.port = port
        self.reader = None
        self.writer = None

    async def ensure(self) -> bool:
        if self.writer is not None:
            return False
        self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def roundtrip(self, raw: bytes) -> tuple[int, bytes, bool]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if length is None:
            body = await self.reader.read()
            close = True
        else:
            body = await self.reader.readexactly(length)
        return status, body, close


async def _run(port, requests, concurrency, expect, total_timeout) -> LoadResult:
    next_index = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counters = {"errors": 0, "reconnects": 0}
    sample = []

    async def worker():
        nonlocal next_index
        conn = _Connection(port)
        try:
            while next_index < len(requests):
                raw = requests[next_index]
                next_index += 1
                started = time.perf_counter()
                try:
                    if await conn.ensure():
                        counters["reconnects"] += 1
                    status, body, close = await asyncio.wait_for(conn.roundtrip(raw), REQUEST_TIMEOUT)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    counters["errors"] += 1
                    if not sample:
                        sample.append(repr(exc))
                    conn.close()
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                statuses[status] = statuses.get(status, 0) + 1
                if status in expect:
                    latencies.append(elapsed)
                else:
                    counters["errors"] += 1
                    if not sample:
                        sample.append(f"{status} {body[:400]!r}")
                if close:
                    conn.close()
        finally:
            conn.close()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), total_timeout)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return LoadResult(
        requests=len(requests),
        concurrency=concurrency,
        wall_seconds=wall,
        client_cpu_seconds=cpu,
        latencies_ms=latencies,
        statuses=statuses,
        errors=counters["errors"],
        reconnects=counters["reconnects"],
        unexpected_sample=sample[0] if sample else "",
    )


def run_load(
    port: int, requests: list[bytes], *, concurrency: int, expect=(200,), total_timeout: float = 300.0
) -> LoadResult:
    """Send every request in `requests` over `concurrency` connections; bounded by `total_timeout`."""
    return asyncio.run(_run(port, requests, concurrency, set(expect), total_timeout))


def merge(results: list[LoadResult]) -> LoadResult:
    """Several runs of one kind (interleaved rounds) as one: walls and CPU add up, latencies pool."""
    statuses: dict[int, int] = {}
    for result in results:
        for status, n in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return LoadResult(
        requests=sum(r.requests for r in results),
        concurrency=results[0].concurrency,
        wall_seconds=sum(r.wall_seconds for r in results),
        client_cpu_seconds=sum(r.client_cpu_seconds for r in results),
        latencies_ms=[latency for r in results for latency in r.latencies_ms],
        statuses=statuses,
        errors=sum(r.errors for r in results),
        reconnects=sum(r.reconnects for r in results),
        unexpected_sample=next((r.unexpected_sample for r in results if r.unexpected_sample), ""),
    )
