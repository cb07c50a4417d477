"""SMTP submission (served by `manage.py run_submission_smtp`): send from any framework's SMTP backend.

The client authenticates with `AUTH PLAIN` or `AUTH LOGIN`, any user name and an API key holding
`messages:send` as the password (a test key sends in test mode). After STARTTLS only (on the
implicit-TLS port the connection is encrypted from the start); plain-text AUTH is allowed only when
PUFFERPOST_SUBMISSION_ALLOW_INSECURE_AUTH is set, for development and tests.

Each DATA goes through the send API's own service (`messaging.services.message_submit`): the same
validation, sender gate, suppressions, rate limit, quota and replay guard (the Message-ID plays
Idempotency-Key). Every RCPT becomes one message addressed to that recipient alone (To, Cc and
Bcc alike: the framework puts them all in RCPT TO), all or none: the first refusal refuses the
DATA, and the reply carries the API's error code, e.g. `550 5.7.1 sender_not_available: …`.

The ORM is synchronous, so key lookups and submissions run in worker threads with their own
database connections (checked around each use as Django does around a request).
"""

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections
from rest_framework.exceptions import ValidationError

from messaging import limits
from messaging.services import SubmittedContent, message_submit, rate_limited_error, sending_paused_error
from messaging.smtp_handler import ExecutorHandler, envelope_bytes
from messaging.submission.mime import SubmissionInvalid, submission_parse
from pufferpost.errors import ApiError, ApplicationError, violations_from
from pufferpost.models import KEY_PREFIXES, ApiKey
from pufferpost.queries import api_key_with_workspace

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 15.0
WORKER_THREADS = 4
MAX_RECIPIENTS = 100  # as many as one batch request
SCOPE = "messages:send"

# API error code -> SMTP reply code and enhanced status (RFC 3463). Temporary conditions are 4xx so
# the client's queue retries them; refusals of this message are 5xx.
_REPLIES = {
    "unauthorized": "535 5.7.8",
    "invalid_message": "550 5.6.0",
    "sending_paused": "451 4.7.1",
    "rate_limited": "451 4.7.1",
    "quota_exceeded": "452 4.3.1",
    "idempotency_key_in_use": "451 4.3.0",
    "idempotency_key_reused": "550 5.7.0",
    "recipient_suppressed": "550 5.1.1",
    "recipient_unsubscribed": "550 5.1.1",
    "unknown_unsubscribe_group": "550 5.1.1",
    "simulator_needs_test_key": "550 5.1.1",
    "payload_too_large": "552 5.3.4",
    "validation_failed": "550 5.6.0",
}


def _one_line(text: str) -> str:
    """SMTP replies are one ASCII line: no CR/LF, non-ASCII replaced, bounded."""
    text = " ".join(str(text).split())
    return text.encode("ascii", "replace").decode("ascii")[:400]


def smtp_reply(code: str, message: str) -> str:
    """`550 5.7.1 sender_not_available: No active sender for "x@y".` — the API code, then its message."""
    return f"{_REPLIES.get(code, '550 5.7.1')} {code}: {_one_line(message)}"


def reply_for_error(exc: Exception) -> str:
    if isinstance(exc, (ApiError, ApplicationError)):
        detail = exc.extra.get("detail")
        return smtp_reply(exc.code, f"{exc.message} {detail}" if detail else exc.message)
    if isinstance(exc, ValidationError):
        violations = violations_from(exc.detail)
        first = violations[0] if violations else {"field": None, "message": "The message is invalid."}
        where = f"{first['field']}: " if first.get("field") else ""
        return smtp_reply("validation_failed", f"{where}{first['message']}")
    raise exc


def _key_for(raw: str) -> ApiKey | None:
    close_old_connections()
    try:
        if not raw.startswith(KEY_PREFIXES) or len(raw) > 200:
            return None
        return api_key_with_workspace(key_hash=ApiKey.hash(raw))
    finally:
        close_old_connections()


def submission_process(*, key_hash: str, raw: bytes, recipients: list[str], envelope_from: str) -> str:
    """Accept one DATA for `recipients`; the SMTP reply to send (250 with the message ids, or the refusal)."""
    close_old_connections()
    try:
        key = api_key_with_workspace(key_hash=key_hash)
        if key is None:
            return smtp_reply("unauthorized", "The API key is unknown or was revoked.")
        workspace = key.workspace
        try:
            submission = submission_parse(raw, envelope_from=envelope_from)
        except SubmissionInvalid as exc:
            return smtp_reply("invalid_message", str(exc))
        content = SubmittedContent(subject=submission.subject, text=submission.text, html=submission.html)
        if workspace.sending_paused:
            return reply_for_error(sending_paused_error())
        admission = limits.admit(workspace=workspace, messages=0, livemode=key.livemode)
        if admission.limited:
            return reply_for_error(rate_limited_error(admission))
        try:
            outcome = message_submit(
                workspace=workspace,
                payloads=[submission.payload(recipient) for recipient in recipients],
                content=content,
                admission=admission,
                message_id_header=submission.message_id,
                livemode=key.livemode,
            )
        except (ApiError, ApplicationError, ValidationError) as exc:
            return reply_for_error(exc)
        finally:
            admission.release_unused()
        return f"250 2.0.0 OK: queued as {' '.join(outcome.body['ids'])}"
    finally:
        close_old_connections()


class SubmissionHandler(ExecutorHandler):
    def authenticator(self, server, session, envelope, mechanism, auth_data):
        """AUTH PLAIN/LOGIN: the password is an API key with `messages:send` (the user name is ignored).

        aiosmtpd calls this synchronously; the lookup runs in a worker thread because the ORM must
        not run on the event loop (one indexed query, so the loop waits a millisecond).
        """
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        raw = auth_data.password.decode("utf-8", "replace").strip()
        key = self.executor.submit(_key_for, raw).result(timeout=30)
        if key is None:
            return AuthResult(success=False, handled=False)
        if not key.has_scope(SCOPE):
            message = f'535 5.7.8 missing_scope: This API key lacks the "{SCOPE}" scope.'
            return AuthResult(success=False, handled=False, message=message)
        return AuthResult(success=True, auth_data=key.key_hash)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 Too many recipients: at most {MAX_RECIPIENTS} per message"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope_bytes(envelope)
        try:
            return await self.run_shielded(
                lambda: submission_process(
                    key_hash=session.auth_data,
                    raw=raw,
                    recipients=list(envelope.rcpt_tos),
                    envelope_from=envelope.mail_from or "",
                )
            )
        except Exception:  # a database failure: 451, so the client's queue retries (the replay guard dedupes)
            log.exception("could not accept a submission from %s", envelope.mail_from)
            return "451 4.3.0 internal_error: temporary failure, please try again later"


def submission_tls_context() -> ssl.SSLContext | None:
    """The operator's certificate and key (PUFFERPOST_SUBMISSION_TLS_CERT / _KEY), or None when unset."""
    cert, key = settings.PUFFERPOST_SUBMISSION_TLS_CERT, settings.PUFFERPOST_SUBMISSION_TLS_KEY
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key or None)
    return context


def _close_thread_connections(executor: ThreadPoolExecutor) -> None:
    """Close the database connection each worker thread holds: one task per thread, held at a barrier
    so no thread takes two."""
    barrier = threading.Barrier(WORKER_THREADS, timeout=10)

    def close():
        connections.close_all()
        with contextlib.suppress(threading.BrokenBarrierError):  # fewer threads ever started: they all closed
            barrier.wait()

    for future in [executor.submit(close) for _ in range(WORKER_THREADS)]:
        future.result(timeout=30)


async def submission_smtp_serve(
    *,
    host: str,
    port: int,
    tls_port: int | None = None,
    on_ready: Callable[[str, int, int | None], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve (STARTTLS on `port`, implicit TLS on `tls_port` if given) until SIGTERM or SIGINT
    (or until `stop` is set, for a server embedded in another program's loop)."""
    context = submission_tls_context()
    insecure = settings.PUFFERPOST_SUBMISSION_ALLOW_INSECURE_AUTH
    if context is None and (tls_port is not None or not insecure):
        raise ImproperlyConfigured(
            "SMTP submission needs PUFFERPOST_SUBMISSION_TLS_CERT and PUFFERPOST_SUBMISSION_TLS_KEY "
            "(or, for development only, PUFFERPOST_SUBMISSION_ALLOW_INSECURE_AUTH=true without --tls-port)."
        )
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    executor = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="submission")
    handler = SubmissionHandler(executor)
    hostname = socket.gethostname()  # not getfqdn(): that would make a DNS query at start-up

    def protocol(*, implicit_tls: bool):
        with warnings.catch_warnings():
            # Plain-text AUTH is what the dev/test setting asks for; aiosmtpd warns on every connection.
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return _protocol(implicit_tls=implicit_tls)

    def _protocol(*, implicit_tls: bool):
        return SMTP(
            handler,
            data_size_limit=settings.PUFFERPOST_SEND_MAX_BODY_BYTES,
            hostname=hostname,
            ident="ESMTP",  # white-label: the banner names no software
            loop=loop,
            enable_SMTPUTF8=True,
            authenticator=handler.authenticator,
            auth_required=True,
            # On the implicit-TLS port the whole connection is encrypted already.
            auth_require_tls=not (insecure or implicit_tls),
            tls_context=None if implicit_tls else context,
            require_starttls=context is not None and not insecure and not implicit_tls,
        )

    servers = [await loop.create_server(lambda: protocol(implicit_tls=False), host=host, port=port)]
    bound_tls_port = None
    if tls_port is not None:
        servers.append(
            await loop.create_server(lambda: protocol(implicit_tls=True), host=host, port=tls_port, ssl=context)
        )
        bound_tls_port = servers[1].sockets[0].getsockname()[1]
    if on_ready:
        on_ready(host, servers[0].sockets[0].getsockname()[1], bound_tls_port)
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        await handler.drain(SHUTDOWN_GRACE_SECONDS)
        await loop.run_in_executor(None, _close_thread_connections, executor)
        executor.shutdown(wait=False)
        log.info("SMTP submission server stopped")
