"""An SMTP submission server on a free loopback port (in a thread, sharing the test's database),
a certificate for it made with `cryptography`, and a workspace that delivers to the loopback MX."""

import asyncio
import threading

import pytest

from messaging.submission.smtp import submission_smtp_serve
from tests.certificates import self_signed_certificate
from tests.messaging.delivery.conftest import smtp_sink  # noqa: F401  (the loopback MX)
from tests.messaging.delivery.pipeline import make_sendable


class SubmissionServer:
    def __init__(self, tls_port: bool = False):
        self.want_tls_port = tls_port
        self.ready = threading.Event()
        self.port = self.tls_port = None
        self.error: BaseException | None = None

    def start(self):
        def run():
            async def main():
                self.loop = asyncio.get_running_loop()
                self.stop_event = asyncio.Event()

                def ready(host, port, tls_port):
                    self.port, self.tls_port = port, tls_port
                    self.ready.set()

                await submission_smtp_serve(
                    host="127.0.0.1",
                    port=0,
                    tls_port=0 if self.want_tls_port else None,
                    on_ready=ready,
                    stop=self.stop_event,
                )

            try:
                asyncio.run(main())
            except BaseException as exc:  # reported to the test by start()
                self.error = exc
                self.ready.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.ready.wait(20), "the submission server did not start"
        if self.error is not None:
            raise self.error
        return self

    def stop(self):
        if self.error is None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


@pytest.fixture(scope="session")
def submission_cert(tmp_path_factory):
    """A self-signed certificate for localhost / 127.0.0.1: (cert path, key path)."""
    cert_path, key_path = self_signed_certificate(
        tmp_path_factory.mktemp("submission-tls"),
        "localhost",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
        ca=True,
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def delivering(settings, dns, smtp_sink, transactional_db, workspace):  # noqa: F811
    """A workspace whose mail reaches the loopback MX (the server's threads commit, so transactional)."""
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_SMTP_TIMEOUT = 5.0
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns)


@pytest.fixture
def insecure_submission(settings, delivering):
    """STARTTLS not configured; AUTH over plain TCP allowed (the dev/test setting)."""
    settings.PUFFERPOST_SUBMISSION_ALLOW_INSECURE_AUTH = True
    settings.PUFFERPOST_SUBMISSION_TLS_CERT = ""
    server = SubmissionServer().start()
    yield server
    server.stop()


@pytest.fixture
def tls_submission(settings, delivering, submission_cert):
    """The production shape: STARTTLS required before AUTH, plus an implicit-TLS port."""
    settings.PUFFERPOST_SUBMISSION_ALLOW_INSECURE_AUTH = False
    settings.PUFFERPOST_SUBMISSION_TLS_CERT, settings.PUFFERPOST_SUBMISSION_TLS_KEY = submission_cert
    server = SubmissionServer(tls_port=True).start()
    yield server
    server.stop()
