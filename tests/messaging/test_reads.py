from datetime import UTC, datetime, timedelta

import pytest

from messaging.models import Message, MessageAttachment, MessageEvent
from tests.helpers import assert_envelope, routes_with_an_id
from tests.messaging.conftest import make_sendable
from tests.messaging.factories import MessageFactory

MESSAGE_KEYS = {
    "id", "status", "to", "from", "reply_to", "cc", "attachments", "subject", "template_id", "template_name",
    "template_version", "data", "metadata", "tags", "locale", "timezone", "unsubscribe_group", "test",
    "created_at", "updated_at",
}  # fmt: skip


def test_a_message_reads_back_in_the_guides_shape(api, sendable, body):
    sent = api.post(
        "/v1/messages",
        body(replyTo="support@acme.com", cc=["audit@acme.com"], metadata={"order_id": "o_9", "user_id": "123"}),
        format="json",
    ).json()
    response = api.get(f"/v1/messages/{sent['id']}")
    assert response.status_code == 200
    view = response.json()
    assert set(view) == MESSAGE_KEYS
    assert view | {"created_at": None, "updated_at": None} == {
        "id": sent["id"],
        "status": "accepted",
        "to": "jane@example.com",
        "from": "receipts@mail.acme.com",
        "reply_to": "support@acme.com",
        "cc": ["audit@acme.com"],
        "attachments": [],
        "subject": "",
        "template_id": sendable.template.id,
        "template_name": "Order confirmation",
        "template_version": 2,
        "data": {"name": "Jane"},
        "metadata": {"order_id": "o_9", "user_id": "123"},
        "tags": [],
        "locale": "en",
        "timezone": "UTC",
        "unsubscribe_group": None,
        "test": False,
        "created_at": None,
        "updated_at": None,
    }
    assert view["created_at"].endswith("+00:00")


def test_an_unknown_message_is_404_message_not_found(api):
    assert_envelope(api.get("/v1/messages/msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2"), 404, "message_not_found")
    assert_envelope(api.get("/v1/messages/msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2/events"), 404, "message_not_found")


@pytest.mark.parametrize("route", [route for _, route in routes_with_an_id("/v1/messages/")])
def test_another_workspaces_message_is_404_on_every_route(api, other_workspace, route):
    foreign = MessageFactory(workspace=other_workspace)
    response = api.get(route.format(id=foreign.id))
    error = assert_envelope(response, 404, "message_not_found")
    missing = api.get(route.format(id="msg_01J9Z2K3M4N5P6Q7R8S9T0V1W2")).json()["error"]
    assert error["message"] == missing["message"]


def test_another_workspaces_messages_are_not_listed(api, other_workspace, workspace):
    MessageFactory(workspace=other_workspace)
    assert api.get("/v1/messages").json() == {"data": [], "next_cursor": None}


def test_reads_need_messages_read(make_client, workspace):
    client = make_client(workspace, scopes=["messages:send"])
    message = MessageFactory(workspace=workspace)
    for route in ("/v1/messages", f"/v1/messages/{message.id}", f"/v1/messages/{message.id}/events"):
        assert_envelope(client.get(route), 403, "missing_scope")


def test_the_timeline_is_oldest_first(api, workspace):
    message = MessageFactory(workspace=workspace)
    base = message.created_at
    MessageEvent.objects.create(
        message=message,
        workspace=workspace,
        type="delivered",
        occurred_at=base + timedelta(seconds=9),
        detail={"code": 250, "response": "2.0.0 Ok: queued", "mx_host": "mx.example.com"},
    )
    MessageEvent.objects.create(
        message=message, workspace=workspace, type="sent", occurred_at=base + timedelta(seconds=3)
    )
    response = api.get(f"/v1/messages/{message.id}/events")
    assert response.status_code == 200
    data = response.json()["data"]
    assert [e["type"] for e in data] == ["accepted", "sent", "delivered"]
    assert set(data[0]) == {"id", "type", "occurred_at", "recorded_at", "detail"}
    assert data[2]["detail"] == {"code": 250, "response": "2.0.0 Ok: queued", "mx_host": "mx.example.com"}
    assert data[0]["id"].startswith("evt_")


def test_occurred_at_is_when_it_happened_and_recorded_at_when_it_was_ingested(api, workspace):
    message = MessageFactory(workspace=workspace)
    happened = datetime(2026, 6, 9, 10, 15, 41, tzinfo=UTC)
    MessageEvent.objects.create(message=message, workspace=workspace, type="delivered", occurred_at=happened)
    events = api.get(f"/v1/messages/{message.id}/events").json()["data"]
    [delivered] = [e for e in events if e["type"] == "delivered"]
    assert delivered["occurred_at"] == "2026-06-09T10:15:41+00:00"
    recorded = datetime.fromisoformat(delivered["recorded_at"])
    assert delivered["recorded_at"].endswith("+00:00")
    assert recorded > happened
    assert abs((recorded - datetime.now(UTC)).total_seconds()) < 60


def _messages(workspace, count, **kwargs):
    sendable = make_sendable(workspace)
    base = datetime(2026, 6, 9, 10, 0, tzinfo=UTC)
    made = []
    for i in range(count):
        message = MessageFactory(workspace=workspace, sender=sendable.sender, template=sendable.template,
                                 template_version=sendable.version, **kwargs)  # fmt: skip
        Message.objects.filter(pk=message.pk).update(created_at=base + timedelta(minutes=i // 2))
        made.append(message.pk)
    return sendable, made


def test_the_list_walks_every_page_newest_first(api, workspace):
    _, made = _messages(workspace, 7)
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/v1/messages", params).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and set(seen) == set(made)
    ordered = list(Message.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    assert seen == ordered


def test_the_list_defaults_to_25(api, workspace):
    _messages(workspace, 26)
    page = api.get("/v1/messages").json()
    assert len(page["data"]) == 25 and page["next_cursor"]


def test_limit_takes_1_to_100(api, workspace):
    _messages(workspace, 101)
    page = api.get("/v1/messages", {"limit": 100}).json()
    assert len(page["data"]) == 100 and page["next_cursor"]
    last = api.get("/v1/messages", {"limit": 100, "cursor": page["next_cursor"]}).json()
    assert len(last["data"]) == 1 and last["next_cursor"] is None
    assert len(api.get("/v1/messages", {"limit": 1}).json()["data"]) == 1


@pytest.mark.parametrize(
    "status", ["accepted", "queued", "sent", "delivered", "bounced", "complained", "suppressed", "errored"]
)
def test_every_lifecycle_status_is_a_filter(api, workspace, status):
    _, made = _messages(workspace, 2)
    Message.objects.filter(pk=made[0]).update(status=status)
    Message.objects.filter(pk=made[1]).update(status="delivered" if status != "delivered" else "bounced")
    response = api.get("/v1/messages", {"status": status})
    assert response.status_code == 200
    assert [(m["id"], m["status"]) for m in response.json()["data"]] == [(made[0], status)]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "garbage"}, {"status": "nope"},
     {"createdAfter": "yesterday"}, {"createdBefore": "2026-13-01"}],
)  # fmt: skip
def test_bad_list_parameters_are_422(api, workspace, params):
    assert_envelope(api.get("/v1/messages", params), 422, "validation_failed")


def test_a_tampered_or_foreign_cursor_is_422(api, workspace):
    _messages(workspace, 3)
    cursor = api.get("/v1/messages", {"limit": 1}).json()["next_cursor"]
    assert_envelope(api.get("/v1/messages", {"cursor": cursor[:-2] + "xx"}), 422, "validation_failed")
    assert_envelope(api.get("/v1/messages", {"cursor": cursor, "status": "bounced"}), 422, "validation_failed")


def test_the_list_filters(api, workspace):
    sendable, made = _messages(workspace, 4)
    Message.objects.filter(pk=made[0]).update(status="bounced", to="jane@example.com")
    other = MessageFactory(workspace=workspace, sender=sendable.sender)

    def ids(**params):
        return {m["id"] for m in api.get("/v1/messages", params).json()["data"]}

    assert ids(status="bounced") == {made[0]}
    assert ids(recipient="Jane@Example.com") == {made[0]}
    assert ids(**{"from": "RECEIPTS@mail.acme.com"}) == set(made) | {other.pk}
    assert ids(templateId=sendable.template.id) == set(made)
    assert ids(templateId=other.template_id) == {other.pk}
    assert ids(createdAfter="2026-06-09T10:01:00+00:00", createdBefore="2026-06-09T10:02:00Z") == set(made[2:4])
    assert ids(createdBefore="2026-06-09T10:01:00 00:00") == set(made[:2])  # an unencoded "+"
    assert ids(createdAfter="2026-06-09") == set(made) | {other.pk}


def test_list_and_read_queries_do_not_grow_with_rows(api, workspace, django_assert_max_num_queries):
    sendable, made = _messages(workspace, 30)
    for pk in made:
        MessageAttachment.objects.create(
            message_id=pk, position=0, filename="a.pdf", content_type="application/pdf", content=b"x"
        )
    with django_assert_max_num_queries(3):
        assert len(api.get("/v1/messages", {"limit": 30}).json()["data"]) == 30
    with django_assert_max_num_queries(3):
        assert api.get(f"/v1/messages/{made[0]}").status_code == 200
    with django_assert_max_num_queries(3):
        assert api.get(f"/v1/messages/{made[0]}/events").status_code == 200
    with django_assert_max_num_queries(3):
        assert api.get("/v1/messages", {"status": "accepted", "recipient": "x@example.com"}).status_code == 200


@pytest.mark.parametrize("name", ["recipient", "from", "templateId"])
def test_a_nul_in_a_text_filter_is_422_not_500(api, workspace, name):
    error = assert_envelope(api.get("/v1/messages", {name: "a\x00b"}), 422, "validation_failed")
    assert error["violations"] == [
        {"field": name, "code": "invalid_character", "message": error["violations"][0]["message"]}
    ]


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00-23:59", "2026-01-01T10:15:00+23:00"])
def test_offsets_postgresql_refuses_are_normalised_to_utc_not_500(api, workspace, raw):
    message = MessageFactory(workspace=workspace)
    response = api.get("/v1/messages", {"createdAfter": raw})
    assert response.status_code == 200, response.content
    assert [m["id"] for m in response.json()["data"]] == [message.id]


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"])
def test_a_timestamp_that_overflows_in_utc_is_422(api, workspace, raw):
    error = assert_envelope(api.get("/v1/messages", {"createdBefore": raw}), 422, "validation_failed")
    assert error["violations"][0] == {
        "field": "createdBefore",
        "code": "invalid_timestamp",
        "message": "Use an ISO 8601 timestamp.",
    }


def test_a_sent_messages_timeline_starts_with_its_accepted_event(api, sendable, body):
    sent = api.post("/v1/messages", body(), format="json").json()
    response = api.get(f"/v1/messages/{sent['id']}/events")
    assert response.status_code == 200
    (event,) = response.json()["data"]
    assert event["type"] == "accepted" and event["id"].startswith("evt_")
    assert event["occurred_at"].endswith("+00:00") and event["recorded_at"].endswith("+00:00")


def test_the_list_echoes_metadata_and_never_attachment_content(api, sendable, body):
    """metadata is "echoed back on reads", and attachment content on none of them."""
    content = "SGVsbG8gbGlzdCByZWFkZXI="
    attachment = {"filename": "receipt.pdf", "contentType": "application/pdf", "content": content}
    sent = api.post("/v1/messages", body(metadata={"order_id": "o_9"}, attachments=[attachment]), format="json")
    assert sent.status_code == 202, sent.content
    response = api.get("/v1/messages")
    (item,) = response.json()["data"]
    assert (item["id"], item["status"], item["to"]) == (sent.json()["id"], "accepted", "jane@example.com")
    assert item["metadata"] == {"order_id": "o_9"}
    assert content not in response.content.decode()


def test_the_list_filters_match_exactly_not_by_part(api, workspace):
    """The guide calls status, recipient, from and templateId exact-match filters."""
    sendable, made = _messages(workspace, 2)
    Message.objects.filter(pk=made[0]).update(to="jane@example.com")

    def ids(**params):
        response = api.get("/v1/messages", params)
        assert response.status_code == 200, response.content
        return {m["id"] for m in response.json()["data"]}

    assert ids(recipient="jane@example.com") == {made[0]}
    assert ids(recipient="jane") == set()
    assert ids(recipient="example.com") == set()
    assert ids(**{"from": "receipts"}) == set()
    assert ids(**{"from": "mail.acme.com"}) == set()
    assert ids(templateId=sendable.template.id[:-1]) == set()


GUIDE_EVENT_TYPES = [
    "accepted", "queued", "sent", "delivered", "opened", "clicked", "bounced", "complained", "suppressed",
    "unsubscribed", "errored",
]  # fmt: skip


def test_every_event_type_of_the_guide_reads_back_on_the_timeline(api, workspace):
    message = MessageFactory(workspace=workspace)
    base = message.created_at
    for i, kind in enumerate(GUIDE_EVENT_TYPES[1:], start=1):
        MessageEvent.objects.create(
            message=message, workspace=workspace, type=kind, occurred_at=base + timedelta(seconds=i)
        )
    response = api.get(f"/v1/messages/{message.id}/events")
    assert response.status_code == 200
    assert [e["type"] for e in response.json()["data"]] == GUIDE_EVENT_TYPES
