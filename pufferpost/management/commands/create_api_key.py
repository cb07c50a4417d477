import json

from django.core.management.base import BaseCommand, CommandError

from pufferpost.models import SCOPES, Workspace
from pufferpost.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a workspace and print it (shown this once) as one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("workspace_id")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=SCOPES,
            help="Repeat for several; none means every scope.",
        )
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--test", action="store_true", help="A test key (key_test_…): sends are simulated, never delivered."
        )

    def handle(self, *args, workspace_id, scopes, name, test, **options):
        workspace = Workspace.objects.filter(pk=workspace_id).first()
        if workspace is None:
            raise CommandError(f"No workspace {workspace_id}.")
        key, raw = api_key_create(workspace=workspace, scopes=scopes, name=name, livemode=not test)
        printed = {"id": key.id, "key": raw, "scopes": key.scopes}
        if test:
            printed["test"] = True
        self.stdout.write(json.dumps(printed))
