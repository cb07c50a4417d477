import pytest

from templates_app import sandbox
from templates_app.models import TemplateVersion
from templates_app.plaintext import html_to_text
from templates_app.rendering import (
    Rendered,
    RenderError,
    TemplateSyntaxProblem,
    compiled_templates,
    render_version,
    validate_source,
)
from tests.templates_app.factories import TranslatedVersionFactory


def render(html="", *, subject="s", text="", data=None, locale="en", timezone="UTC", translations=None):
    version = TemplateVersion(subject=subject, html=html, text=text, translations=translations or {})
    return render_version(version, data=data or {}, locale=locale, timezone=timezone)


def test_render_returns_subject_html_and_text():
    out = render("<p>Hi {{ name }}</p>", subject="Hi {{ name }}", text="Hi {{ name }}!", data={"name": "Jane"})
    assert out == Rendered(subject="Hi Jane", html="<p>Hi Jane</p>", text="Hi Jane!")


def test_html_is_autoescaped_but_subject_and_text_are_not():
    data = {"name": "<b>Tom & Jerry</b>"}
    out = render("<p>{{ name }}</p>", subject="{{ name }}", text="{{ name }}", data=data)
    assert out.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert out.subject == "<b>Tom & Jerry</b>"
    assert out.text == "<b>Tom & Jerry</b>"


def test_missing_variables_render_as_empty_text():
    html = (
        "[{{ nobody }}][{{ user.name.first }}][{{ user['x'][0] }}][{{ missing + 1 }}][{{ missing|upper }}]"
        "[{{ missing|currency('EUR') }}][{{ missing|date }}][{{ missing() }}][{{ missing|round }}]"
        "{% if missing > 3 %}big{% endif %}{% for x in missing %}x{% endfor %}{% for i in range(missing) %}i{% endfor %}"
        "[{{ missing|default('friend') }}][{{ none_value }}]"
    )
    assert render(html, data={"none_value": None}).html == "[][][][][][][][][][friend][]"


def test_json_data_is_readable_by_attribute_and_item():
    data = {"order": {"items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}], "keys": "k"}}
    html = "{% for item in order['items'] %}{{ item.sku }}x{{ item.qty }};{% endfor %}{{ order.keys }}"
    html += "{% for k, v in order|dictsort %}{{ k }},{% endfor %}{{ order.items|length }}"
    assert render(html, data=data).html == "Ax2;Bx1;kitems,keys,2"


def test_dict_and_string_helpers_work():
    html = "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ s.upper() }}{{ s.split('-')|join('+') }}"
    assert render(html, data={"d": {"a": 1}, "s": "x-y"}).html == "a=1;X-Y" + "x+y"


def test_subject_is_one_line():
    assert render("h", subject="Hello\r\n  {{ name }}\n", data={"name": "Jo"}).subject == "Hello Jo"


def test_text_part_is_derived_from_html_when_empty():
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<h1>Hello {{ name }}</h1><p>Your order is <b>ready</b>.<br>Track it "
        "<a href='https://acme.test/o/9?a=1&amp;b=2'>here</a>.</p>"
        "<ul><li>One</li><li>Two</li></ul><p><a href='https://acme.test'>https://acme.test</a></p>"
        "<script>alert(1)</script></body></html>"
    )
    assert render(html, data={"name": "Jane"}).text == (
        "Hello Jane\n\nYour order is ready.\nTrack it here (https://acme.test/o/9?a=1&b=2).\n\n- One\n- Two\n\n"
        "https://acme.test"
    )


def test_html_to_text_unescapes_entities_and_collapses_space():
    assert html_to_text("<p>  a &amp;\n   b  </p><p>c</p>") == "a & b\n\nc"


@pytest.mark.parametrize(
    ("locale", "subject", "text"),
    [
        ("de", "Bestellung 7", "Danke, Jo"),
        ("de-AT", "Bestellung 7", "Danke, Jo"),
        ("pt-BR", "Pedido 7", "Obrigado"),
        ("pt", "Encomenda 7", "Obrigado (pt), Jo"),
        ("pt-PT", "Encomenda 7", "Obrigado (pt), Jo"),
        ("fr", "Order 7", "Thanks, Jo"),
        ("en", "Order 7", "Thanks, Jo"),
    ],
)
def test_translation_fallback_exact_then_language_then_base(db, locale, subject, text):
    version = TranslatedVersionFactory()
    out = render_version(version, data={"name": "Jo", "order_id": 7}, locale=locale, timezone="UTC")
    assert (out.subject, out.text) == (subject, text)


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de", "42,00\xa0€"),
        ("en", "€42.00"),
        ("en-US", "€42.00"),
        ("fr", "42,00\xa0€"),
    ],
)
def test_currency_formats_for_the_locale(locale, expected):
    assert render("{{ total|currency('EUR') }}", data={"total": 42}, locale=locale).html == expected


def test_number_filters_format_for_the_locale():
    html = "{{ n|number }}|{{ n|decimal }}|{{ n|decimal(0) }}|{{ r|percent }}|{{ s|number }}|{{ bad|number }}"
    data = {"n": 1234567.891, "r": 0.25, "s": "1000", "bad": "lots"}
    assert render(html, data=data, locale="en").html == "1,234,567.891|1,234,567.89|1,234,568|25%|1,000|lots"
    assert render(html, data=data, locale="de").html == "1.234.567,891|1.234.567,89|1.234.568|25\xa0%|1.000|lots"


def test_dates_convert_to_the_zone_and_format_for_the_locale():
    html = "{{ at|date }}|{{ at|time('short') }}|{{ at|datetime('yyyy-MM-dd HH:mm zzz') }}|{{ day|date('long') }}"
    data = {"at": "2026-06-09T22:30:00Z", "day": "2026-06-09"}
    utc = render(html, data=data, locale="en", timezone="UTC").html
    berlin = render(html, data=data, locale="de", timezone="Europe/Berlin").html
    assert utc == "Jun 9, 2026|10:30\u202fPM|2026-06-09 22:30 UTC|June 9, 2026"
    assert berlin == "10.06.2026|00:30|2026-06-10 00:30 MESZ|9. Juni 2026"


def test_dates_accept_epoch_seconds_and_milliseconds_and_leave_garbage_alone():
    html = "{{ s|datetime('yyyy-MM-dd HH:mm') }}|{{ ms|datetime('yyyy-MM-dd HH:mm') }}|{{ junk|date }}"
    data = {"s": 1781044200, "ms": 1781044200000, "junk": "soon"}
    assert render(html, data=data, timezone="Asia/Tokyo").html == "2026-06-10 07:30|2026-06-10 07:30|soon"


def test_an_unknown_timezone_is_a_render_error():
    with pytest.raises(RenderError, match="timezone"):
        render("x", timezone="Mars/Olympus")


def test_an_unknown_locale_formats_like_english():
    assert render("{{ 1000|number }}", locale="xx").html == "1,000"


def test_non_json_data_is_refused():
    with pytest.raises(RenderError, match="JSON"):
        render("x", data={"obj": object()})


def test_runtime_errors_are_render_errors_with_field_and_line():
    with pytest.raises(RenderError, match=r"^html: line 3: division by zero"):
        render("a\nb\n{{ 1 / 0 }}")
    with pytest.raises(RenderError, match=r"^subject: "):
        render("ok", subject="{{ 'a' is divisibleby 0 }}")


@pytest.mark.parametrize(
    ("field", "source", "line", "fragment"),
    [
        ("html", "<p>\n\n{{ name }</p>", 3, "unexpected '}'"),
        ("subject", "{% if x %}", 1, "end of template"),
        ("translations.de.text", "a\n{% endfor %}", 2, "endfor"),
        ("html", "x\n{% extends 'base.html' %}", 2, "not supported"),
        ("html", "{% from 'x' import y %}", 1, "not supported"),
    ],
)
def test_validate_source_names_field_and_line(field, source, line, fragment):
    with pytest.raises(TemplateSyntaxProblem) as info:
        validate_source(field, source)
    assert (info.value.field, info.value.line) == (field, line)
    assert fragment in info.value.message


def test_saved_versions_are_compiled_once(db):
    compiled_templates.clear()
    version = TranslatedVersionFactory()
    for _ in range(3):
        render_version(version, data={}, locale="de", timezone="UTC")
        render_version(version, data={}, locale="en", timezone="UTC")
    keys = {key for key in compiled_templates.entries if key[0] == version.pk}
    # subject and html per translation; the text parts are derived, never compiled
    assert keys == {
        (version.pk, "de", "subject"),
        (version.pk, "de", "html"),
        (version.pk, None, "subject"),
        (version.pk, None, "html"),
    }


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<p title="a>b">t</p>', "t"),
        ("a < b > c", "a < b > c"),
        ("<a href=x>one<a href=y>two</a>", "one (x)two (y)"),
        ("x<br/>y<img alt='A &amp; B'/>z", "x\nyA & Bz"),
        ("<!-- c --><!DOCTYPE html>ok<?x?>", "ok"),
        ("<scRipt>var a='<p>x</p>'</SCRIPT>after", "after"),
        ('<a href="mailto:j@x.test">j@x.test</a>', "j@x.test"),
        ('<a href="https://x.test"></a>', "https://x.test"),
        ("<p>open tag at the end <a href='x", "open tag at the end"),
    ],
)
def test_html_to_text_reads_html_like_a_browser_tokenizer(html, text):
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    [
        "<a " * 12000,
        "<a " * 300_000,
        "<a href='" * 100_000,
        "<a>y" * 20_000 + "</a>" * 20_000,
        "<" * 900_000,
        "<a x=" * 150_000,
        "<!--" * 200_000,
    ],
)
def test_deriving_the_text_is_linear_so_it_fits_the_render_budget(html, monkeypatch):
    """html.parser is quadratic on unclosed tags ("<a " * 12000 took 14 s). The derivation runs
    inside the render's CPU budget, cut to 0.5 s here: a quadratic parser would hit the limit."""
    monkeypatch.setattr(sandbox, "MAX_CPU_SECONDS", 0.5)
    version = TemplateVersion(subject="s", html="{{ html|safe }}", text="")
    rendered = render_version(version, data={"html": html}, locale="en", timezone="UTC")
    assert rendered.html == html
    assert len(rendered.text) <= len(html)


def test_the_text_derivation_is_a_budget_checkpoint(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_CPU_SECONDS", 0.0)
    version = TemplateVersion(subject="s", html="<b>x</b>" * 10, text="")
    with pytest.raises(RenderError) as failed:
        render_version(version, data={}, locale="en", timezone="UTC")
    assert "seconds of CPU time" in str(failed.value)


def test_the_derived_text_is_bounded_like_any_part():
    with pytest.raises(RenderError) as failed:
        html_to_text("x" * (sandbox.MAX_PART_CHARS + 1))
    assert "derived text part is longer than 1,000,000 characters" in str(failed.value)
