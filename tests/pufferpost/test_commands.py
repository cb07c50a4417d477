import json

import pytest
from django.core.management import CommandError, call_command

from pufferpost.models import SCOPES, ApiKey, Workspace


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_create_workspace_prints_one_json_line(db):
    printed = run("create_workspace", "Acme")
    workspace = Workspace.objects.get(pk=printed["id"])
    assert printed == {"id": workspace.id, "name": "Acme"}
    assert workspace.id.startswith("wsp_")


def test_create_api_key_defaults_to_every_scope_and_the_key_works(db, client):
    workspace = run("create_workspace", "Acme")
    printed = run("create_api_key", workspace["id"])
    assert printed["id"].startswith("key_") and printed["key"].startswith("key_live_")
    assert printed["scopes"] == list(SCOPES)
    response = client.get("/v1/workspace", HTTP_AUTHORIZATION=f"Bearer {printed['key']}")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme"


def test_create_api_key_with_scopes(db):
    workspace = run("create_workspace", "Acme")
    printed = run("create_api_key", workspace["id"], "--scope", "domains:read", "--scope", "senders:manage")
    assert printed["scopes"] == ["domains:read", "senders:manage"]
    assert ApiKey.objects.get(pk=printed["id"]).scopes == ["domains:read", "senders:manage"]


def test_create_api_key_for_an_unknown_workspace_fails(db):
    with pytest.raises(CommandError):
        run("create_api_key", "wsp_01J9Z0A1B2C3D4E5F6G7H8J9K0")
