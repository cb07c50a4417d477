import pytest

from messaging.models import Suppression, Unsubscribe
from tests.helpers import assert_envelope
from tests.messaging.factories import SuppressionFactory, UnsubscribeFactory, UnsubscribeGroupFactory


def test_a_manual_suppression_is_created_then_returned_unchanged(api, workspace):
    created = api.post("/v1/suppressions", {"email": "Blocked@Example.com", "reason": "manual"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["email"] == "blocked@example.com" and created.json()["reason"] == "manual"
    again = api.post("/v1/suppressions", {"email": "blocked@example.com"}, format="json")
    assert again.status_code == 200
    assert again.json() == created.json()
    assert Suppression.objects.filter(workspace=workspace).count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"email": "a@b.co", "reason": "bounce"}, "reason"),
        ({"email": "a@b.co", "x": 1}, "x"),
    ],
)
def test_bad_suppressions_are_422(api, workspace, payload, field):
    error = assert_envelope(api.post("/v1/suppressions", payload, format="json"), 422, "validation_failed")
    assert error["violations"][0]["field"] == field


def test_suppressions_list_with_a_cursor(api, workspace, other_workspace, django_assert_max_num_queries):
    SuppressionFactory.create_batch(5, workspace=workspace)
    SuppressionFactory(workspace=other_workspace)
    with django_assert_max_num_queries(2):
        first = api.get("/v1/suppressions", {"limit": 3}).json()
    second = api.get("/v1/suppressions", {"limit": 3, "cursor": first["next_cursor"]}).json()
    emails = [s["email"] for s in first["data"] + second["data"]]
    assert len(set(emails)) == 5 and second["next_cursor"] is None
    # Why it is suppressed and how to lift it ride along with every row (issue 11).
    assert set(first["data"][0]) == {"email", "reason", "created_at", "source_message_id", "detail", "why", "remove"}


def test_deleting_a_suppression(api, workspace, other_workspace):
    SuppressionFactory(workspace=workspace, email="blocked@example.com")
    SuppressionFactory(workspace=other_workspace, email="foreign@example.com")
    assert api.delete("/v1/suppressions/Blocked@example.com").status_code == 204
    assert_envelope(api.delete("/v1/suppressions/blocked@example.com"), 404, "suppression_not_found")
    assert_envelope(api.delete("/v1/suppressions/foreign@example.com"), 404, "suppression_not_found")
    assert Suppression.objects.filter(email="foreign@example.com").exists()


def test_suppression_scopes(make_client, workspace):
    reader = make_client(workspace, scopes=["suppressions:read"])
    assert reader.get("/v1/suppressions").status_code == 200
    assert_envelope(reader.post("/v1/suppressions", {"email": "a@b.co"}, format="json"), 403, "missing_scope")
    assert_envelope(reader.delete("/v1/suppressions/a@b.co"), 403, "missing_scope")
    assert_envelope(make_client(workspace, scopes=["messages:send"]).get("/v1/suppressions"), 403, "missing_scope")


def test_unsubscribe_groups_are_created_listed_and_read(api, workspace, django_assert_max_num_queries):
    created = api.post("/v1/unsubscribe-groups", {"name": "Receipts", "description": "Order mail"}, format="json")
    assert created.status_code == 201, created.content
    group = created.json()
    assert group["id"].startswith("grp_") and group["name"] == "Receipts" and group["description"] == "Order mail"
    assert api.get(f"/v1/unsubscribe-groups/{group['id']}").json() == group
    with django_assert_max_num_queries(2):
        assert api.get("/v1/unsubscribe-groups").json() == {"data": [group], "next_cursor": None}
    assert_envelope(api.post("/v1/unsubscribe-groups", {}, format="json"), 422, "validation_failed")


def test_opting_out_of_a_group_and_back_in(api, workspace):
    group = UnsubscribeGroupFactory(workspace=workspace)
    url = f"/v1/unsubscribe-groups/{group.id}/unsubscribes"
    created = api.post(url, {"email": "Jane@example.com"}, format="json")
    assert created.status_code == 201
    assert created.json()["email"] == "jane@example.com" and created.json()["group_id"] == group.id
    assert api.post(url, {"email": "jane@example.com"}, format="json").status_code == 200
    assert Unsubscribe.objects.count() == 1
    assert api.delete(f"{url}/jane@example.com").status_code == 204
    assert_envelope(api.delete(f"{url}/jane@example.com"), 404, "unsubscribe_not_found")


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("get", "/v1/unsubscribe-groups/{id}"),
        ("post", "/v1/unsubscribe-groups/{id}/unsubscribes"),
        ("delete", "/v1/unsubscribe-groups/{id}/unsubscribes/jane@example.com"),
    ],
)
def test_another_workspaces_group_is_404_on_every_route(api, other_workspace, method, route):
    foreign = UnsubscribeGroupFactory(workspace=other_workspace)
    UnsubscribeFactory(group=foreign, email="jane@example.com")
    response = getattr(api, method)(route.format(id=foreign.id), {"email": "x@example.com"}, format="json")
    assert_envelope(response, 404, "unsubscribe_group_not_found")
    missing = getattr(api, method)(
        route.format(id="grp_01J9Z2K3M4N5P6Q7R8S9T0V1W2"), {"email": "x@example.com"}, format="json"
    )
    assert_envelope(missing, 404, "unsubscribe_group_not_found")
    assert Unsubscribe.objects.filter(group=foreign).count() == 1


def test_group_routes_use_the_suppression_scopes(make_client, workspace):
    group = UnsubscribeGroupFactory(workspace=workspace)
    reader = make_client(workspace, scopes=["suppressions:read"])
    assert reader.get(f"/v1/unsubscribe-groups/{group.id}").status_code == 200
    assert_envelope(reader.post("/v1/unsubscribe-groups", {"name": "x"}, format="json"), 403, "missing_scope")
    url = f"/v1/unsubscribe-groups/{group.id}/unsubscribes"
    assert_envelope(reader.post(url, {"email": "a@b.co"}, format="json"), 403, "missing_scope")


def test_the_manage_scope_includes_reading_suppressions_and_groups(make_client, workspace):
    """CONTRACT: a `:manage` scope includes the matching `:read`."""
    manager = make_client(workspace, scopes=["suppressions:manage"])
    assert manager.post("/v1/suppressions", {"email": "a@b.co"}, format="json").status_code == 201
    listed = manager.get("/v1/suppressions")
    assert listed.status_code == 200
    assert [s["email"] for s in listed.json()["data"]] == ["a@b.co"]
    group = UnsubscribeGroupFactory(workspace=workspace)
    assert manager.get(f"/v1/unsubscribe-groups/{group.id}").status_code == 200
    assert manager.get("/v1/unsubscribe-groups").status_code == 200
