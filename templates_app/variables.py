"""Which variables a template version reads, to tell a sender the ones its `data` lacks.

The names are the top-level variables the version's source uses (`{{ name }}`, `{% if order %}`,
`{{ order.total }}` counts as `order`), found from the parsed source rather than by rendering, so
a variable used only in a branch that this `data` does not take still counts. Versions are
immutable, so the answer is cached per version and translation.
"""

from functools import lru_cache

from jinja2 import Environment, TemplateSyntaxError, meta

from templates_app.rendering import pick_translation
from templates_app.sandbox import Sandbox

_PARSER = Environment(autoescape=False)
_GLOBALS = frozenset(Sandbox(autoescape=False).globals)


@lru_cache(maxsize=2048)
def _names(*sources: str) -> frozenset[str]:
    names: set[str] = set()
    for source in sources:
        try:
            names |= meta.find_undeclared_variables(_PARSER.parse(source or ""))
        except TemplateSyntaxError:  # saved versions compile; a stray one just reports nothing
            continue
    return frozenset(names - _GLOBALS)


def version_variables(version, *, locale: str) -> frozenset[str]:
    """The top-level variable names the version's parts (for `locale`'s translation, if any) use."""
    _, translation = pick_translation(version.translations, locale)
    source = translation if translation is not None else version

    def part(name):
        value = source.get(name) if isinstance(source, dict) else getattr(source, name)
        return value or ""

    return _names(part("subject"), part("html"), part("text"))


def missing_variables(version, *, data: dict, locale: str) -> list[str]:
    """The variables the version uses that `data` does not give, sorted."""
    return sorted(version_variables(version, locale=locale) - set(data or {}))


@lru_cache(maxsize=4096)
def version_variables_by_pk(version_pk: int, locale: str) -> frozenset[str]:
    """`version_variables` for a stored version (immutable, so one query per version and locale per process)."""
    from templates_app.models import TemplateVersion

    version = TemplateVersion.objects.only("subject", "html", "text", "translations").get(pk=version_pk)
    return version_variables(version, locale=locale)
