import struct

import pytest

from messaging import services as messaging_services
from tests.messaging.conftest import FROM, make_sendable
from tests.messaging.factories import MessageFactory, UnsubscribeGroupFactory

RECIPIENT = "jane@example.com"


@pytest.fixture(autouse=True)
def no_delivery(monkeypatch):
    """Sends accepted by these tests are never handed to delivery (no SMTP anywhere)."""
    monkeypatch.setattr(messaging_services.deliver_messages_task, "delay", lambda ids: None)


@pytest.fixture
def sendable(workspace):
    return make_sendable(workspace)


@pytest.fixture
def group(workspace):
    return UnsubscribeGroupFactory(workspace=workspace, name="Order updates")


@pytest.fixture
def make_message(sendable):
    """A stored message from the sendable workspace to `RECIPIENT`, optionally in a group."""

    def make(**overrides):
        fields = {
            "workspace": sendable.workspace,
            "sender": sendable.sender,
            "template": sendable.template,
            "template_version": sendable.version,
            "to": RECIPIENT,
            "status": "delivered",
        }
        fields.update(overrides)
        return MessageFactory(**fields)

    return make


@pytest.fixture
def send_body(sendable):
    def make(**extra):
        return {"from": FROM, "to": RECIPIENT, "templateId": sendable.template.id, "data": {"name": "Jane"}, **extra}

    return make


def gif_facts(data: bytes) -> dict:
    """Width, height and transparency of a single-image GIF, read from its blocks."""
    assert data[:6] == b"GIF89a" and data[-1:] == b";"
    width, height, packed = struct.unpack("<HHB", data[6:11])
    offset = 13 + (3 * 2 ** ((packed & 0x07) + 1) if packed & 0x80 else 0)
    transparent = False
    while data[offset] == 0x21:  # extension blocks before the image
        label, size = data[offset + 1], data[offset + 2]
        if label == 0xF9:
            transparent = bool(data[offset + 3] & 0x01)
        offset += 3 + size + 1
    assert data[offset] == 0x2C  # image descriptor
    return {"width": width, "height": height, "transparent": transparent}
