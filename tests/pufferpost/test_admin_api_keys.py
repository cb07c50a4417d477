from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from pufferpost.models import ApiKey
from tests.helpers import assert_envelope

CHANGELIST = "/admin/pufferpost/apikey/"


def key_of(client):
    return ApiKey.objects.get(key_hash=ApiKey.hash(client.raw_key))


def test_keys_are_listed_by_prefix_without_the_hash_or_secret(admin_client, make_client, workspace):
    client = make_client(workspace, scopes=["senders:read"])
    key = key_of(client)

    for url in (CHANGELIST, f"{CHANGELIST}{key.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert key.prefix in html and workspace.name in html and "senders:read" in html
        assert key.key_hash not in html and client.raw_key not in html


def test_revoke_makes_the_key_answer_401(admin_client, make_client, workspace):
    client = make_client(workspace)
    assert client.get("/v1/workspace").status_code == 200

    response = admin_client.post(
        CHANGELIST, {"action": "revoke", ACTION_CHECKBOX_NAME: [key_of(client).pk], "index": 0}
    )

    assert response.status_code == 302
    assert key_of(client).revoked_at is not None
    assert_envelope(client.get("/v1/workspace"), 401, "unauthorized")
    assert "Revoked 1 api key." in [str(m) for m in admin_client.get(CHANGELIST).context["messages"]]


def test_keys_cannot_be_added_edited_or_deleted_in_the_admin(admin_client, make_client, workspace):
    key = key_of(make_client(workspace, scopes=["senders:read"]))
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{key.pk}/delete/").status_code == 403
    admin_client.post(f"{CHANGELIST}{key.pk}/change/", {"scopes": "domains:manage", "name": "x"})
    key.refresh_from_db()
    assert key.scopes == ["senders:read"] and key.name == ""
