"""GET /v1/messages/{id}/content equals what the receiving MX got; the admin shows it sandboxed."""

import re

import pytest
from rest_framework.test import APIClient

from messaging.delivery.services import deliver_messages
from messaging.models import MessageAttachment
from pufferpost.services import api_key_create
from tests.helpers import assert_envelope
from tests.messaging.delivery.pipeline import make_sendable, parse


@pytest.fixture
def setup(settings, dns, smtp_sink, workspace):
    settings.PUFFERPOST_SMTP_RELAY = ""
    settings.PUFFERPOST_SMTP_PORT = smtp_sink.port
    settings.PUFFERPOST_SMTP_HELO_NAME = "out.acme.test"
    settings.PUFFERPOST_PUBLIC_URL = "https://app.example.net"
    settings.PUFFERPOST_RETURN_PATH_DOMAIN = ""
    return make_sendable(workspace, dns)


def client_for(workspace, scopes=None, livemode=True):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_create(workspace=workspace, scopes=scopes, livemode=livemode)[1]}"
    )
    return client


def unwire(text: str) -> str:
    """A MIME text part as the recipient's client reads it: CRLF line ends become the text's own."""
    return text.replace("\r\n", "\n")


def test_content_equals_what_the_mx_received_tracking_included(setup, smtp_sink, workspace):
    workspace.open_tracking = workspace.click_tracking = True
    workspace.save()
    message = setup.message(to="jane@example.com", data={"name": "Jane <J>", "order_id": "o_9"})
    MessageAttachment.objects.create(
        message=message, position=0, filename="receipt.pdf", content_type="application/pdf", content=b"%PDF-1.4 x"
    )
    api = client_for(workspace, scopes=["messages:read"])
    assert_envelope(api.get(f"/v1/messages/{message.pk}/content"), 409, "content_not_available")

    deliver_messages(message_ids=[message.pk])

    (received,) = smtp_sink.received
    mail = parse(received.content)
    response = api.get(f"/v1/messages/{message.pk}/content")
    assert response.status_code == 200, response.content
    content = response.json()
    assert set(content) == {"id", "subject", "text", "html", "attachments", "built_at"}
    assert content["id"] == message.pk
    assert content["subject"] == mail["Subject"] == "Order o_9 confirmed"
    assert content["text"] == unwire(mail.get_body(("plain",)).get_content())
    assert content["html"] == unwire(mail.get_body(("html",)).get_content())
    # As delivered: the tracked link and the pixel are in it, the data escaped as rendered.
    assert "/t/c/" in content["html"] and "/t/o/" in content["html"] and "Jane &lt;J&gt;" in content["html"]
    assert content["attachments"] == [{"filename": "receipt.pdf", "content_type": "application/pdf"}]
    assert "JVBER" not in response.content.decode()  # attachment bytes are never echoed


def test_content_needs_messages_read_and_is_scoped(setup, workspace, other_workspace, smtp_sink):
    message = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    assert_envelope(
        client_for(workspace, scopes=["messages:send"]).get(f"/v1/messages/{message.pk}/content"), 403, "missing_scope"
    )
    assert_envelope(client_for(other_workspace).get(f"/v1/messages/{message.pk}/content"), 404, "message_not_found")
    assert_envelope(
        client_for(workspace, livemode=False).get(f"/v1/messages/{message.pk}/content"), 404, "message_not_found"
    )


def test_the_admin_shows_the_content_in_a_sandboxed_frame_with_a_strict_policy(setup, smtp_sink, admin_client):
    message = setup.message(to="jane@example.com")
    page = admin_client.get(f"/admin/messaging/message/{message.pk}/change/")
    assert page.status_code == 200 and b"Not built yet" in page.content
    deliver_messages(message_ids=[message.pk])

    page = admin_client.get(f"/admin/messaging/message/{message.pk}/change/").content.decode()
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    assert re.search(r"\bsandbox\b(?!=)", frame) and "allow-scripts" not in frame
    src = re.search(r'src="([^"]+)"', frame).group(1)
    assert "Order o_9 confirmed" in page

    html = admin_client.get(src)
    assert html.status_code == 200 and b"Hello Jane" in html.content
    policy = html["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy and "script-src" not in policy
    assert "img-src data:" in policy  # remote images (and the open pixel) are not loaded
    assert html["X-Content-Type-Options"] == "nosniff"


def test_the_content_frame_is_staff_only(setup, smtp_sink, client):
    message = setup.message(to="jane@example.com")
    deliver_messages(message_ids=[message.pk])
    response = client.get(f"/admin/messaging/message/{message.pk}/content.html")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
