"""Reads: finding a template by id or slug, its versions, and rendering a preview.

A send names a template by `templateId` (preferred) or `template` (slug) and may only use an
*active* template (`archived_at IS NULL`) with a saved version; the send path reads that in
`messaging.selectors.send_context`.
"""

from django.db.models import QuerySet

from pufferpost import ids
from pufferpost.errors import Invalid
from templates_app.models import Template, TemplateVersion
from templates_app.rendering import Rendered, RenderError, render_version
from templates_app.variables import missing_variables


def template_from_ref(queryset: QuerySet, ref: str) -> Template | None:
    """`tpl_…` finds a template by id (archived ones too); anything else is an active template's slug."""
    if ids.is_valid("tpl", ref):
        return queryset.filter(pk=ref).first()
    return queryset.filter(slug=ref, archived_at__isnull=True).first()


def template_version_get(*, template: Template, version: int | None = None) -> TemplateVersion | None:
    """A numbered version, or the latest when `version` is None; None when there is none."""
    number = template.latest_version if version is None else version
    if number is None:
        return None
    found = TemplateVersion.objects.filter(template=template, version=number).first()
    if found is not None:
        found.template = template
    return found


def variables_missing_error(missing: list[str]) -> Invalid:
    return Invalid(
        "template_variables_missing",
        f"The template uses strict variables and data lacks: {', '.join(missing)}.",
        missing_variables=missing,
    )


def template_preview(*, version: TemplateVersion, data: dict, locale: str, timezone: str) -> tuple[Rendered, list[str]]:
    """What a send would render, without sending, and the variables `data` lacks. A render failure
    is a 422 `template_render_failed`; a strict template with variables missing is a 422
    `template_variables_missing`, as its sends would be."""
    missing = missing_variables(version, data=data, locale=locale)
    if missing and version.template.strict_variables:
        raise variables_missing_error(missing)
    try:
        return render_version(version, data=data, locale=locale, timezone=timezone), missing
    except RenderError as exc:
        raise Invalid("template_render_failed", str(exc)) from None
