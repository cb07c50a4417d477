"""Admin actions that need a reason: an intermediate page, like Django's delete confirmation.

The action runs twice: first from the changelist (no `confirm` in the POST), which renders the
page with a required reason; then from that page, which posts the same action, the selected
ids and the reason back to the changelist.
"""

from django import forms
from django.contrib.admin import helpers
from django.template.response import TemplateResponse


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), help_text="Recorded with the change."
    )


def ask_reason(modeladmin, request, queryset, *, title: str, button: str) -> str | TemplateResponse:
    """Return the confirmed reason, or the page that asks for it (again, with errors, if it was empty)."""
    form = ReasonForm(request.POST if request.POST.get("confirm") == "yes" else None)
    if form.is_valid():
        return form.cleaned_data["reason"]
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "button": button,
        "form": form,
        "queryset": queryset,
        "opts": opts,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/reason_action.html", context)


def report(modeladmin, request, *, done: int, skipped: int, verb_past: str, skipped_why: str) -> None:
    """message_user the count changed, and warn about the ones the current state did not allow."""
    noun = modeladmin.model._meta
    modeladmin.message_user(
        request, f"{verb_past} {done} {noun.verbose_name if done == 1 else noun.verbose_name_plural}."
    )
    if skipped:
        modeladmin.message_user(
            request,
            f"Skipped {skipped} {noun.verbose_name if skipped == 1 else noun.verbose_name_plural}: {skipped_why}.",
            level="warning",
        )
