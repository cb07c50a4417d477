import pytest

from messaging.models import Message, MessageAttachment, MessageEvent
from tests.factories import TemplateFactory
from tests.helpers import assert_envelope
from tests.messaging.conftest import b64
from tests.messaging.factories import SuppressionFactory, UnsubscribeFactory, UnsubscribeGroupFactory
from tests.messaging.test_send import VIOLATIONS


def batch(api, items, **extra):
    return api.post("/v1/messages/batch", {"messages": items, **extra}, format="json")


def test_items_are_accepted_or_rejected_independently(api, sendable, body):
    SuppressionFactory(workspace=sendable.workspace, email="blocked@example.com")
    response = batch(api, [body(), body(to="blocked@example.com", data={"name": "Sam"})])
    assert response.status_code == 200, response.content
    first, second = response.json()["data"]
    assert first["index"] == 0 and first["status"] == "accepted" and first["id"].startswith("msg_")
    assert second == {
        "index": 1,
        "status": "error",
        "error": {"code": "recipient_suppressed", "message": '"blocked@example.com" is on the suppression list.'},
    }
    assert list(Message.objects.values_list("id", flat=True)) == [first["id"]]
    assert MessageEvent.objects.get().message_id == first["id"]


@pytest.mark.parametrize(("overrides", "field", "code"), VIOLATIONS, ids=[v[1] + ":" + v[2] for v in VIOLATIONS])
def test_each_field_limit_fails_only_its_item(api, sendable, body, overrides, field, code):
    response = batch(api, [body(**overrides), body()])
    assert response.status_code == 200, response.content
    bad, good = response.json()["data"]
    assert bad["status"] == "error" and bad["error"]["code"] == "validation_failed"
    assert {"field": field, "code": code} in [
        {"field": v["field"], "code": v["code"]} for v in bad["error"]["violations"]
    ]
    assert good["status"] == "accepted"
    assert Message.objects.count() == 1


def test_every_send_error_code_in_batch_form(api, sendable, body, other_workspace):
    empty = TemplateFactory(workspace=sendable.workspace, slug="empty")
    group = UnsubscribeGroupFactory(workspace=sendable.workspace)
    UnsubscribeFactory(group=group, email="gone@example.com")
    SuppressionFactory(workspace=sendable.workspace, email="blocked@example.com")
    items = [
        body(templateId=...),
        body(templateId="tpl_nope"),
        body(templateId=..., template="nope"),
        body(templateId=empty.id),
        body(**{"from": "nobody@mail.acme.com"}),
        body(to="blocked@example.com"),
        body(unsubscribeGroup="grp_nope"),
        body(to="gone@example.com", unsubscribeGroup=group.id),
        "not an object",
        body(),
    ]
    results = batch(api, items).json()["data"]
    codes = [r["error"]["code"] if r["status"] == "error" else "accepted" for r in results]
    assert codes == [
        "template_required",
        "template_not_found",
        "template_not_found",
        "template_has_no_version",
        "sender_not_available",
        "recipient_suppressed",
        "unknown_unsubscribe_group",
        "recipient_unsubscribed",
        "validation_failed",
        "accepted",
    ]
    assert results[4]["error"]["message"] == 'No active sender for "nobody@mail.acme.com".'
    assert [r["index"] for r in results] == list(range(len(items)))


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": []},
        {"messages": [{}] * 101},
        {"messages": {"a": 1}},
        {"messages": "x"},
        {},
        {"messages": [{}], "x": 1},
    ],
    ids=["empty", "101 items", "object", "string", "missing", "unknown field"],
)
def test_a_malformed_batch_envelope_is_422(api, sendable, payload):
    error = assert_envelope(api.post("/v1/messages/batch", payload, format="json"), 422, "validation_failed")
    assert error["violations"]
    assert not Message.objects.exists()


def test_a_hundred_items_are_accepted(api, sendable, body):
    response = batch(api, [body(to=f"r{i}@example.com") for i in range(100)])
    results = response.json()["data"]
    assert [r["status"] for r in results] == ["accepted"] * 100
    assert Message.objects.count() == 100 and MessageEvent.objects.count() == 100


def test_a_paused_workspace_rejects_the_whole_batch(api, sendable, body):
    sendable.workspace.sending_paused = True
    sendable.workspace.save()
    assert_envelope(batch(api, [body()]), 403, "sending_paused")
    assert not Message.objects.exists()


def test_the_batch_needs_messages_send(make_client, sendable, body):
    client = make_client(sendable.workspace, scopes=["messages:read"])
    assert_envelope(batch(client, [body()]), 403, "missing_scope")


def test_the_batch_ignores_the_idempotency_key(api, sendable, body):
    first = api.post("/v1/messages/batch", {"messages": [body()]}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    second = api.post("/v1/messages/batch", {"messages": [body()]}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.json()["data"][0]["id"] != second.json()["data"][0]["id"]
    assert Message.objects.count() == 2


def test_a_hundred_item_batch_costs_a_constant_handful_of_queries(api, sendable, body, django_assert_max_num_queries):
    group = UnsubscribeGroupFactory(workspace=sendable.workspace)
    attachment = [{"filename": "a.txt", "contentType": "text/plain", "content": b64(b"hi")}]
    items = [
        body(to=f"r{i}@example.com", unsubscribeGroup=group.id, cc=["cc@example.com"], attachments=attachment)
        for i in range(100)
    ]
    batch(api, items[:1])  # warm-up
    # key, context, messages, events, the rollup upsert, attachments (+ savepoint pair in tests); no
    # webhook endpoint lookup in a workspace that has none
    with django_assert_max_num_queries(8):
        response = batch(api, items)
    assert [r["status"] for r in response.json()["data"]] == ["accepted"] * 100
    assert MessageAttachment.objects.count() == 101


def test_a_batch_enqueues_delivery_once_with_every_accepted_id(
    api, sendable, body, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = batch(api, [body(to=f"r{i}@example.com") for i in range(5)] + [body(templateId="tpl_nope")])
    ids = [r["id"] for r in response.json()["data"] if r["status"] == "accepted"]
    assert len(callbacks) == 1
    assert enqueued == [ids]


def test_batch_items_carry_exactly_the_guides_keys(api, sendable, body):
    """Accepted items are `index`, `status`, `id`; failed ones `index`, `status`, `error` and no id."""
    results = batch(api, [body(), body(templateId=...)]).json()["data"]
    assert set(results[0]) == {"index", "status", "id"}
    assert set(results[1]) == {"index", "status", "error"}
    assert results[1]["error"]["code"] == "template_required" and results[1]["error"]["message"]


def test_a_batch_whose_every_item_fails_is_still_200(api, sendable, body):
    """Only a paused workspace rejects the whole batch; failing items never do, however many."""
    response = batch(api, [body(templateId=...), body(to="jane"), body(**{"from": "nobody@mail.acme.com"})])
    assert response.status_code == 200, response.content
    results = response.json()["data"]
    assert [(r["index"], r["status"]) for r in results] == [(0, "error"), (1, "error"), (2, "error")]
    assert [r["error"]["code"] for r in results] == ["template_required", "validation_failed", "sender_not_available"]
    assert not Message.objects.exists() and not MessageEvent.objects.exists()
