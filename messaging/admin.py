from django.contrib import admin

from messaging.models import Message, MessageEvent, Suppression, Unsubscribe, UnsubscribeGroup
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

    list_display = ("id", "workspace", "to", "from_address", "status", "livemode", "created_at")
    list_filter = ("status", "livemode")
    search_fields = ("=id", "=to")
    list_select_related = ("workspace",)
    show_full_result_count = False
    inlines = [MessageEventInline]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "workspace", "reason", "created_at")
    list_filter = ("reason",)
    search_fields = ("=email",)
    raw_id_fields = ("workspace", "source_message")


class UnsubscribeInline(admin.TabularInline):
    model = Unsubscribe
    extra = 0


@admin.register(UnsubscribeGroup)
class UnsubscribeGroupAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "workspace", "created_at")
    search_fields = ("=id", "name")
    raw_id_fields = ("workspace",)
    inlines = [UnsubscribeInline]
