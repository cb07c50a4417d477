import json
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from pufferpost.models import ApiKey, Workspace
from pufferpost.services import api_key_create, workspace_create

DEMO_NAME = "Demo"


class Command(BaseCommand):
    help = (
        "Create (once) the demo workspace and a staff login, and print its API key and login. With "
        "--credentials FILE, both are kept there and reused by the next run while they still work."
    )

    def add_arguments(self, parser):
        parser.add_argument("--credentials", help="file to keep the key and login in (e.g. var/demo-credentials.txt)")
        parser.add_argument("--base-url", default="http://localhost:8000")

    def handle(self, *args, credentials=None, base_url="http://localhost:8000", **options):
        path = Path(credentials) if credentials else None
        previous = _read(path)
        workspace = Workspace.objects.filter(name=DEMO_NAME).order_by("created_at").first()
        if workspace is None:
            workspace = workspace_create(name=DEMO_NAME)
        raw = previous.get("api_key", "")
        still_active = ApiKey.objects.filter(
            key_hash=ApiKey.hash(raw), workspace=workspace, revoked_at__isnull=True
        ).exists()
        if not (raw and still_active):
            _, raw = api_key_create(workspace=workspace, name="make up")
        User = get_user_model()
        user = User.objects.filter(username="admin").first()
        password = previous.get("admin_password", "")
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@localhost", password)
        elif not (password and user.check_password(password)):
            password = "(unchanged; set one with: .venv/bin/python manage.py changepassword admin)"
        base = base_url.rstrip("/")
        text = (
            "\n"
            "  PufferPost is ready.\n"
            f"  API:          {base}/v1   (docs: {base}/docs/)\n"
            f"  API key:      {raw}\n"
            f"  Admin:        {base}/admin/\n"
            "  Staff login:  admin\n"
            f"  Password:     {password}\n"
            f"  Workspace:    {workspace.id}\n"
            "  Mail:         var/mail/*.eml\n"
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {"workspace_id": workspace.id, "api_key": raw, "admin_user": "admin", "admin_password": password}
            path.write_text(text + "\n" + json.dumps(record) + "\n")
            path.chmod(0o600)
            text += f"  (kept in {path})\n"
        self.stdout.write(text)


def _read(path: Path | None) -> dict:
    """The JSON line of an earlier credentials file, or nothing."""
    if path is None or not path.exists():
        return {}
    for line in reversed(path.read_text().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return {}
    return {}
