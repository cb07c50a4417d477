"""Customer templates are untrusted: each escape attempt is refused or neutralised, quickly and
without eating memory or leaking anything about the Python objects behind the sandbox."""

import time
import tracemalloc

import pytest

from templates_app import sandbox
from templates_app.models import TemplateVersion
from templates_app.rendering import RenderError, TemplateSyntaxProblem, render_version, validate_source

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
    # CPU time, like the limit itself: on a loaded machine the wall clock runs on while the render waits.
    started = time.process_time()
    out, error = attempt("{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}")
    assert "0.2 seconds of CPU time" in error
    assert time.process_time() - started < 2


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


@pytest.mark.parametrize(
    "html",
    [
        '{{ "%(a)1000000000s"|format(a=1) }}',
        "{{ '%(a)1000000000s' % {'a': 1} }}",
        "{{ '%(a)-#01001d'|format(a=1) }}",
        "{{ '%(a).1000000000f'|format(a=1.5) }}",
        "{{ '%((a))999999999s' % {'(a)': 1} }}",
        "{{ '%(a)*d' % {'a': 1} }}",
        "{{ '%.*f'|format(999999999, 1.5) }}",
        "{{ '%(a)0000000000000001001s' % {'a': 1} }}",
        "{{ '%(a)s %ls %999999999hd' % (1, 2) }}",
    ],
)
def test_every_form_of_a_printf_width_is_parsed_before_formatting(html):
    out, error = attempt(html)
    assert out is None
    assert "Format widths are limited to 1000" in error


def test_a_repeated_mapping_key_counts_each_time_it_is_printed():
    pattern = "%(a)s" * 200
    assert sandbox.predict_printf(pattern, {"a": "x" * 10_000}) > sandbox.MAX_PART_CHARS
    out, error = attempt("{{ (pattern % {'a': big})|length }}", data={"pattern": pattern, "big": "x" * 10_000})
    assert out is None and "more than 1,000,000 characters" in error


@pytest.mark.parametrize(
    ("pattern", "values"),
    [
        ("%s and %s", ("a", "bb")),
        ("%(a)s%(a)s%(b)r", {"a": "x" * 50, "b": "it's"}),
        ("%-10s|%+05d|%.3f|%e|%x|%o|%c|%%", ("ab", 42, 3.14159, 1e300, 255, 8**30, 65)),
        ("%(n)1000.999f", {"n": 1.7e308}),
        ("%s", {"a": [1, 2, "three"]}),
        ("%r", ("\U0001f600\x00",)),
        ("%5.2s", ("abcdef",)),
    ],
)
def test_the_printf_prediction_is_never_below_the_real_length(pattern, values):
    assert sandbox.predict_printf(pattern, values) >= len(pattern % values)


def test_printf_mapping_keys_still_work_within_the_limits():
    out, error = attempt("{{ '%(name)10s|%(n)05.1f'|format(name=name, n=2.25) }}")
    assert error is None and out == "      Jane|002.2"


def test_constant_folding_at_save_time_is_bounded_like_a_render():
    """Compiling folds constant expressions; the bomb is refused by the sandbox's limits there
    (never built: memory stays far below the 1 GB the string would take)."""
    tracemalloc.start()
    try:
        with pytest.raises(TemplateSyntaxProblem) as refused:
            validate_source("html", '{{ "%(a)1000000000s"|format(a=1) }}')
        with pytest.raises(TemplateSyntaxProblem) as built_too_much:
            validate_source("html", "{{ ('x'|center(999999))|length }}" * 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "Format widths are limited to 1000" in refused.value.message
    assert "built more than 20,000,000 characters" in built_too_much.value.message
    assert peak < 64 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize(
    ("html", "fragment"),
    [
        ("{{ x" + "|upper" * 210 + " }}", "nests too deeply: expressions, filters and tags at most 50 levels"),
        ("{{ x" + "|upper" * 1000 + " }}", "nests too deeply"),
        ("{{ " + " + ".join(["x"] * 300) + " }}", "nests too deeply"),
        ("{{ x }}" * 6000, "more than 5,000 tags"),
        ("{% for a in x %}" * 17 + "{% endfor %}" * 17, "'for' loops nest at most 16 deep"),
        ("{% call nothing() %}{% endcall %}", "'call' must call a macro defined in this template"),
        ("{% call dict() %}{% endcall %}", "'call' must call a macro defined in this template"),
    ],
)
def test_trees_too_big_or_too_deep_to_compile_are_refused_before_compiling(html, fragment):
    with pytest.raises(TemplateSyntaxProblem) as refused:
        validate_source("html", html)
    assert fragment in refused.value.message
    # A version saved before the check fails its render cleanly (memory bounded like any render).
    version = TemplateVersion(subject="s", html=html, text="t")
    tracemalloc.start()
    try:
        with pytest.raises(RenderError) as failed:
            render_version(version, data={"x": "y"}, locale="en", timezone="UTC")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fragment in str(failed.value)
    assert peak < 64 * 1024 * 1024


def test_deep_but_legal_nesting_compiles_and_renders():
    html = "{{ name" + "|upper|lower" * 20 + " }}" + "{% for a in [1] %}" * 16 + "x" + "{% endfor %}" * 16
    validate_source("html", html)
    assert attempt(html)[0] == "janex"


def test_a_call_block_of_a_macro_defined_in_the_template_works():
    html = "{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}{{ name }}{% endcall %}"
    validate_source("html", html)
    assert attempt(html)[0] == "[Jane]"


def test_a_filter_block_that_returns_a_list_renders_escaped_text_not_a_type_error():
    out, error = attempt("{% filter list %}{{ name }}<{% endfilter %}")
    assert error is None
    assert out == "[&#39;J&#39;, &#39;a&#39;, &#39;n&#39;, &#39;e&#39;, &#39;&lt;&#39;]"
