"""The inbound SMTP server for bounces and complaints (served by `manage.py run_inbound_smtp`).

It accepts mail only for VERP return paths whose tag verifies (`bounces+msg_…+tag@…`, see
messaging.return_path) at an accepted return-path domain (`domains.selectors.return_path_domain_accepted`:
PUFFERPOST_RETURN_PATH_DOMAIN and every return-path host that has verified) and the configured
feedback-loop addresses, answers 550 for anything else (a forged or un-tagged return path
included), and refuses mail over
`PUFFERPOST_INBOUND_SMTP_MAX_BYTES` (552, aiosmtpd's data size limit). Each accepted mail is
parsed and recorded in a worker thread (a small pool of its own): the ORM is synchronous and must not
run on the event loop, and each thread keeps its own database connection, checked with
`close_old_connections()` before and after every mail as Django does around a request. Only a
recorded mail is answered 250; a database failure answers 451 so the sending MTA tries again
(recording is idempotent, so a retry after a lost 250 is harmless).
"""

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP
from django.conf import settings
from django.db import close_old_connections

from domains.selectors import return_path_domain_accepted
from messaging.feedback.services import feedback_report_process
from messaging.return_path import message_id_from_return_path
from messaging.smtp_handler import ExecutorHandler, envelope_bytes

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 15.0
WORKER_THREADS = 4


def inbound_address_accepted(address: str) -> bool:
    """RCPT filter: the local part (ours: the VERP tag) and the domain (the domains app's) are
    judged apart, or one of `PUFFERPOST_INBOUND_FEEDBACK_ADDRESSES`. Reads the database."""
    if inbound_local_part_accepted(address):
        return inbound_domain_accepted(address)
    address = address.strip().strip("<>").lower()
    local_part = address.rpartition("@")[0]
    return any(
        entry == address if "@" in entry else entry == local_part
        for entry in settings.PUFFERPOST_INBOUND_FEEDBACK_ADDRESSES
    )


def inbound_local_part_accepted(address: str) -> bool:
    """A VERP return path whose tag verifies (the domain is not judged here)."""
    return message_id_from_return_path(address) is not None


def inbound_domain_accepted(address: str) -> bool:
    """Which domains may carry a VERP return path: the domains app's call."""
    return return_path_domain_accepted(address.strip().strip("<>").lower().rpartition("@")[2])


def _accepted(address: str) -> bool:
    close_old_connections()
    try:
        return inbound_address_accepted(address)
    finally:
        close_old_connections()


def _process(raw: bytes, envelope_recipients: list[str]) -> None:
    close_old_connections()
    try:
        report = feedback_report_process(raw=raw, envelope_recipients=envelope_recipients)
        log.info(
            "inbound %s report %s: %d delivery, %d complaint entries",
            report.kind,
            report.report_id or "-",
            len(report.deliveries),
            len(report.complaints),
        )
    finally:
        close_old_connections()


class FeedbackHandler(ExecutorHandler):
    """aiosmtpd handler: RCPT filtering, and DATA recorded through the feedback services."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        try:
            accepted = await asyncio.to_thread(_accepted, address)
        except Exception:  # the database is away: the sending server retries later
            log.exception("could not check inbound recipient %s", address)
            return "451 4.3.0 Temporary failure, please try again later"
        if not accepted:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope_bytes(envelope)
        recipients = list(envelope.rcpt_tos)
        try:
            await self.run_shielded(lambda: _process(raw, recipients))
        except Exception:  # answered 451, so the sending server retries later
            log.exception("could not record inbound mail from %s", envelope.mail_from)
            return "451 4.3.0 Temporary failure, please try again later"
        return "250 2.0.0 OK"


async def inbound_smtp_serve(*, host: str, port: int, on_ready: Callable[[str, int], None] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then stop accepting and let mails being recorded finish.

    Returns how many recordings were still running after SHUTDOWN_GRACE_SECONDS (their senders got
    no 250 and will retry), so the caller can exit without waiting for them."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Each worker thread keeps its own database connection: a small pool bounds them.
    executor = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="feedback")
    handler = FeedbackHandler(executor)
    hostname = socket.gethostname()  # not getfqdn(): that would make a DNS query at start-up

    def protocol():
        return SMTP(
            handler,
            data_size_limit=settings.PUFFERPOST_INBOUND_SMTP_MAX_BYTES,
            hostname=hostname,
            ident="ESMTP",  # white-label: the banner names no software
            loop=loop,
        )

    server = await loop.create_server(protocol, host=host, port=port)
    bound_port = server.sockets[0].getsockname()[1]
    if on_ready:
        on_ready(host, bound_port)
    try:
        await stop.wait()
    finally:
        server.close()
        await handler.drain(SHUTDOWN_GRACE_SECONDS)
        log.info("inbound SMTP server stopped")
    executor.shutdown(wait=False, cancel_futures=True)
    if handler.in_flight:
        log.error("%d inbound mail(s) still being recorded after the grace period; abandoned", len(handler.in_flight))
    return len(handler.in_flight)
