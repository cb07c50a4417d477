from django.contrib import admin

from messaging.feedback.explain import suppression_why
from messaging.feedback.reputation import sender_reputation_summary
from messaging.models import Message, MessageEvent, SenderReputation, Suppression, Unsubscribe, UnsubscribeGroup
from pufferpost.admin_mixins import ReadOnlyAdminMixin


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    fields = ("type", "occurred_at", "recorded_at", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: messages change only through the send API and delivery."""

    list_display = ("id", "workspace", "to", "from_address", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "=to")
    list_select_related = ("workspace",)
    show_full_result_count = False
    inlines = [MessageEventInline]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Deleting a suppression here (or DELETE /v1/suppressions/{email}) lets the address receive mail again."""

    list_display = ("email", "workspace", "reason", "bounce_class", "created_at")
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
class UnsubscribeGroupAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "workspace", "created_at")
    search_fields = ("=id", "name")
    raw_id_fields = ("workspace",)
    inlines = [UnsubscribeInline]


@admin.register(SenderReputation)
class SenderReputationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each sender's bounce, complaint and block rates over the reputation window; staff pause and
    resume on the sender's own page, and set the thresholds on the workspace."""

    list_display = ("from_address", "workspace", "state", "rates")
    list_filter = ("state",)
    search_fields = ("from_address", "=id")
    list_select_related = ("workspace",)
    list_per_page = 50
    fields = ("from_address", "workspace", "state", "state_reason", "rates")
    readonly_fields = fields

    @admin.display(description="bounce · complaint · block rates (thresholds)")
    def rates(self, sender):
        return sender_reputation_summary(sender=sender)
