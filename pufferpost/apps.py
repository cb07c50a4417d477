from django.apps import AppConfig


class PufferPostConfig(AppConfig):
    name = "pufferpost"
    verbose_name = "Workspaces and API keys"

    def ready(self):
        from pufferpost import openapi  # noqa: F401 - registers the bearer scheme with drf-spectacular
