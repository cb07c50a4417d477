from django.apps import AppConfig


class PufferPostConfig(AppConfig):
    name = "pufferpost"
    verbose_name = "Workspaces and API keys"
