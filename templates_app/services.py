"""Every write to templates and their versions."""

import re

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from pufferpost.errors import Conflict, Invalid
from pufferpost.models import Workspace
from templates_app.models import Template, TemplateVersion
from templates_app.rendering import TemplateSyntaxProblem, validate_source

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SLUG_MAX = 200
VERSION_MAX_NODES = 20_000


def _exists(slug: str) -> Conflict:
    return Conflict("template_exists", f'A template with slug "{slug}" already exists.')


def slug_from_name(name: str) -> str:
    return slugify(name)[:SLUG_MAX].strip("-_")


def template_create(
    *, workspace: Workspace, name: str, slug: str | None = None, strict_variables: bool = False
) -> Template:
    """Create a template; without a slug, derive one from the name. 409 `template_exists` on a clash
    with another active template of the workspace."""
    slug = slug or slug_from_name(name)
    if not slug:
        raise Invalid(
            "validation_failed",
            "The request is invalid.",
            violations=[
                {"field": "slug", "code": "required", "message": "No slug can be derived from this name; give one."}
            ],
        )
    try:
        with transaction.atomic():
            return Template.objects.create(workspace=workspace, name=name, slug=slug, strict_variables=strict_variables)
    except IntegrityError:
        raise _exists(slug) from None


def template_update(
    *, template: Template, name: str | None = None, slug: str | None = None, strict_variables: bool | None = None
) -> Template:
    if strict_variables is not None:
        template.strict_variables = strict_variables
    if name is not None:
        template.name = name
    if slug is not None:
        template.slug = slug
    try:
        with transaction.atomic():
            template.save(update_fields=["name", "slug", "strict_variables", "updated_at"])
    except IntegrityError:
        raise _exists(template.slug) from None
    return template


def template_archive(*, template: Template) -> bool:
    """Archive (the API's DELETE): the template leaves lists and can no longer be sent. Idempotent."""
    now = timezone.now()
    changed = Template.objects.filter(pk=template.pk, archived_at__isnull=True).update(archived_at=now, updated_at=now)
    if changed:
        template.archived_at = template.updated_at = now
    return bool(changed)


def template_version_check(*, subject: str, html: str, text: str = "", translations: dict | None = None) -> None:
    """Compile every part; a syntax error is a 422 naming the field (`translations.de.html`) and line."""
    parts = [("subject", subject), ("html", html), ("text", text or "")]
    for locale, translation in (translations or {}).items():
        parts.extend(
            (f"translations.{locale}.{name}", translation.get(name) or "") for name in ("subject", "html", "text")
        )
    violations = []
    size = 0
    for field, source in parts:
        try:
            size += validate_source(field, source)
        except TemplateSyntaxProblem as problem:
            where = f"line {problem.line}: " if problem.line else ""
            violations.append({"field": field, "code": "template_syntax_error", "message": where + problem.message})
        if size > VERSION_MAX_NODES:
            # Every part is compiled here, in the request: stop at the bound instead of after it.
            violations.append(
                {
                    "field": "translations" if field.startswith("translations.") else field,
                    "code": "template_too_large",
                    "message": f"A version, translations included, is limited to {VERSION_MAX_NODES:,} tags, "
                    "expressions and text runs.",
                }
            )
            break
    if violations:
        raise Invalid("validation_failed", "The template has syntax errors.", violations=violations)


def template_version_create(
    *, template: Template, subject: str, html: str, text: str = "", translations: dict | None = None
) -> TemplateVersion:
    """Save the next immutable version (1, 2, …) and make it the template's latest.

    The template row is locked while the number is chosen, so concurrent saves get distinct
    numbers instead of a unique-constraint error.
    """
    template_version_check(subject=subject, html=html, text=text, translations=translations)
    with transaction.atomic():
        locked = Template.objects.select_for_update().get(pk=template.pk)
        if locked.archived_at is not None:
            raise Conflict("template_archived", "The template is archived; it takes no new versions.")
        number = (locked.latest_version or 0) + 1
        version = TemplateVersion.objects.create(
            template=locked,
            version=number,
            subject=subject,
            html=html,
            text=text or "",
            translations=translations or {},
        )
        now = timezone.now()
        Template.objects.filter(pk=locked.pk).update(latest_version=number, updated_at=now)
    template.latest_version, template.updated_at = number, now
    version.template = template
    return version
