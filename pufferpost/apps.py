from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PufferPostConfig(AppConfig):
    name = "pufferpost"
    verbose_name = "Workspaces and API keys"

    def ready(self):
        from pufferpost import openapi  # noqa: F401 - registers the bearer scheme with drf-spectacular


class PufferPostAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the console's own site (the operator's name); listed in INSTALLED_APPS."""

    default = False
    default_site = "pufferpost.admin_site.PufferPostAdminSite"
