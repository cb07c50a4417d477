"""Render a template version for one message: the interface the delivery worker calls.

    rendered = render_version(version, data=message.data, locale="de", timezone="Europe/Berlin")
    rendered.subject, rendered.html, rendered.text

`render_version` raises `RenderError` (with a message fit for the message's `errored` event) and
nothing else. `validate_source` is what version creation runs on every field.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from jinja2 import TemplateSyntaxError
from markupsafe import escape as markup_escape

from templates_app import formatting
from templates_app.plaintext import html_to_text
from templates_app.sandbox import (
    MAX_PART_CHARS,
    RenderError,
    RenderLimitExceeded,
    Sandbox,
    _text,
    check_tree,
    current_budget,
    end_budget,
    start_budget,
)

__all__ = ["RenderError", "Rendered", "TemplateSyntaxProblem", "render_version", "validate_source"]

_MAX_DATA_DEPTH = 32
# A subject longer than one RFC 5322 line is refused rather than stored, echoed and folded
# (#15 item 11: a 480 KB subject took 22 s in the old folder).
MAX_SUBJECT_CHARS = 998


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


class TemplateSyntaxProblem(Exception):
    def __init__(self, field: str, line: int | None, message: str):
        self.field = field
        self.line = line
        self.message = message
        super().__init__(f"{field}: line {line}: {message}" if line else f"{field}: {message}")


def _make(autoescape: bool) -> Sandbox:
    env = Sandbox(autoescape=autoescape)
    env.add_filters(formatting.FILTERS)
    return env


_HTML = _make(autoescape=True)
_PLAIN = _make(autoescape=False)


def _environment(field: str) -> Sandbox:
    return _HTML if field.rsplit(".", 1)[-1] == "html" else _PLAIN


def validate_source(field: str, source: str) -> int:
    """Raise `TemplateSyntaxProblem(field, line, message)` if `source` cannot be compiled; return
    the size of its parsed tree (nodes), so a caller can bound a whole version.

    `field` names the part (`subject`, `html`, `text`, `translations.de.html`); a field ending
    in `html` compiles with autoescaping, the others without. Compiling folds constant
    expressions (`{{ "x"|center(10) }}`), so it runs under the same budget as a render, and a
    constant that hits a limit refuses the version here rather than failing every send.
    """
    env = _environment(field)
    token = start_budget()
    budget = current_budget()
    try:
        tree = env.parse(source)
        size = check_tree(tree)
        env.compile_tree(tree)
    except TemplateSyntaxError as exc:
        raise TemplateSyntaxProblem(field, exc.lineno, exc.message or "syntax error") from None
    except RecursionError:
        raise TemplateSyntaxProblem(field, None, "the template nests too deeply.") from None
    except Exception as exc:  # Python's own compiler refusing the generated code, and the like
        raise TemplateSyntaxProblem(field, None, f"the template cannot be compiled: {_describe(exc)}") from None
    finally:
        end_budget(token)
    if budget.exceeded is not None:
        raise TemplateSyntaxProblem(field, None, f"a constant expression exceeds the sandbox limits: {budget.exceeded}")
    return size


class _CompiledCache:
    """Compiled templates by (version pk, translation, field). Versions are immutable, so a key
    never goes stale; the least recently used entries leave when the cache is full."""

    def __init__(self, size: int = 512):
        self.size = size
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, field: str, source: str):
        if key is None:
            return self._compile(field, source)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        compiled = self._compile(field, source)
        with self.lock:
            self.entries[key] = compiled
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return compiled

    def clear(self):
        with self.lock:
            self.entries.clear()

    @staticmethod
    def _compile(field: str, source: str):
        try:
            return _environment(field).compile_guarded(source)
        except TemplateSyntaxError as exc:
            raise RenderError(f"{field}: line {exc.lineno}: {exc.message}") from None
        except RecursionError:
            raise RenderError(f"{field}: the template nests too deeply.") from None
        except RenderError:
            raise
        except Exception as exc:  # a version saved before today's checks: end the message, not the batch
            raise RenderError(f"{field}: the template cannot be compiled: {_describe(exc)}") from None


compiled_templates = _CompiledCache()


def pick_translation(translations: dict, locale: str) -> tuple[str | None, dict | None]:
    """The translation for `locale`: exact (`pt-BR`), then its language (`pt`); else (None, None)."""
    translations = translations or {}
    for candidate in (locale, locale.split("-")[0]):
        if candidate in translations:
            return candidate, translations[candidate]
    return None, None


def render_version(version, *, data: dict, locale: str, timezone: str) -> Rendered:
    """Render `version` for `data`, in `locale` (`de`, `pt-BR`) and IANA `timezone`.

    Uses the version's translation for the locale (exact, then language) or its base content;
    an empty text part is derived from the rendered HTML. Raises `RenderError` on any failure,
    including the sandbox's time and size limits.
    """
    tag = formatting.normalize_locale(locale) or "en"
    tzinfo = formatting.zone(timezone or "UTC")
    context = _plain_data(data if data is not None else {})
    translation_key, translation = pick_translation(version.translations, tag)
    source = translation if translation is not None else version
    parts = {name: _get(source, name) for name in ("subject", "html", "text")}
    token = start_budget(locale=formatting.babel_locale(tag), tzinfo=tzinfo)
    try:
        rendered = {}
        for name, text in parts.items():
            if name == "text" and not text.strip():
                continue
            key = None if version.pk is None else (version.pk, translation_key, name)
            label = name if translation_key is None else f"translations.{translation_key}.{name}"
            template = compiled_templates.get(key, label, text)
            rendered[name] = _run(template, context, label)
        if "text" not in rendered:
            # Inside the budget: deriving the text is work the template's output decides.
            rendered["text"] = _derive_text(rendered["html"])
    except RenderError:
        raise
    except Exception as exc:  # nothing a template or its data does may escape as anything else
        raise RenderError(f"The template could not be rendered: {_describe(exc)}") from None
    finally:
        end_budget(token)
    subject = " ".join(rendered["subject"].split())
    if len(subject) > MAX_SUBJECT_CHARS:
        raise RenderLimitExceeded(
            f"The rendered subject is {len(subject):,} characters long; a subject may have at most "
            f"{MAX_SUBJECT_CHARS} (RFC 5322's line limit)."
        )
    return Rendered(subject=subject, html=rendered["html"], text=rendered["text"])


def _derive_text(html: str) -> str:
    try:
        return html_to_text(html)
    except RenderError as exc:
        raise type(exc)(f"text (derived from html): {exc}") from None


def _get(source, name: str) -> str:
    value = source.get(name) if isinstance(source, dict) else getattr(source, name)
    return value or ""


def _run(template, context: dict, label: str) -> str:
    budget = current_budget()
    escape = template.environment.autoescape
    chunks = []
    size = 0
    try:
        for chunk in template.generate(context):
            if not isinstance(chunk, str):
                # `{% filter list %}` and the like yield what the filter returned, unescaped.
                chunk = _text(chunk)
                chunk = markup_escape(chunk) if escape else chunk
            size += len(chunk)
            if size > MAX_PART_CHARS:
                raise RenderLimitExceeded(f"The rendered {label} is longer than {MAX_PART_CHARS:,} characters.")
            budget.tick()
            chunks.append(chunk)
        return "".join(chunks)
    except RenderError as exc:
        raise type(exc)(f"{label}: {exc}") from None
    except Exception as exc:  # the sandbox turns every template failure into a RenderError
        line = _template_line(exc)
        where = f"{label}: line {line}" if line else label
        raise RenderError(f"{where}: {_describe(exc)}") from None


def _template_line(exc: BaseException) -> int | None:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "the template recurses too deeply."
    if isinstance(exc, MemoryError):
        return "the template needs too much memory."
    return str(exc) or type(exc).__name__


def _plain_data(value, depth: int = 0):
    """Check that render data is JSON-shaped; the sandbox only knows how to read those types."""
    if depth > _MAX_DATA_DEPTH:
        raise RenderError(f"The data nests deeper than {_MAX_DATA_DEPTH} levels.")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise RenderError("Data keys must be strings.")
            _plain_data(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _plain_data(item, depth + 1)
    elif not isinstance(value, (str, int, float, bool, Decimal, datetime, date)) and value is not None:
        raise RenderError(f"Data values must be JSON; got {type(value).__name__}.")
    if depth == 0 and not isinstance(value, dict):
        raise RenderError("The data must be a JSON object.")
    return value
