from django import forms
from django.contrib import admin
from django.utils.html import format_html

from pufferpost.admin_actions import ask_reason, report
from pufferpost.admin_columns import ReadableColumnsMixin
from pufferpost.admin_forms import PercentField, percent
from pufferpost.admin_mixins import ReadOnlyAdminMixin
from pufferpost.formats import utc_timestamp
from pufferpost.models import ApiKey, Workspace
from pufferpost.services import api_key_revoke, workspace_set_sending_paused

# Stored as fractions (0.0500), typed and shown as percentages (5).
THRESHOLDS = {
    "bounce_rate_threshold": "Pauses a sender whose bounce rate (every class but block) is above this percentage.",
    "complaint_rate_threshold": "Pauses a sender whose complaint rate is above this percentage.",
    "block_rate_threshold": "Pauses a sender whose block rate (policy and reputation refusals) is above this percentage.",
}
COUNTS = ("rate_limit_per_minute", "monthly_quota", "max_domains", "max_senders", "reputation_min_volume")


@admin.register(Workspace)
class WorkspaceAdmin(ReadableColumnsMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "id",
        "sending_paused",
        "rate_limit_per_minute",
        "monthly_quota",
        "pause_thresholds",
        "created_at",
    )
    # Ids are cut too: selecting one still copies all of it, and the title shows it whole.
    column_widths = {"name": 24, "id": 16, "pause_thresholds": 18}
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

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in THRESHOLDS:
            return db_field.formfield(
                form_class=PercentField,
                label=f"{db_field.verbose_name.capitalize()} (%)",
                help_text=THRESHOLDS[db_field.name],
            )
        if db_field.name in COUNTS:
            kwargs["widget"] = forms.NumberInput(attrs={"class": "pp-number"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Pause thresholds")
    def pause_thresholds(self, workspace):
        return (
            f"bounce {percent(workspace.bounce_rate_threshold)} · complaint "
            f"{percent(workspace.complaint_rate_threshold)} · block {percent(workspace.block_rate_threshold)}"
        )

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


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ReadableColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Keys are created by `create_api_key`, which shows the secret once; here they are only listed and revoked."""

    list_display = ("visible_prefix", "name", "workspace", "mode", "status", "scopes", "created_at")
    column_widths = {"name": 16, "workspace": 18, "scopes": 18}
    list_filter = (ApiKeyStatusFilter, "livemode")
    list_select_related = ("workspace",)
    search_fields = ("prefix", "name", "=id", "=workspace__id", "workspace__name")
    fields = ("id", "visible_prefix", "name", "workspace", "mode", "scopes", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)

    @admin.display(description="Key", ordering="prefix")
    def visible_prefix(self, key):
        return f"{key.prefix}…"

    @admin.display(description="Status", ordering="revoked_at")
    def status(self, key):
        if key.revoked_at is None:
            return "Active"
        return format_html('<span title="Revoked at {}">Revoked</span>', utc_timestamp(key.revoked_at))

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
