"""The endpoints against the running app: real HTTP to pytest-django's live server, as mail clients do."""

import json
import urllib.error
import urllib.request

import pytest

from messaging.models import MessageEvent, Suppression, Unsubscribe
from messaging.tracking.links import click_url, open_url, unsubscribe_url
from messaging.tracking.views import PIXEL
from tests.messaging.tracking.conftest import RECIPIENT

TARGET = "https://shop.example.com/orders/9?a=1&b=2"


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # surface the 3xx itself as an HTTPError


# No proxy from the environment, and redirects reported rather than followed.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirects())


def fetch(url, *, data=None, headers=None, method=None):
    """(status, headers, body) of one real request; error statuses are answers, not exceptions."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


@pytest.fixture(autouse=True)
def public_url(live_server, settings):
    """Links point at the running app, as PUFFERPOST_PUBLIC_URL does in production."""
    settings.PUFFERPOST_PUBLIC_URL = live_server.url
    return live_server.url


@pytest.fixture
def tracking(workspace):
    workspace.open_tracking = workspace.click_tracking = True
    workspace.save()
    return workspace


def test_the_open_pixel_over_http(tracking, make_message):
    message = make_message()
    status, headers, body = fetch(open_url(message.id), headers={"User-Agent": "GoogleImageProxy"})
    assert (status, headers["Content-Type"], headers["Cache-Control"], body) == (200, "image/gif", "no-store", PIXEL)
    assert MessageEvent.objects.get(message=message, type="opened").detail == {"user_agent": "GoogleImageProxy"}


def test_the_click_redirect_over_http_is_not_an_open_redirect(tracking, make_message):
    message = make_message()
    status, headers, _ = fetch(click_url(message.id, TARGET) + "?next=https://evil.example.net/")
    assert (status, headers["Location"]) == (302, TARGET)
    assert MessageEvent.objects.get(message=message, type="clicked").detail["url"] == TARGET


def test_rfc_8058_one_click_over_http_and_the_next_send_is_refused(
    make_message, group, make_client, workspace, public_url
):
    message = make_message(unsubscribe_group=group)
    url = unsubscribe_url(message.id)

    status, _, page = fetch(url)  # a link scanner's prefetch
    assert status == 200 and b'<form method="post"' in page
    assert not Unsubscribe.objects.exists()

    for _ in range(2):  # providers may retry; the second POST changes nothing
        status, _, _ = fetch(
            url,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        assert status == 200
    assert list(Unsubscribe.objects.values_list("group_id", "email")) == [(group.id, RECIPIENT)]
    assert MessageEvent.objects.filter(message=message, type="unsubscribed").count() == 1

    key = make_client(workspace).raw_key
    body = {
        "from": message.from_address,
        "to": RECIPIENT,
        "templateId": message.template_id,
        "unsubscribeGroup": group.id,
    }
    status, _, answer = fetch(
        f"{public_url}/v1/messages",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    assert status == 422
    assert json.loads(answer)["error"]["code"] == "recipient_unsubscribed"


def test_one_click_without_a_group_suppresses_over_http(make_message):
    message = make_message()
    status, _, _ = fetch(
        unsubscribe_url(message.id),
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    assert status == 200
    assert Suppression.objects.get(email=RECIPIENT).reason == "unsubscribe"


def test_forged_tokens_are_refused_over_http(tracking, make_message, public_url):
    message = make_message()
    forged_unsubscribe = unsubscribe_url(message.id)[:-4] + "AAAA"
    status, headers, page = fetch(
        forged_unsubscribe,
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    status, headers, _ = fetch(f"{public_url}/t/c/{message.id}:AAAA?next=https://evil.example.net/")
    assert status == 404 and "Location" not in headers
    status, _, body = fetch(f"{public_url}/t/o/{message.id}:AAAA.gif")
    assert (status, body) == (200, PIXEL)
    assert not Suppression.objects.exists() and not Unsubscribe.objects.exists()
    assert not MessageEvent.objects.exclude(type="accepted").exists()
