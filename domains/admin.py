from django.contrib import admin

from domains import services
from domains.models import Domain


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "workspace", "verified", "dkim_status", "dmarc_status", "last_checked_at", "created_at"]
    list_filter = ["dkim_status", "dmarc_status"]
    search_fields = ["domain", "workspace__name", "workspace__id"]
    list_select_related = ["workspace"]
    # The private key never reaches a staff page: not shown, not editable, not even read.
    exclude = ["dkim_private_key"]
    readonly_fields = [
        "id",
        "workspace",
        "domain",
        "selector",
        "dkim_public_key",
        "dkim_status",
        "dmarc_status",
        "dkim_error",
        "dmarc_error",
        "verified_at",
        "verification_lost_at",
        "last_checked_at",
        "next_check_at",
        "created_at",
        "updated_at",
    ]
    actions = ["recheck_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("dkim_private_key")

    def has_add_permission(self, request):
        # Domains are added through the API, which issues their signing key.
        return False

    @admin.display(boolean=True)
    def verified(self, obj):
        return obj.verified

    @admin.action(description="Re-check now")
    def recheck_now(self, request, queryset):
        self.message_user(
            request,
            f"Re-checked {services.domains_recheck(domain_ids=queryset.values_list('pk', flat=True))} domain(s).",
        )
