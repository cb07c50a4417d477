from django.contrib import admin

from pufferpost.admin_columns import ReadableColumnsMixin
from templates_app import services
from templates_app.models import Template, TemplateVersion


class TemplateVersionInline(admin.TabularInline):
    """Versions are immutable: shown, never edited here."""

    model = TemplateVersion
    fields = ("version", "subject", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Template)
class TemplateAdmin(ReadableColumnsMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "workspace", "latest_version", "archived_at", "created_at")
    column_widths = {"name": 28, "slug": 24, "workspace": 24}
    list_select_related = ("workspace",)
    search_fields = ("id", "name", "slug", "workspace__id")
    readonly_fields = ("id", "workspace", "latest_version", "archived_at", "created_at", "updated_at")
    inlines = [TemplateVersionInline]
    actions = ["archive"]

    @admin.action(description="Archive the selected templates")
    def archive(self, request, queryset):
        self.message_user(
            request, f"Archived {sum(services.template_archive(template=t) for t in queryset)} template(s)."
        )
