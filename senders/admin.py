from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from domains.models import DkimStatus
from pufferpost.admin_actions import ReasonForm, ask_reason, report
from pufferpost.admin_columns import ReadableColumnsMixin
from pufferpost.admin_mixins import ReadOnlyAdminMixin
from senders.models import Sender, SenderState, SenderStateChange
from senders.selectors import sender_state_counts, senders_with_domain_status
from senders.services import TRANSITIONS, IllegalTransition, sender_review, senders_review

VERB_LABELS = {"approve": ("Approve", "Approved"), "pause": ("Pause", "Paused"), "resume": ("Resume", "Resumed")}

UNDER_REVIEW_FIRST = Case(
    When(state=SenderState.UNDER_REVIEW, then=Value(0)), default=Value(1), output_field=IntegerField()
).asc()


NO_DOMAIN = "none"


def badge(kind: str, label: str) -> str:
    return format_html('<span class="pp-badge pp-badge-{}">{}</span>', kind, label)


class DomainVerificationFilter(admin.SimpleListFilter):
    """Filter on the annotated DKIM state of the from-domain, including 'the workspace has no such domain'."""

    title = "from-domain verification"
    parameter_name = "domain_verification"

    def lookups(self, request, model_admin):
        return [*DkimStatus.choices, (NO_DOMAIN, "No domain")]

    def queryset(self, request, queryset):
        if self.value() == NO_DOMAIN:
            return queryset.filter(domain_dkim_status__isnull=True)
        if self.value() in DkimStatus.values:
            return queryset.filter(domain_dkim_status=self.value())
        return queryset


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
class SenderAdmin(ReadableColumnsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The review queue: senders under review first, oldest first. State changes only through the actions."""

    # The two badges come right after the address: on a narrow screen the reviewer still sees them.
    list_display = ("from_address", "state_badge", "domain_dkim", "display_name", "workspace_name", "created_at")
    column_widths = {"from_address": 28, "display_name": 18, "workspace_name": 18}
    list_filter = ("state", DomainVerificationFilter, "workspace")
    date_hierarchy = "created_at"
    # The counts above the list already show the total; skip the admin's second COUNT(*).
    show_full_result_count = False
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

    class Media:
        css = {"all": ["senders/admin.css"]}

    def get_queryset(self, request):
        return senders_with_domain_status(super().get_queryset(request))

    def get_urls(self):
        review = self.admin_site.admin_view(self.review_view)
        return [path("<path:object_id>/review/", review, name="senders_sender_review"), *super().get_urls()]

    def review_panel(self, request, sender) -> str:
        """HTML shown beside the review buttons; messaging's console adds the sender's charts and rates."""
        return ""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        sender = self.get_object(request, unquote(object_id))
        if sender is not None and self.has_view_permission(request, sender):
            verbs = [verb for (from_state, _), verb in TRANSITIONS.items() if from_state == sender.state]
            extra_context = {
                **(extra_context or {}),
                "review_url": reverse("admin:senders_sender_review", args=[sender.pk]),
                "review_verbs": [{"verb": v, "label": VERB_LABELS[v][0]} for v in verbs]
                if self.has_review_permission(request)
                else [],
                "review_form": ReasonForm(),
                "review_panel": self.review_panel(request, sender),
            }
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def review_view(self, request, object_id):
        """POST from the sender's page: approve, pause or resume it with a reason, through the state machine."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_review_permission(request):
            raise PermissionDenied
        sender = get_object_or_404(Sender, pk=unquote(object_id))
        page = reverse("admin:senders_sender_change", args=[sender.pk])
        verb = request.POST.get("verb", "")
        if verb not in VERB_LABELS:
            self.message_user(request, "Choose approve, pause or resume.", level=messages.ERROR)
            return HttpResponseRedirect(page)
        form = ReasonForm(request.POST)
        if not form.is_valid():
            self.message_user(
                request, f"{VERB_LABELS[verb][0]}: give a reason (up to 500 characters).", level=messages.ERROR
            )
            return HttpResponseRedirect(page)
        try:
            sender_review(sender=sender, verb=verb, reason=form.cleaned_data["reason"], actor=request.user)
        except IllegalTransition as exc:
            state = exc.sender.get_state_display().lower()
            self.message_user(request, f"Cannot {verb} {sender.from_address}: it is {state}.", level=messages.ERROR)
        else:
            self.message_user(request, f"{VERB_LABELS[verb][1]} {sender.from_address}.", level=messages.SUCCESS)
        return HttpResponseRedirect(page)

    def changelist_view(self, request, extra_context=None):
        """Add the queue's counts per state, as quick filter links above the list."""
        if self.has_view_or_change_permission(request):
            counts = sender_state_counts()
            current = request.GET.get("state__exact")
            extra_context = {
                **(extra_context or {}),
                "state_counts": [
                    {"state": state, "label": label.capitalize(), "count": counts[state], "current": state == current}
                    for state, label in SenderState.choices
                ],
                "state_total": sum(counts.values()),
                "state_current": current,
            }
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="Workspace", ordering="workspace__name")
    def workspace_name(self, sender):
        return sender.workspace.name

    @admin.display(description="State", ordering="state")
    def state_badge(self, sender):
        return badge(sender.state, sender.get_state_display().capitalize())

    @admin.display(description="From-domain DKIM", ordering="domain_dkim_status")
    def domain_dkim(self, sender):
        return badge(sender.domain_dkim_status or NO_DOMAIN, sender.domain_dkim_status or "no domain")

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
