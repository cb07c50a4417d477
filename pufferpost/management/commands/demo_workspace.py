import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from pufferpost.models import Workspace
from pufferpost.services import api_key_create, workspace_create

DEMO_NAME = "Demo"


class Command(BaseCommand):
    help = "Create (once) the demo workspace and a staff login, and print a fresh API key for it."

    def handle(self, *args, **options):
        workspace = Workspace.objects.filter(name=DEMO_NAME).order_by("created_at").first()
        if workspace is None:
            workspace = workspace_create(name=DEMO_NAME)
        _, raw = api_key_create(workspace=workspace, name="make up")
        staff = {"username": "admin"}
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            staff["password"] = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@localhost", staff["password"])
        else:
            staff["password"] = "(unchanged; reset with: python manage.py changepassword admin)"
        self.stdout.write(json.dumps({"workspace_id": workspace.id, "api_key": raw, "admin": staff}))
        self.stdout.write(f"\n  API key:     {raw}\n  Admin login: http://localhost:8000/admin/  {staff}\n")
