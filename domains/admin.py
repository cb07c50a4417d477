from django.contrib import admin
from django.utils.html import format_html, format_html_join

from domains import services
from domains.models import Domain
from pufferpost.admin_columns import ReadableColumnsMixin


@admin.register(Domain)
class DomainAdmin(ReadableColumnsMixin, admin.ModelAdmin):
    list_display = [
        "domain",
        "workspace",
        "verified",
        "dkim_status",
        "return_path_status",
        "dmarc_status",
        "last_checked_at",
        "created_at",
    ]
    column_widths = {"domain": 26, "workspace": 18}
    list_filter = ["dkim_status", "return_path_status", "dmarc_status"]
    search_fields = ["domain", "workspace__name", "workspace__id"]
    list_select_related = ["workspace"]
    # The private key never reaches a staff page: not shown, not editable, not even read.
    exclude = ["dkim_private_key", "next_dkim_private_key", "record_checks", "dmarc_policy"]
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
        "return_path_status",
        "return_path_error",
        "return_path_verified_at",
        "dns_doctor",
        "next_selector",
        "next_dkim_public_key",
        "rotation_started_at",
        "retired_selector",
        "retired_keep_until",
        "verified_at",
        "verification_lost_at",
        "last_checked_at",
        "next_check_at",
        "created_at",
        "updated_at",
    ]
    actions = ["recheck_now", "rotate_dkim_key"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("dkim_private_key", "next_dkim_private_key")

    def has_add_permission(self, request):
        # Domains are added through the API, which issues their signing key.
        return False

    @admin.display(boolean=True)
    def verified(self, obj):
        return obj.verified

    @admin.display(description="DNS doctor")
    def dns_doctor(self, obj):
        """The last check's verdict per record, as the customer reads it in `record_checks`."""
        if not obj.record_checks:
            return "Not checked yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} {}</td><td><strong>{}</strong> {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    c["purpose"],
                    c["type"],
                    c["host"],
                    c["status"],
                    c["problem"],
                    c["message"],
                    "; ".join(c["found"]) or "—",
                )
                for c in obj.record_checks
            ),
        )
        return format_html(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>{}</table>",
            "Record",
            "Host",
            "Verdict",
            "What to do",
            "Found",
            rows,
        )

    @admin.action(description="Re-check now")
    def recheck_now(self, request, queryset):
        self.message_user(
            request,
            f"Re-checked {services.domains_recheck(domain_ids=queryset.values_list('pk', flat=True))} domain(s).",
        )

    @admin.action(description="Rotate DKIM key (new selector; signing switches once its record verifies)")
    def rotate_dkim_key(self, request, queryset):
        self.message_user(
            request,
            f"Started a DKIM rotation for {services.domains_dkim_rotate(domain_ids=queryset.values_list('pk', flat=True))} domain(s).",
        )
