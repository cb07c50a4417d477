"""Delivery fixtures: DKIM keys, and SMTP servers on loopback whose answers each test decides."""

import base64
import socket
import ssl
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from messaging.delivery.mime import Attachment, build_message
from pufferpost.localdev.smtp_server import (
    ACCEPT,
    DEFER,
    REFUSE,
    REPLY,
    STALL,
    LoopbackSmtpServer,
    RecordingHandler,
    Rule,
    password_authenticator,
)
from tests.certificates import self_signed_certificate

MESSAGE_ID = "msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2"


class DkimKey:
    def __init__(self, key_size=2048):
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        # Stored exactly as domains.models.Domain keeps them: PKCS#8 PEM and base64 DER SPKI.
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public_b64 = base64.b64encode(
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).decode()
        self.public_key = key.public_key()

    @property
    def txt(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_b64}"

    def dnsfunc(self, name, timeout=5):
        """A dkimpy `dnsfunc` that answers this key for any name."""
        return self.txt.encode()


@pytest.fixture(scope="session")
def dkim_key():
    return DkimKey()


@pytest.fixture
def built_message(settings):
    """A complete outgoing message with every optional part: cc, reply-to, attachment, non-ASCII."""
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""

    def build(**overrides):
        fields = {
            "message_id": MESSAGE_ID,
            "from_email": "no-reply@mail.acme.test",
            "from_name": "Acme Shop",
            "to": "jane@example.com",
            "cc": ["audit@example.org"],
            "reply_to": "support@acme.test",
            "subject": "Your order o_9 is confirmed",
            "html": "<html><body><p>Hello Jane,</p><p>Your order <b>o_9</b> is confirmed. Total: 42.00 EUR.</p>"
            "<p>Thanks for shopping with Acme.</p></body></html>",
            "text": "Hello Jane,\n\nYour order o_9 is confirmed. Total: 42.00 EUR.\n\nThanks for shopping with Acme.\n",
            "attachments": [],
            "unsubscribe_url": "https://app.example.net/v1/unsubscribe/TOKEN123",
            "unsubscribe_mailto": "unsubscribe+TOKEN123@mail.acme.test",
            "date": datetime(2026, 6, 9, 10, 15, 30, tzinfo=UTC),
        }
        fields.update(overrides)
        return build_message(**fields)

    return build


@pytest.fixture
def pdf():
    return Attachment("receipt.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(range(256)) * 4)


class SmtpSink:
    """A recording aiosmtpd server on 127.0.0.1. `sink.rules["x@y"] = Rule(REFUSE)` changes one answer."""

    ACCEPT, REFUSE, DEFER, STALL = ACCEPT, REFUSE, DEFER, STALL

    def __init__(self, **smtp_kwargs):
        self.rules: dict[str, Rule] = {}
        self.handler = RecordingHandler(rule_for=lambda address: self.rules.get(address.lower(), Rule()))
        self.server = LoopbackSmtpServer(self.handler, **smtp_kwargs)

    def refuse(self, address):
        self.rules[address.lower()] = Rule(REFUSE)

    def defer(self, address):
        self.rules[address.lower()] = Rule(DEFER)

    def stall(self, address, seconds):
        self.rules[address.lower()] = Rule(STALL, seconds)

    def reply(self, address, text):
        self.rules[address.lower()] = Rule(REPLY, reply=text)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def received(self):
        return self.handler.received

    @property
    def connections(self) -> int:
        return self.handler.connections

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop()


@pytest.fixture
def smtp_sink():
    """An accepting SMTP server on a free loopback port; configure per-recipient answers on it."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


RELAY_USER, RELAY_PASSWORD = "relay-user", "s3cret p@ss"


@pytest.fixture
def smtp_relay():
    """An SMTP relay on loopback that requires AUTH (PLAIN/LOGIN over plain TCP, loopback only)."""
    sink = SmtpSink(
        auth_required=True,
        auth_require_tls=False,
        authenticator=password_authenticator(RELAY_USER, RELAY_PASSWORD),
    ).start()
    yield sink
    sink.stop()


@pytest.fixture
def closed_port():
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def self_signed_tls(tmp_path_factory):
    """A server SSLContext with a self-signed certificate for mx1.example.com (trusted by nobody)."""
    cert_path, key_path = self_signed_certificate(
        tmp_path_factory.mktemp("tls"), "mx1.example.com", dns_names=["mx1.example.com"]
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
def smtp_tls_sink(self_signed_tls):
    """A sink that offers STARTTLS with a self-signed certificate."""
    sink = SmtpSink(tls_context=self_signed_tls).start()
    yield sink
    sink.stop()
