"""A loopback HTTP receiver for webhook tests, and the receiver-side signature check."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import wait_for
from tests.messaging.factories import MessageFactory


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """What a customer's receiver does (the README shows the same function)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp, signature = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Received:
    def __init__(self, path, headers, body):
        self.path = path
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)


class Receiver:
    """Records every POST; answers from `script` (status, delay, headers) in order, then 200."""

    def __init__(self, tls_context=None):
        self.requests: list[Received] = []
        self.script: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                    step = receiver.script.pop(0) if receiver.script else {}
                time.sleep(step.get("delay", 0))
                payload = step.get("body", b"ok")
                try:
                    self.send_response(step.get("status", 200))
                    for name, value in step.get("headers", {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls_context is not None:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls_context else 'http'}://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        wait_for(
            lambda: len(self.requests) >= count,
            what=f"{count} requests",
            timeout=timeout,
            interval=0.05,
            detail=lambda: f"got {len(self.requests)}",
        )
        return self.requests

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def allow_private(settings):
    settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE = True


@pytest.fixture
def message(workspace):
    return MessageFactory(workspace=workspace, to="jane@example.com", metadata={"order_id": "o_9"})
