"""Customer templates are untrusted: each escape attempt is refused or neutralised, quickly and
without eating memory or leaking anything about the Python objects behind the sandbox."""

import time
import tracemalloc

import pytest

from templates_app import sandbox
from templates_app.models import TemplateVersion
from templates_app.rendering import RenderError, render_version

LEAKS = ("class", "mro", "object", "function", "module", "0x", "settings", "SECRET", "Template", "Environment")


@pytest.fixture(autouse=True)
def quick_cpu_limit(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_CPU_SECONDS", 0.5)


def attempt(html, data=None):
    """Render `html` and return (output or None, error or None), checking time and memory spent."""
    version = TemplateVersion(subject="s", html=html, text="t")
    tracemalloc.start()
    started = time.monotonic()
    try:
        out, error = render_version(version, data=data or {"name": "Jane"}, locale="en", timezone="UTC").html, None
    except RenderError as exc:
        out, error = None, str(exc)
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert peak < 64 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    if out is not None:
        assert not any(word in out for word in LEAKS), out
    return out, error


@pytest.mark.parametrize(
    "html",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__ }}{{ name['__class__'] }}{{ name.format }}{{ name.__len__() }}",
        "{{ ''|attr('__class__') }}{{ ''|attr('__class__')|attr('__mro__') }}",
        "{{ config }}{{ settings }}{{ request }}{{ self }}{{ self.__dict__ }}{{ environment }}",
        "{{ range }}{{ range.__globals__ }}{{ lipsum }}{{ cycler.__init__.__globals__ }}",
        "{{ dict(a=1).__class__ }}{{ namespace.__init__ }}{{ joiner().__call__.__globals__ }}",
        "{% for x in [1] %}{{ loop.__class__ }}{{ loop._iterator }}{{ loop }}{% endfor %}",
        "{% macro m() %}{% endmacro %}{{ m }}{{ m.__globals__ }}{{ m._func }}",
        "{{ (1).__class__.__base__ }}{{ (1).real.__class__ }}{{ [].__class__ }}",
        "{{ {}.items.__self__ }}{{ {}.get.__self__.__class__ }}",
        "{{ name.format('{0.__class__}', name) }}{{ '{0.__class__}'.format(name) }}",
        "{{ ''|map('attr', '__class__')|list }}{{ [name]|map(attribute='__class__')|list }}",
    ],
)
def test_attribute_walking_finds_nothing(html):
    out, error = attempt(html)
    assert error is None or "class" not in error


@pytest.mark.parametrize(
    "html",
    [
        "{{ range(10**9)|list }}",
        "{% for i in range(999999999) %}x{% endfor %}",
        "{{ range(10001)|list|length }}",
    ],
)
def test_range_is_bounded(html):
    out, error = attempt(html)
    assert out is None and "range() is limited to 10,000 items" in error


def test_a_range_within_the_limit_works():
    assert attempt("{{ range(10000)|list|length }}")[0] == "10000"


@pytest.mark.parametrize(
    "html",
    [
        "{{ 'x' * 10**9 }}",
        "{{ [0] * 10**9 }}",
        "{{ 10 ** (10 ** 10) }}",
        "{{ (10**1000) ** 1000 }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%*d'|format(999999999, 1) }}",
        "{{ 'x'|center(999999999) }}",
        "{{ 'x\\nx'|indent(999999999) }}",
        "{{ 'x\\nx'|indent('y' * 999999) }}",
        "{{ range(10000)|join('x' * 999999) }}",
        "{{ ('x' * 999999)|replace('x', 'yy') }}",
        "{{ ('x' * 999999)|wordwrap(1, wrapstring='\\n' * 99) }}",
        "{{ [1]|batch(10**9, 0)|list }}",
        "{{ {}|tojson(indent=10**9) }}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% set ns.l = ns.l + [big ~ i] %}{% endfor %}",
        "{% for i in range(10000) %}{% for j in range(10000) %}{{ big }}{% endfor %}{% endfor %}",
    ],
)
def test_huge_values_fail_before_they_are_built(html):
    out, error = attempt(html, data={"big": "b" * 100_000})
    assert out is None
    assert "characters" in error or "large" in error or "limited" in error


@pytest.mark.parametrize(
    "html",
    [
        "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}{% endfor %}{% endfor %}{% endfor %}",
        "{% for a in items %}{% for b in items %}{% for c in items %}{% endfor %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "{% for x in items recursive %}{{ loop(items) }}{% endfor %}",
        "{% for i in range(10000) %}{{ items|sort|sort|sort|sort|sort|sort|join(',')|length }}{% endfor %}",
    ],
)
def test_runaway_work_stops_at_the_limit(html):
    out, error = attempt(html, data={"items": list(range(5000))})
    assert out is None
    assert "CPU time" in error or "deep" in error or "characters" in error


def test_unbounded_recursion_stops_at_the_call_depth():
    out, error = attempt("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
    assert out is None and "64 calls deep" in error


def test_the_time_limit_is_cpu_time_and_applies_to_the_whole_render(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_CPU_SECONDS", 0.2)
    started = time.monotonic()
    out, error = attempt("{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}")
    assert "0.2 seconds of CPU time" in error
    assert time.monotonic() - started < 2


def test_the_output_of_a_part_is_bounded():
    out, error = attempt("{% for i in range(2000) %}{{ big }}{% endfor %}", data={"big": "b" * 1000})
    assert out is None and "longer than 1,000,000 characters" in error


def test_templates_cannot_reach_the_guards_or_shadow_them():
    html = "{% set guard_iter = 1 %}{% set range = 5 %}{{ guard_iter }}{% for i in [1, 2] %}{{ i }}{% endfor %}"
    assert attempt(html)[0] == "112"
    assert attempt("{{ environment }}{{ guard_concat }}")[0] == ""


def test_ordinary_templates_still_work_inside_the_limits():
    html = (
        "{% set ns = namespace(total=0) %}{% for item in items %}{% set ns.total = ns.total + item.price * item.qty %}"
        "{{ loop.index }}. {{ item.name|title }} {{ '%.2f'|format(item.price) }}{{ ', ' if not loop.last }}{% endfor %}"
        " = {{ ns.total }}; {{ items|map(attribute='name')|join('/') }} {{ 'ab' ~ 'cd' }} {{ items|selectattr('qty', 'gt', 1)|list|length }}"
    )
    data = {"items": [{"name": "tea", "price": 2.5, "qty": 2}, {"name": "cake", "price": 4, "qty": 1}]}
    assert attempt(html, data=data)[0] == "1. Tea 2.50, 2. Cake 4.00 = 9.0; tea/cake abcd 1"


@pytest.mark.parametrize(
    "html",
    [
        "{{ range|string }}{{ cycler(1)|string }}{{ joiner()|string }}{{ namespace|string }}{{ name.upper|string }}",
        "{{ [range, dict, name.upper] }}{{ ('' ~ range ~ cycler(1)) }}{{ [1]|map('string')|string }}",
    ],
)
def test_helpers_print_no_python_internals(html):
    out, error = attempt(html)
    assert error is None
    assert "0x" not in out and "jinja2" not in out and "function" not in out
