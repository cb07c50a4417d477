"""`demo_workspace` (run by make up): plain credentials, kept in var/, reused while they still work."""

import json

from django.contrib.auth import get_user_model
from django.core.management import call_command

from pufferpost.models import ApiKey
from pufferpost.services import api_key_revoke


def run(path, capsys) -> tuple[dict, str]:
    call_command("demo_workspace", credentials=str(path), base_url="http://127.0.0.1:8123")
    printed = capsys.readouterr().out
    record = json.loads(path.read_text().splitlines()[-1])
    return record, printed


def test_the_key_and_login_are_printed_plainly_and_kept(db, tmp_path, capsys):
    path = tmp_path / "demo-credentials.txt"
    first, printed = run(path, capsys)
    assert f"API key:      {first['api_key']}" in printed
    assert f"Password:     {first['admin_password']}" in printed
    assert "http://127.0.0.1:8123/admin/" in printed
    assert get_user_model().objects.get(username="admin").check_password(first["admin_password"])
    assert ApiKey.objects.filter(key_hash=ApiKey.hash(first["api_key"]), revoked_at__isnull=True).exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_second_run_reuses_them_and_a_revoked_key_is_replaced(db, tmp_path, capsys):
    path = tmp_path / "demo-credentials.txt"
    first, _ = run(path, capsys)
    second, _ = run(path, capsys)
    assert second == first
    assert ApiKey.objects.filter(workspace_id=first["workspace_id"]).count() == 1
    api_key_revoke(key=ApiKey.objects.get(key_hash=ApiKey.hash(first["api_key"])))
    third, printed = run(path, capsys)
    assert third["api_key"] != first["api_key"] and third["api_key"] in printed
    assert third["admin_password"] == first["admin_password"]
