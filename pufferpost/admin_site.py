"""The admin site, branded with the operator's `PUFFERPOST_CONSOLE_NAME` (read per request, so a
test's override_settings and a restart with a new name both show at once)."""

from django.conf import settings
from django.contrib import admin


class PufferPostAdminSite(admin.AdminSite):
    # The app list is on the index page and in the breadcrumbs; without the sidebar a changelist
    # has the whole 1280 px for its columns and filters.
    enable_nav_sidebar = False

    @property
    def site_header(self):
        return settings.PUFFERPOST_CONSOLE_NAME

    @property
    def site_title(self):
        return settings.PUFFERPOST_CONSOLE_NAME

    @property
    def index_title(self):
        return f"{settings.PUFFERPOST_CONSOLE_NAME}: workspaces, senders and mail"
