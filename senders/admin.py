from django.contrib import admin
from django.db.models import Case, IntegerField, Value, When

from pufferpost.admin_actions import ask_reason, report
from senders.models import Sender, SenderState, SenderStateChange
from senders.selectors import senders_with_domain_status
from senders.services import senders_review

UNDER_REVIEW_FIRST = Case(
    When(state=SenderState.UNDER_REVIEW, then=Value(0)), default=Value(1), output_field=IntegerField()
).asc()


class SenderStateChangeInline(admin.TabularInline):
    model = SenderStateChange
    fields = ("created_at", "from_state", "to_state", "reason", "actor_label")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("senders.view_sender") or request.user.has_perm("senders.change_sender")


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    """The review queue: senders under review first, oldest first. State changes only through the actions."""

    list_display = ("from_address", "display_name", "workspace", "state", "domain_dkim", "created_at")
    list_filter = ("state", "workspace")
    list_select_related = ("workspace",)
    search_fields = ("from_address", "=id", "workspace__name", "=workspace__id")
    ordering = (UNDER_REVIEW_FIRST, "created_at")
    fields = (
        "id",
        "workspace",
        "from_address",
        "display_name",
        "state",
        "state_reason",
        "domain_dkim",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (SenderStateChangeInline,)
    actions = ("approve", "pause", "resume")

    def get_queryset(self, request):
        return senders_with_domain_status(super().get_queryset(request))

    @admin.display(description="From-domain DKIM", ordering="domain_dkim_status")
    def domain_dkim(self, sender):
        return sender.domain_dkim_status or "no domain"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_review_permission(self, request):
        return request.user.has_perm("senders.change_sender")

    @admin.action(description="Approve selected senders…", permissions=["review"])
    def approve(self, request, queryset):
        return self._review(request, queryset, verb="approve", verb_past="Approved", skipped_why="not under review")

    @admin.action(description="Pause selected senders…", permissions=["review"])
    def pause(self, request, queryset):
        return self._review(request, queryset, verb="pause", verb_past="Paused", skipped_why="not active")

    @admin.action(description="Resume selected senders…", permissions=["review"])
    def resume(self, request, queryset):
        return self._review(request, queryset, verb="resume", verb_past="Resumed", skipped_why="not paused")

    def _review(self, request, queryset, *, verb, verb_past, skipped_why):
        reason = ask_reason(self, request, queryset, title=f"{verb.capitalize()} senders", button=verb.capitalize())
        if not isinstance(reason, str):
            return reason
        done, skipped = senders_review(senders=queryset, verb=verb, reason=reason, actor=request.user)
        report(self, request, done=done, skipped=skipped, verb_past=verb_past, skipped_why=skipped_why)
