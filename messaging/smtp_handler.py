"""What the two SMTP servers PufferPost runs (submission, inbound feedback) share: DATA's work runs
in the server's own thread pool, shielded from the connection being cancelled, and shutdown waits
for what is still running."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def envelope_bytes(envelope) -> bytes:
    """The message as received: aiosmtpd keeps `original_content` bytes unless decoding was asked for."""
    raw = envelope.original_content or envelope.content
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogateescape")
    return raw


class ExecutorHandler:
    """An aiosmtpd handler whose DATA work runs in `executor` (the ORM must not run on the event loop).

    Its own pool, not the loop's default one, which asyncio.run() joins without a time limit.
    """

    def __init__(self, executor: ThreadPoolExecutor | None = None):
        self.executor = executor
        self.in_flight: set[asyncio.Future] = set()

    async def run_shielded(self, work: Callable[[], object]):
        """Run `work()` in the pool and return its result. Shielded: a shutdown that cancels the
        connection still lets the work finish (and commit); its exceptions reach the caller."""
        future = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(self.executor, work))
        self.in_flight.add(future)
        future.add_done_callback(self.in_flight.discard)
        return await asyncio.shield(future)

    async def drain(self, timeout: float) -> None:
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=timeout)
