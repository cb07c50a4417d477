import re

import pytest

from pufferpost import ids
from senders.models import Sender
from senders.services import sender_pause
from tests.domains.factories import IssuedDomainFactory
from tests.helpers import assert_envelope, routes_with_an_id
from tests.senders.factories import ActiveSenderFactory, SenderFactory

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
SENDER_KEYS = {
    "id",
    "workspace_id",
    "from_address",
    "display_name",
    "state",
    "state_reason",
    "created_at",
    "updated_at",
}


def create(api, body):
    return api.post("/v1/senders", body, format="json")


def violations(response):
    error = assert_envelope(response, 422, "validation_failed")
    return {(v["field"], v["code"]) for v in error["violations"]}


def test_create_answers_201_under_review_with_the_guide_shape(api, workspace):
    response = create(api, {"fromAddress": "receipts@mail.acme.com", "displayName": "Acme Receipts"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == SENDER_KEYS
    assert ids.is_valid("snd", body["id"])
    assert body["workspace_id"] == workspace.id
    assert body["from_address"] == "receipts@mail.acme.com"
    assert body["display_name"] == "Acme Receipts"
    assert body["state"] == "under_review"
    assert body["state_reason"] == ""
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])
    assert Sender.objects.get(pk=body["id"]).workspace == workspace


def test_create_trims_and_lowercases_the_from_address(api):
    response = create(api, {"fromAddress": "  Receipts@Mail.ACME.com "})
    assert response.status_code == 201
    assert response.json()["from_address"] == "receipts@mail.acme.com"


@pytest.mark.parametrize(
    "body", [{"fromAddress": "a@mail.acme.com"}, {"fromAddress": "a@mail.acme.com", "displayName": None}]
)
def test_display_name_may_be_omitted_or_null(api, body):
    response = create(api, body)
    assert response.status_code == 201, response.content
    assert response.json()["display_name"] is None


def test_display_name_of_255_characters_is_accepted(api):
    response = create(api, {"fromAddress": "a@mail.acme.com", "displayName": "x" * 255})
    assert response.status_code == 201
    assert response.json()["display_name"] == "x" * 255


def test_a_duplicate_is_409_sender_exists_with_the_guide_message(api):
    assert create(api, {"fromAddress": "receipts@mail.acme.com"}).status_code == 201

    error = assert_envelope(create(api, {"fromAddress": "receipts@mail.acme.com"}), 409, "sender_exists")

    assert error["message"] == 'A sender for "receipts@mail.acme.com" already exists.'
    assert Sender.objects.count() == 1


def test_differently_cased_addresses_are_the_same_sender(api):
    assert create(api, {"fromAddress": "Receipts@mail.acme.com"}).status_code == 201

    error = assert_envelope(create(api, {"fromAddress": "receipts@mail.acme.com"}), 409, "sender_exists")

    assert error["message"] == 'A sender for "receipts@mail.acme.com" already exists.'


def test_the_same_address_in_another_workspace_is_a_separate_sender(api, other_api):
    assert create(api, {"fromAddress": "receipts@mail.acme.com"}).status_code == 201
    assert create(other_api, {"fromAddress": "receipts@mail.acme.com"}).status_code == 201


def test_different_local_parts_are_different_senders(api):
    assert create(api, {"fromAddress": "receipts@mail.acme.com"}).status_code == 201
    assert create(api, {"fromAddress": "noreply@mail.acme.com"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {("fromAddress", "required")}),
        ({"fromAddress": None}, {("fromAddress", "required")}),
        ({"fromAddress": ""}, {("fromAddress", "required")}),
        ({"fromAddress": "not-an-email"}, {("fromAddress", "invalid_email")}),
        ({"fromAddress": "receipts@"}, {("fromAddress", "invalid_email")}),
        ({"fromAddress": "a@mail.acme.com", "displayName": "x" * 256}, {("displayName", "max_length")}),
        ({"fromAddress": "a@mail.acme.com", "state": "active"}, {("state", "unknown_field")}),
        ({"fromAddress": "a@mail.acme.com", "from_address": "b@mail.acme.com"}, {("from_address", "unknown_field")}),
        (
            {"displayName": "x" * 256, "extra": 1},
            {("fromAddress", "required"), ("displayName", "max_length"), ("extra", "unknown_field")},
        ),
    ],
)
def test_invalid_bodies_are_422_with_violations(api, body, expected):
    assert violations(create(api, body)) == expected
    assert not Sender.objects.exists()


def test_malformed_json_is_400(api):
    assert_envelope(api.post("/v1/senders", "{nope", content_type="application/json"), 400, "invalid_json")


def test_there_is_no_public_way_to_approve_a_sender(api, workspace):
    sender = SenderFactory(workspace=workspace)
    for method in ("put", "patch", "delete"):
        response = getattr(api, method)(f"/v1/senders/{sender.id}", {"state": "active"}, format="json")
        assert_envelope(response, 405, "method_not_allowed")
    assert_envelope(api.post(f"/v1/senders/{sender.id}/approve", {}, format="json"), 404, "not_found")
    sender.refresh_from_db()
    assert sender.state == "under_review"


def test_get_one_includes_state_reason_and_updated_at(api, workspace):
    sender = ActiveSenderFactory(workspace=workspace, from_address="receipts@mail.acme.com", display_name=None)

    response = api.get(f"/v1/senders/{sender.id}")

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": sender.id,
        "workspace_id": workspace.id,
        "from_address": "receipts@mail.acme.com",
        "display_name": None,
        "state": "active",
        "state_reason": "Approved in review.",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])


def test_list_returns_only_this_workspaces_senders_newest_first(api, workspace, other_workspace):
    older = SenderFactory(workspace=workspace)
    newer = SenderFactory(workspace=workspace)
    SenderFactory(workspace=other_workspace)

    response = api.get("/v1/senders")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    assert [s["id"] for s in body["data"]] == [newer.id, older.id]
    assert all(set(s) == SENDER_KEYS for s in body["data"])


def test_list_is_empty_for_a_new_workspace(api):
    assert api.get("/v1/senders").json() == {"data": []}


def test_list_does_not_grow_queries_with_rows(api, workspace, django_assert_max_num_queries):
    SenderFactory.create_batch(30, workspace=workspace)
    with django_assert_max_num_queries(2):
        response = api.get("/v1/senders")
    assert len(response.json()["data"]) == 30


@pytest.mark.parametrize("sender_id", ["snd_01J9Z4P2C8H3M0K7V5XB9R2TFE", "nonsense", "dom_01J9Z4P2C8H3M0K7V5XB9R2TFE"])
def test_an_unknown_id_is_404_sender_not_found(api, sender_id):
    error = assert_envelope(api.get(f"/v1/senders/{sender_id}"), 404, "sender_not_found")
    assert error["message"] == "No such sender."


ID_ROUTES = routes_with_an_id("/v1/senders/")


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
def test_another_workspaces_sender_answers_exactly_like_a_missing_one(api, other_workspace, method, route):
    foreign = SenderFactory(workspace=other_workspace)

    foreign_error = assert_envelope(getattr(api, method)(route.format(id=foreign.id)), 404, "sender_not_found")
    missing_error = assert_envelope(
        getattr(api, method)(route.format(id="snd_01J9Z4P2C8H3M0K7V5XB9R2TFE")), 404, "sender_not_found"
    )

    foreign_error.pop("request_id"), missing_error.pop("request_id")
    assert foreign_error == missing_error


@pytest.mark.parametrize(
    ("method", "route", "body", "scope"),
    [
        ("get", "/v1/senders", None, "senders:read"),
        ("get", "/v1/senders/{id}", None, "senders:read"),
        ("post", "/v1/senders", {"fromAddress": "a@mail.acme.com"}, "senders:manage"),
    ],
)
def test_a_key_without_the_scope_is_403_missing_scope(make_client, workspace, method, route, body, scope):
    sender = SenderFactory(workspace=workspace)
    client = make_client(workspace, scopes=["domains:manage", "workspace:read"])
    kwargs = {"format": "json"} if body is not None else {}
    response = getattr(client, method)(route.format(id=sender.id), *([body] if body is not None else []), **kwargs)
    error = assert_envelope(response, 403, "missing_scope")
    assert scope in error["message"]


def test_read_scope_cannot_create(make_client, workspace):
    client = make_client(workspace, scopes=["senders:read"])
    assert client.get("/v1/senders").status_code == 200
    assert_envelope(create(client, {"fromAddress": "a@mail.acme.com"}), 403, "missing_scope")


def test_manage_scope_can_read(make_client, workspace):
    client = make_client(workspace, scopes=["senders:manage"])
    created = create(client, {"fromAddress": "a@mail.acme.com"}).json()
    assert client.get(f"/v1/senders/{created['id']}").status_code == 200


@pytest.mark.parametrize("route", ["/v1/senders", "/v1/senders/snd_01J9Z4P2C8H3M0K7V5XB9R2TFE"])
def test_without_a_key_is_401(client, db, route):
    assert_envelope(client.get(route), 401, "unauthorized")


def test_registering_a_sender_does_not_verify_its_domain(api, workspace):
    domain = IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")
    assert api.post("/v1/senders", {"fromAddress": "receipts@mail.acme.com"}, format="json").status_code == 201
    body = api.get(f"/v1/domains/{domain.id}").json()
    assert (body["verified"], body["dkim_status"]) == (False, "pending")


def test_a_paused_sender_reads_paused_with_its_reason(api, workspace):
    sender = ActiveSenderFactory(workspace=workspace)
    sender_pause(sender=sender, reason="Bounce rate above threshold", actor_label="system")
    body = api.get(f"/v1/senders/{sender.id}").json()
    assert (body["state"], body["state_reason"]) == ("paused", "Bounce rate above threshold")


def test_the_list_pages_on_request_and_keeps_the_guides_shape_otherwise(api, workspace):
    senders = [SenderFactory(workspace=workspace) for _ in range(3)]
    assert list(api.get("/v1/senders").json()) == ["data"]
    response = api.get("/v1/senders?limit=2")
    body = response.json()
    assert [s["id"] for s in body["data"]] == [senders[2].id, senders[1].id]
    assert 'rel="next"' in response["Link"]
    rest = api.get("/v1/senders", {"cursor": body["next_cursor"]}).json()
    assert [s["id"] for s in rest["data"]] == [senders[0].id] and rest["next_cursor"] is None


def test_senders_beyond_the_workspace_cap_are_a_409_and_a_duplicate_still_says_exists(api, workspace):
    workspace.max_senders = 1
    workspace.save()
    first = api.post("/v1/senders", {"fromAddress": "a@mail.acme.com"}, format="json")
    assert first.status_code == 201
    error = assert_envelope(
        api.post("/v1/senders", {"fromAddress": "b@mail.acme.com"}, format="json"), 409, "sender_limit_reached"
    )
    assert "limit of 1 senders" in error["message"]
    assert_envelope(api.post("/v1/senders", {"fromAddress": "a@mail.acme.com"}, format="json"), 409, "sender_exists")
    assert Sender.objects.filter(workspace=workspace).count() == 1


def test_a_duplicate_in_another_case_is_409_quoting_the_normalised_address(api):
    assert create(api, {"fromAddress": "receipts@mail.acme.com"}).status_code == 201

    error = assert_envelope(create(api, {"fromAddress": " RECEIPTS@Mail.Acme.com"}), 409, "sender_exists")

    assert error["message"] == 'A sender for "receipts@mail.acme.com" already exists.'
    assert Sender.objects.count() == 1


def test_a_display_name_of_255_multibyte_characters_is_accepted(api):
    response = create(api, {"fromAddress": "receipts@mail.acme.com", "displayName": "Ä" * 254 + "😀"})
    assert response.status_code == 201, response.content
    assert response.json()["display_name"] == "Ä" * 254 + "😀"
