from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.test import Client

from messaging.models import MessageEvent, Suppression, Unsubscribe
from messaging.tracking.links import click_url, open_url, unsubscribe_token, unsubscribe_url
from messaging.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.helpers import assert_envelope
from tests.messaging.factories import SuppressionFactory, UnsubscribeFactory
from tests.messaging.tracking.conftest import RECIPIENT

ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def client():
    # CSRF checks on, no cookies: exactly what a mailbox provider's POST looks like.
    return Client(enforce_csrf_checks=True)


def one_click(client, message_id):
    return client.post(f"/u/{unsubscribe_token(message_id)}", ONE_CLICK, content_type=FORM)


def unsubscribed_events(message):
    return list(MessageEvent.objects.filter(message=message, type="unsubscribed"))


def assert_plain_not_found(response):
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"not valid" in response.content
    assert b'"error"' not in response.content


def test_the_link_in_mail_is_the_route(make_message, client):
    message = make_message()
    response = client.get(urlsplit(unsubscribe_url(message.id)).path)
    assert response.status_code == 200


def test_get_shows_a_confirmation_form_and_changes_nothing(make_message, group, client):
    message = make_message(unsubscribe_group=group)
    path = f"/u/{unsubscribe_token(message.id)}"
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    assert f'<form method="post" action="{path}">' in page
    assert "“Order updates” emails from receipts@mail.acme.com" in page
    assert "pufferpost" not in page.lower()  # white-label
    assert not Unsubscribe.objects.exists() and not Suppression.objects.exists()
    assert unsubscribed_events(message) == []
    assert client.head(path).status_code == 200
    assert not Unsubscribe.objects.exists()


def test_the_page_escapes_the_group_name(make_message, group, client):
    group.name = "<script>alert(1)</script>"
    group.save()
    message = make_message(unsubscribe_group=group)
    page = client.get(f"/u/{unsubscribe_token(message.id)}").content.decode()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_one_click_post_opts_out_of_the_group_and_the_next_send_in_it_is_refused(
    make_message, group, client, api, send_body
):
    message = make_message(unsubscribe_group=group)
    response = one_click(client, message.id)
    assert response.status_code == 200
    assert b"You have been unsubscribed." in response.content
    assert Unsubscribe.objects.filter(group=group, email=RECIPIENT).count() == 1
    assert not Suppression.objects.exists()
    [event] = unsubscribed_events(message)
    assert event.workspace_id == message.workspace_id
    assert event.detail == {"email": RECIPIENT, "group": group.id, "source": "one-click"}

    refused = api.post("/v1/messages", send_body(unsubscribeGroup=group.id), format="json")
    assert_envelope(refused, 422, "recipient_unsubscribed")
    # The opt-out is from that group only; other mail to the recipient still goes.
    assert api.post("/v1/messages", send_body(), format="json").status_code == 202


def test_one_click_post_without_a_group_suppresses_the_recipient_in_the_workspace(
    make_message, client, api, send_body, group
):
    message = make_message()
    assert one_click(client, message.id).status_code == 200
    suppression = Suppression.objects.get()
    assert (suppression.workspace_id, suppression.email, suppression.reason) == (
        message.workspace_id,
        RECIPIENT,
        "unsubscribe",
    )
    assert not Unsubscribe.objects.exists()
    [event] = unsubscribed_events(message)
    assert event.detail == {"email": RECIPIENT, "group": None, "source": "one-click"}
    assert_envelope(api.post("/v1/messages", send_body(), format="json"), 422, "recipient_suppressed")
    assert_envelope(
        api.post("/v1/messages", send_body(unsubscribeGroup=group.id), format="json"), 422, "recipient_suppressed"
    )


def test_a_send_whose_group_was_deleted_falls_back_to_a_suppression(make_message, group, client):
    message = make_message(unsubscribe_group=group)
    group.delete()
    assert one_click(client, message.id).status_code == 200
    assert Suppression.objects.get().reason == "unsubscribe"


@pytest.mark.parametrize("grouped", [True, False], ids=["group", "no-group"])
def test_repeated_posts_change_nothing_and_record_once(make_message, group, client, grouped):
    message = make_message(unsubscribe_group=group if grouped else None)
    for _ in range(3):
        assert one_click(client, message.id).status_code == 200
    assert Unsubscribe.objects.count() == (1 if grouped else 0)
    assert Suppression.objects.count() == (0 if grouped else 1)
    assert len(unsubscribed_events(message)) == 1


def test_a_second_message_to_an_opted_out_recipient_records_nothing_more(make_message, group, client):
    first, second = make_message(unsubscribe_group=group), make_message(unsubscribe_group=group)
    one_click(client, first.id)
    assert one_click(client, second.id).status_code == 200
    assert Unsubscribe.objects.count() == 1
    assert MessageEvent.objects.filter(type="unsubscribed").count() == 1


def test_an_existing_bounce_suppression_keeps_its_reason(make_message, workspace, client):
    SuppressionFactory(workspace=workspace, email=RECIPIENT, reason="bounce")
    message = make_message()
    assert one_click(client, message.id).status_code == 200
    assert Suppression.objects.get().reason == "bounce"
    assert unsubscribed_events(message) == []


def test_the_confirmation_button_posts_without_the_one_click_body(make_message, group, client):
    message = make_message(unsubscribe_group=group)
    response = client.post(f"/u/{unsubscribe_token(message.id)}")
    assert response.status_code == 200
    assert unsubscribed_events(message)[0].detail["source"] == "page"
    assert Unsubscribe.objects.filter(group=group, email=RECIPIENT).exists()


def test_a_pre_existing_group_opt_out_is_left_alone(make_message, group, client):
    UnsubscribeFactory(group=group, email=RECIPIENT)
    message = make_message(unsubscribe_group=group)
    assert one_click(client, message.id).status_code == 200
    assert Unsubscribe.objects.count() == 1 and unsubscribed_events(message) == []


def forged_tokens(message_id):
    token = unsubscribe_token(message_id)
    other = "msg_01J9Z2K3M4N5P6Q7R8S9T0V1W3"
    return {
        "forged": f"{message_id}:not-a-signature",
        "altered": token.replace(message_id, other),
        "truncated": token[:-3],
        "other-salt": signing.Signer(salt="someone.else").sign(message_id),
        "open-token": open_url(message_id).rsplit("/", 1)[1].removesuffix(".gif"),
        "click-token": click_url(message_id, "https://shop.example.com/").rsplit("/", 1)[1],
        "garbage": "%00%ff..",
    }


@pytest.mark.parametrize(
    "kind", ["forged", "altered", "truncated", "other-salt", "open-token", "click-token", "garbage"]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_tokens_get_a_plain_404_and_change_nothing(make_message, client, kind, method):
    message = make_message()
    token = forged_tokens(message.id)[kind]
    response = (
        getattr(client, method)(f"/u/{token}", ONE_CLICK, content_type=FORM)
        if method == "post"
        else client.get(f"/u/{token}")
    )
    assert_plain_not_found(response)
    assert not Suppression.objects.exists() and not Unsubscribe.objects.exists()
    assert unsubscribed_events(message) == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_deleted_message_is_404(make_message, client, method):
    message = make_message()
    token = unsubscribe_token(message.id)
    message.delete()
    response = (
        client.post(f"/u/{token}", ONE_CLICK, content_type=FORM) if method == "post" else client.get(f"/u/{token}")
    )
    assert_plain_not_found(response)
    assert not Suppression.objects.exists()


def test_other_methods_are_refused(make_message, client):
    message = make_message()
    assert client.put(f"/u/{unsubscribe_token(message.id)}").status_code == 405
    assert client.delete(f"/u/{unsubscribe_token(message.id)}").status_code == 405
    assert not Suppression.objects.exists()


def test_the_unsubscribed_event_reaches_webhooks(make_message, group, client, workspace):
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace, url="https://hooks.example.com/pp", events=["unsubscribed"], secret="s" * 32
    )
    message = make_message(unsubscribe_group=group)
    one_click(client, message.id)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_type == "unsubscribed"
    assert delivery.event_id == unsubscribed_events(message)[0].id


def test_a_one_click_post_takes_a_handful_of_queries(make_message, group, client, django_assert_max_num_queries):
    message = make_message(unsubscribe_group=group)
    # Seven statements: the message (joined with its group and workspace), the opt-out's
    # get-or-create (select, insert), the event, the stats rollup's upsert, and the webhook
    # listener's two reads; the rest are the savepoints of nested atomic blocks.
    with django_assert_max_num_queries(13):
        assert one_click(client, message.id).status_code == 200
    with django_assert_max_num_queries(4):  # the repeat: two reads, inside one savepoint
        assert one_click(client, message.id).status_code == 200
