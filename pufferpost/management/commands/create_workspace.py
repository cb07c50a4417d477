import json

from django.core.management.base import BaseCommand

from pufferpost.services import workspace_create


class Command(BaseCommand):
    help = "Create a workspace and print it as one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--locale", default="en", help="Default locale for rendering (e.g. de, pt-BR).")

    def handle(self, *args, name, locale, **options):
        workspace = workspace_create(name=name, default_locale=locale)
        self.stdout.write(json.dumps({"id": workspace.id, "name": workspace.name}))
