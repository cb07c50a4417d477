from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from messaging import charts
from messaging.feedback.explain import suppression_why
from messaging.feedback.reputation import (
    sender_reputation_stats,
    sender_reputation_summary,
    workspace_reputation_stats,
    workspace_reputation_summary,
)
from messaging.models import (
    Message,
    MessageEvent,
    SenderReputation,
    Suppression,
    Unsubscribe,
    UnsubscribeGroup,
    WorkspaceReputation,
)
from messaging.selectors import message_content
from pufferpost.admin import WorkspaceAdmin
from pufferpost.admin_columns import ReadableColumnsMixin
from pufferpost.admin_mixins import ReadOnlyAdminMixin
from pufferpost.models import Workspace
from senders.admin import SenderAdmin
from senders.models import Sender

# The delivered HTML is customer content: shown in a sandboxed frame (no scripts, no forms, its own
# origin) and served with a policy that forbids scripts and every remote load (images, fonts, CSS).
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    fields = ("type", "occurred_at", "recorded_at", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(ReadableColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: messages change only through the send API and delivery."""

    list_display = ("id", "workspace", "to", "from_address", "status", "livemode", "created_at")
    column_widths = {"id": 16, "workspace": 14, "to": 20, "from_address": 18}
    list_filter = ("status", "livemode")
    search_fields = ("=id", "=to")
    list_select_related = ("workspace",)
    show_full_result_count = False
    readonly_fields = ("delivered_content",)
    inlines = [MessageEventInline]

    def get_urls(self):
        view = self.admin_site.admin_view(self.content_html_view)
        return [path("<str:object_id>/content.html", view, name="messaging_message_content"), *super().get_urls()]

    def content_html_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise Http404
        content = message_content(message_id=object_id)
        if content is None:
            raise Http404
        response = HttpResponse(content.html, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response["X-Content-Type-Options"] = "nosniff"
        response["X-Frame-Options"] = "SAMEORIGIN"
        response["Referrer-Policy"] = "no-referrer"
        return response

    @admin.display(description="Content as delivered")
    def delivered_content(self, message):
        content = message_content(message_id=message.pk)
        if content is None:
            return "Not built yet: the content appears once a delivery attempt has rendered the message."
        url = reverse("admin:messaging_message_content", args=[message.pk])
        return format_html(
            '<p><strong>Subject:</strong> {}</p><pre style="white-space: pre-wrap">{}</pre>'
            '<iframe sandbox src="{}" title="HTML part" referrerpolicy="no-referrer" '
            'style="width: 100%; height: 480px; border: 1px solid #ccc"></iframe>',
            content.subject,
            content.text,
            url,
        )


@admin.register(Suppression)
class SuppressionAdmin(ReadableColumnsMixin, admin.ModelAdmin):
    """Deleting a suppression here (or DELETE /v1/suppressions/{email}) lets the address receive mail again."""

    list_display = ("email", "workspace", "reason", "bounce_class", "created_at")
    column_widths = {"email": 34, "workspace": 28}
    list_filter = ("reason",)
    search_fields = ("=email",)
    raw_id_fields = ("workspace", "source_message")
    readonly_fields = ("why", "detail")

    @admin.display(description="bounce class")
    def bounce_class(self, obj):
        return (obj.detail or {}).get("bounce_class", "")

    @admin.display(description="why, and how to remove it")
    def why(self, obj):
        return suppression_why(obj)


class UnsubscribeInline(admin.TabularInline):
    model = Unsubscribe
    extra = 0


@admin.register(UnsubscribeGroup)
class UnsubscribeGroupAdmin(ReadableColumnsMixin, admin.ModelAdmin):
    list_display = ("id", "name", "workspace", "created_at")
    column_widths = {"name": 32, "workspace": 28}
    search_fields = ("=id", "name")
    raw_id_fields = ("workspace",)
    inlines = [UnsubscribeInline]


@admin.register(SenderReputation)
class SenderReputationAdmin(ReadableColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each sender's bounce, complaint and block rates over the reputation window; staff pause and
    resume on the sender's own page, and set the thresholds on the workspace."""

    list_display = ("from_address", "workspace", "state", "rates")
    column_widths = {"from_address": 28, "workspace": 20, "rates": 60}
    list_filter = ("state",)
    search_fields = ("from_address", "=id")
    list_select_related = ("workspace",)
    list_per_page = 50
    fields = ("from_address", "workspace", "state", "state_reason", "rates")
    readonly_fields = fields

    @admin.display(description="bounce · complaint · block rates (thresholds)")
    def rates(self, sender):
        return sender_reputation_summary(sender=sender)


@admin.register(WorkspaceReputation)
class WorkspaceReputationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each workspace's rates over the reputation window, all its senders together. Its block rate
    pauses the workspace's sending above `block_rate_threshold` (the reason is shown); staff resume
    and set the thresholds on the workspace's own page."""

    list_display = ("name", "id", "sending_paused", "rates")
    list_filter = ("sending_paused",)
    search_fields = ("name", "=id")
    list_per_page = 50
    fields = ("name", "id", "sending_paused", "sending_paused_reason", "rates")
    readonly_fields = fields

    @admin.display(description="bounce · complaint · block rates, all senders (thresholds)")
    def rates(self, workspace):
        return workspace_reputation_summary(workspace=workspace)


def _console_panel(*, workspace, sender=None) -> str:
    """The last 30 days of live mail as a chart, and the rates the auto-pause judges against its thresholds."""
    since = timezone.now() - timedelta(days=settings.PUFFERPOST_REPUTATION_WINDOW_DAYS)
    period, buckets = charts.activity(workspace_id=workspace.pk, sender_id=sender.pk if sender else None)
    if sender is not None:
        chart = charts.activity_chart(title=f"{sender.from_address}, last 30 days", period=period, buckets=buckets)
        rates = charts.rates_panel(
            title="Rates against the pause thresholds",
            reputation=sender_reputation_stats(sender_id=sender.pk, since=since),
            workspace=workspace,
        )
    else:
        chart = charts.activity_chart(title=f"{workspace.name}, last 30 days", period=period, buckets=buckets)
        rates = charts.rates_panel(
            title="Rates against the pause thresholds",
            reputation=workspace_reputation_stats(workspace_id=workspace.pk, since=since),
            workspace=workspace,
            note="Each sender is paused on its own rates; these are all senders together.",
        )
    return format_html('<div class="pp-console-panel">{}{}</div>', chart, rates)


admin.site.unregister(Sender)


@admin.register(Sender)
class SenderConsoleAdmin(SenderAdmin):
    """The review queue of senders/, with the sender's charts and rates beside the review buttons
    (drawn here: senders/ cannot read messages)."""

    class Media:
        css = {"all": ["senders/admin.css", "messaging/console.css"]}

    def review_panel(self, request, sender):
        return _console_panel(workspace=sender.workspace, sender=sender)


admin.site.unregister(Workspace)


@admin.register(Workspace)
class WorkspaceConsoleAdmin(WorkspaceAdmin):
    """pufferpost's workspace admin, with the workspace's charts and rates at the top of its page."""

    change_form_template = "admin/pufferpost/workspace/console_change_form.html"

    class Media:
        css = {"all": ["messaging/console.css"]}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        workspace = self.get_object(request, unquote(object_id))
        if workspace is not None:
            extra_context = {**(extra_context or {}), "console_panel": _console_panel(workspace=workspace)}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)
