from django.contrib import admin

from pufferpost.admin_actions import ask_reason, report
from pufferpost.admin_mixins import ReadOnlyAdminMixin
from pufferpost.models import ApiKey, Workspace
from pufferpost.services import api_key_revoke, workspace_set_sending_paused


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "sending_paused", "rate_limit_per_minute", "monthly_quota", "created_at")
    list_filter = ("sending_paused",)
    search_fields = ("name", "=id")
    fields = (
        "id",
        "name",
        "default_locale",
        "sending_paused",
        "sending_paused_reason",
        "rate_limit_per_minute",
        "monthly_quota",
        "max_domains",
        "max_senders",
        "bounce_rate_threshold",
        "complaint_rate_threshold",
        "block_rate_threshold",
        "reputation_min_volume",
        "open_tracking",
        "click_tracking",
        "message_retention_days",
        "content_retention_days",
        "created_at",
        "updated_at",
    )
    # Sending is paused and resumed only through the actions, which go through the service.
    readonly_fields = ("id", "sending_paused", "sending_paused_reason", "created_at", "updated_at")
    actions = ("pause_sending", "resume_sending")

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Pause sending…", permissions=["change"])
    def pause_sending(self, request, queryset):
        reason = ask_reason(self, request, queryset, title="Pause sending", button="Pause sending")
        if not isinstance(reason, str):
            return reason
        done = sum(workspace_set_sending_paused(workspace=w, paused=True, reason=reason) for w in queryset)
        report(self, request, done=done, skipped=len(queryset) - done, verb_past="Paused", skipped_why="already paused")

    @admin.action(description="Resume sending", permissions=["change"])
    def resume_sending(self, request, queryset):
        done = sum(workspace_set_sending_paused(workspace=w, paused=False) for w in queryset)
        report(self, request, done=done, skipped=len(queryset) - done, verb_past="Resumed", skipped_why="not paused")


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Keys are created by `create_api_key`, which shows the secret once; here they are only listed and revoked."""

    list_display = ("visible_prefix", "name", "workspace", "mode", "scopes", "created_at", "revoked_at")
    list_filter = ("livemode", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("workspace",)
    search_fields = ("prefix", "name", "=id", "=workspace__id", "workspace__name")
    fields = ("id", "visible_prefix", "name", "workspace", "mode", "scopes", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)

    @admin.display(description="Key", ordering="prefix")
    def visible_prefix(self, key):
        return f"{key.prefix}…"

    @admin.display(description="Mode", ordering="livemode")
    def mode(self, key):
        return "live" if key.livemode else "test"

    def has_revoke_permission(self, request):
        return request.user.has_perm("pufferpost.change_apikey")

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke(self, request, queryset):
        done = sum(api_key_revoke(key=key) for key in queryset)
        report(
            self, request, done=done, skipped=len(queryset) - done, verb_past="Revoked", skipped_why="already revoked"
        )
