from urllib.parse import urlsplit

import pytest
from django.core import signing

from messaging.models import MessageEvent
from messaging.tracking import services
from messaging.tracking.links import click_url, open_url, unsubscribe_token
from messaging.tracking.views import PIXEL
from pufferpost import redis as pp_redis
from tests.messaging.tracking.conftest import gif_facts

TARGET = "https://shop.example.com/orders/9?a=1&b=2"
UA = "Mozilla/5.0 (compatible; GoogleImageProxy)"


@pytest.fixture
def tracking(workspace):
    workspace.open_tracking = True
    workspace.click_tracking = True
    workspace.save()
    return workspace


def events(message, type):
    return list(MessageEvent.objects.filter(message=message, type=type))


def pixel_path(message_id):
    return urlsplit(open_url(message_id)).path


def click_path(message_id, target=TARGET):
    return urlsplit(click_url(message_id, target)).path


def assert_pixel(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response["Cache-Control"] == "no-store"
    assert response.content == PIXEL
    assert gif_facts(response.content) == {"width": 1, "height": 1, "transparent": True}


def test_the_pixel_is_a_transparent_1x1_gif():
    assert len(PIXEL) == 43
    assert gif_facts(PIXEL) == {"width": 1, "height": 1, "transparent": True}


def test_an_open_is_recorded_with_the_user_agent(tracking, make_message, client):
    message = make_message()
    assert_pixel(client.get(pixel_path(message.id), HTTP_USER_AGENT=UA))
    [event] = events(message, "opened")
    assert event.detail == {"user_agent": UA}
    assert event.workspace_id == message.workspace_id


def test_refetches_within_a_minute_record_one_open_and_a_later_one_counts(tracking, make_message, client, redis_client):
    message = make_message()
    for _ in range(3):
        assert_pixel(client.get(pixel_path(message.id)))
    assert len(events(message, "opened")) == 1
    redis_client.delete(pp_redis.key("open", message.id))  # the window has passed
    assert_pixel(client.get(pixel_path(message.id)))
    assert len(events(message, "opened")) == 2


def test_the_dedupe_window_expires_on_its_own(tracking, make_message, client, redis_client):
    message = make_message()
    client.get(pixel_path(message.id))
    ttl = redis_client.ttl(pp_redis.key("open", message.id))
    assert 0 < ttl <= services.OPEN_DEDUPE_SECONDS


def test_opens_are_not_recorded_when_the_workspace_does_not_track_them(workspace, make_message, client):
    message = make_message()
    assert_pixel(client.get(pixel_path(message.id)))
    assert events(message, "opened") == []
    # Switching it on later starts counting at once (nothing was held back in the dedupe window).
    workspace.open_tracking = True
    workspace.save()
    client.get(pixel_path(message.id))
    assert len(events(message, "opened")) == 1


def test_a_head_request_gets_the_pixel_but_records_nothing(tracking, make_message, client):
    message = make_message()
    response = client.head(pixel_path(message.id))
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert events(message, "opened") == []


def bad_open_tokens(message_id):
    token = urlsplit(open_url(message_id)).path.rsplit("/", 1)[1].removesuffix(".gif")
    return {
        "forged": f"{message_id}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "altered": token.replace(message_id, "msg_01J9Z2K3M4N5P6Q7R8S9T0V1W3"),
        "unsubscribe-token": unsubscribe_token(message_id),
        "click-token": click_url(message_id, TARGET).rsplit("/", 1)[1],
        "garbage": "nope",
    }


@pytest.mark.parametrize("kind", ["forged", "altered", "unsubscribe-token", "click-token", "garbage"])
def test_bad_open_tokens_still_get_the_pixel_and_record_nothing(tracking, make_message, client, kind):
    message = make_message()
    assert_pixel(client.get(f"/t/o/{bad_open_tokens(message.id)[kind]}.gif"))
    assert not MessageEvent.objects.filter(type="opened").exists()


def test_the_pixel_of_a_deleted_message_is_still_served(tracking, make_message, client):
    message = make_message()
    path = pixel_path(message.id)
    message.delete()
    assert_pixel(client.get(path))
    assert not MessageEvent.objects.filter(type="opened").exists()


def test_a_recording_failure_never_breaks_the_image(tracking, make_message, client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "message_event_record", broken)
    assert_pixel(client.get(pixel_path(make_message().id)))


def test_an_open_takes_a_handful_of_queries(tracking, make_message, client, django_assert_max_num_queries):
    message = make_message()
    # The message with its workspace, the event, the stats rollup's upsert, the webhook listener's
    # reads (plus a savepoint pair).
    with django_assert_max_num_queries(7):
        client.get(pixel_path(message.id))
    with django_assert_max_num_queries(1):  # a refetch inside the window: one read, no write
        client.get(pixel_path(message.id))


def test_a_click_redirects_to_the_signed_target_and_is_recorded(tracking, make_message, client):
    message = make_message()
    response = client.get(click_path(message.id), HTTP_USER_AGENT=UA)
    assert response.status_code == 302
    assert response["Location"] == TARGET
    assert response["Cache-Control"] == "no-store"
    [event] = events(message, "clicked")
    assert event.detail == {"url": TARGET, "user_agent": UA}


def test_every_click_counts(tracking, make_message, client):
    message = make_message()
    client.get(click_path(message.id))
    client.get(click_path(message.id, "http://other.example.com/"))
    assert [e.detail["url"] for e in events(message, "clicked")] == [TARGET, "http://other.example.com/"]


@pytest.mark.parametrize(
    "query",
    [
        "?next=https://evil.example.net/",
        "?url=https://evil.example.net/&target=https://evil.example.net/",
        "?redirect=//evil.example.net",
    ],
)
def test_nothing_from_the_query_string_changes_the_target(tracking, make_message, client, query):
    message = make_message()
    response = client.get(click_path(message.id) + query)
    assert response.status_code == 302
    assert response["Location"] == TARGET
    assert events(message, "clicked")[0].detail["url"] == TARGET


def test_a_click_still_redirects_when_click_tracking_is_off(workspace, make_message, client):
    message = make_message()
    response = client.get(click_path(message.id))
    assert response.status_code == 302 and response["Location"] == TARGET
    assert events(message, "clicked") == []


def test_a_click_on_a_deleted_message_still_redirects(tracking, make_message, client):
    message = make_message()
    path = click_path(message.id)
    message.delete()
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == TARGET
    assert not MessageEvent.objects.filter(type="clicked").exists()


def test_a_recording_failure_still_redirects(tracking, make_message, client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "message_event_record", broken)
    response = client.get(click_path(make_message().id))
    assert response.status_code == 302 and response["Location"] == TARGET


def bad_click_tokens(message_id):
    token = click_url(message_id, TARGET).rsplit("/", 1)[1]
    flipped = "A" if token[-1] != "A" else "B"
    return {
        "altered-signature": token[:-1] + flipped,
        "altered-payload": token[:5] + ("x" if token[5] != "x" else "y") + token[6:],
        "other-salt": signing.dumps([message_id, TARGET], salt="someone.else", compress=True),
        "unsigned-payload": token.rsplit(":", 1)[0],
        "javascript-target": signing.dumps([message_id, "javascript:alert(1)"], salt="pufferpost.click"),
        "relative-target": signing.dumps([message_id, "//evil.example.net/"], salt="pufferpost.click"),
        "unsubscribe-token": unsubscribe_token(message_id),
        "open-token": open_url(message_id).rsplit("/", 1)[1].removesuffix(".gif"),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "altered-signature",
        "altered-payload",
        "other-salt",
        "unsigned-payload",
        "javascript-target",
        "relative-target",
        "unsubscribe-token",
        "open-token",
    ],
)
def test_bad_click_tokens_are_a_plain_404_without_a_redirect(tracking, make_message, client, kind):
    message = make_message()
    response = client.get(f"/t/c/{bad_click_tokens(message.id)[kind]}?next={TARGET}")
    assert response.status_code == 404
    assert "Location" not in response
    assert response["Content-Type"].startswith("text/html")
    assert b'"error"' not in response.content
    assert not MessageEvent.objects.filter(type="clicked").exists()


def test_a_click_takes_a_handful_of_queries(tracking, make_message, client, django_assert_max_num_queries):
    message = make_message()
    with django_assert_max_num_queries(7):  # as the open: the event and its rollup upsert among them
        assert client.get(click_path(message.id)).status_code == 302
