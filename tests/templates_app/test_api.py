import re

import pytest

from pufferpost import ids
from templates_app.models import Template, TemplateVersion
from tests.factories import TemplateFactory, TemplateVersionFactory
from tests.helpers import assert_envelope, routes_with_an_id, violations
from tests.templates_app.factories import TranslatedVersionFactory, VersionedTemplateFactory

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def test_create_derives_the_slug_from_the_name(api, workspace):
    response = api.post("/v1/templates", {"name": "Order Confirmation!"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert ids.is_valid("tpl", body["id"])
    assert body["name"] == "Order Confirmation!"
    assert body["slug"] == "order-confirmation"
    assert body["latest_version"] is None
    assert body["archived"] is False
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])
    assert Template.objects.get(pk=body["id"]).workspace == workspace


def test_create_keeps_an_explicit_slug(api):
    response = api.post("/v1/templates", {"name": "Welcome", "slug": "welcome_v2"}, format="json")
    assert response.status_code == 201
    assert response.json()["slug"] == "welcome_v2"


def test_a_duplicate_slug_is_409_template_exists(api, workspace):
    TemplateFactory(workspace=workspace, slug="welcome")
    error = assert_envelope(api.post("/v1/templates", {"name": "Welcome"}, format="json"), 409, "template_exists")
    assert "welcome" in error["message"]
    response = api.post("/v1/templates", {"name": "Other", "slug": "welcome"}, format="json")
    assert_envelope(response, 409, "template_exists")


def test_the_same_slug_is_fine_in_another_workspace(api, other_workspace):
    TemplateFactory(workspace=other_workspace, slug="welcome")
    assert api.post("/v1/templates", {"name": "Welcome"}, format="json").status_code == 201


def test_an_archived_templates_slug_can_be_reused(api, workspace):
    TemplateFactory(workspace=workspace, slug="welcome", archived_at="2026-01-01T00:00:00Z")
    assert api.post("/v1/templates", {"name": "Welcome"}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {("name", "required")}),
        ({"name": "x" * 201}, {("name", "max_length")}),
        ({"name": "Ok", "slug": "Has Spaces"}, {("slug", "invalid_slug")}),
        ({"name": "Ok", "slug": "tpl_01J9Y0AA11BB22CC33DD44EE55"}, {("slug", "invalid_slug")}),
        ({"name": "Ok", "html": "<p>"}, {("html", "unknown_field")}),
        ({"name": "!!!"}, {("slug", "required")}),
    ],
)
def test_create_validation(api, body, expected):
    error = assert_envelope(api.post("/v1/templates", body, format="json"), 422, "validation_failed")
    assert violations(error) == expected


def test_get_by_id_and_by_slug(api, workspace):
    template = TemplateFactory(workspace=workspace, slug="receipt")
    for ref in (template.id, "receipt"):
        response = api.get(f"/v1/templates/{ref}")
        assert response.status_code == 200
        assert response.json()["id"] == template.id


def test_unknown_template_is_404_template_not_found(api):
    assert_envelope(api.get("/v1/templates/tpl_01J9Y0AA11BB22CC33DD44EE55"), 404, "template_not_found")
    assert_envelope(api.get("/v1/templates/no-such-slug"), 404, "template_not_found")


def test_patch_renames_and_reslugs(api, workspace):
    template = TemplateFactory(workspace=workspace, slug="old")
    response = api.patch(f"/v1/templates/{template.id}", {"name": "New name", "slug": "new"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "New name" and response.json()["slug"] == "new"
    assert api.get("/v1/templates/new").json()["id"] == template.id


def test_patch_to_a_taken_slug_is_409(api, workspace):
    TemplateFactory(workspace=workspace, slug="taken")
    template = TemplateFactory(workspace=workspace, slug="mine")
    assert_envelope(api.patch(f"/v1/templates/{template.id}", {"slug": "taken"}, format="json"), 409, "template_exists")


def test_put_is_405(api, workspace):
    template = TemplateFactory(workspace=workspace)
    assert_envelope(api.put(f"/v1/templates/{template.id}", {"name": "x"}, format="json"), 405, "method_not_allowed")


def test_delete_archives(api, workspace):
    template = TemplateFactory(workspace=workspace, slug="gone")
    response = api.delete(f"/v1/templates/{template.id}")
    assert response.status_code == 204
    template.refresh_from_db()
    assert template.archived_at is not None
    assert api.get("/v1/templates").json()["data"] == []
    assert api.get(f"/v1/templates/{template.id}").json()["archived"] is True
    assert_envelope(api.get("/v1/templates/gone"), 404, "template_not_found")
    assert api.delete(f"/v1/templates/{template.id}").status_code == 204
    listed = api.get("/v1/templates?include_archived=true").json()["data"]
    assert [row["id"] for row in listed] == [template.id]


def test_list_is_newest_first_and_paginated(api, workspace, other_workspace):
    made = [TemplateFactory(workspace=workspace) for _ in range(5)]
    TemplateFactory(workspace=other_workspace)
    seen, cursor = [], None
    while True:
        response = api.get("/v1/templates", {"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        seen += [row["id"] for row in response.json()["data"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [t.id for t in sorted(made, key=lambda t: (t.created_at, t.id), reverse=True)]


def test_list_query_count_does_not_grow(api, workspace, django_assert_max_num_queries):
    for _ in range(30):
        VersionedTemplateFactory(workspace=workspace)
    with django_assert_max_num_queries(3):
        response = api.get("/v1/templates", {"limit": 100})
    assert len(response.json()["data"]) == 30


def test_versions_list_query_count_does_not_grow(api, workspace, django_assert_max_num_queries):
    template = TemplateFactory(workspace=workspace, latest_version=20)
    for number in range(1, 21):
        TemplateVersionFactory(template=template, version=number)
    with django_assert_max_num_queries(4):
        response = api.get(f"/v1/templates/{template.id}/versions", {"limit": 100})
    assert [row["version"] for row in response.json()["data"]] == list(range(20, 0, -1))


def test_create_versions_numbers_them_and_updates_latest(api, workspace):
    template = TemplateFactory(workspace=workspace)
    body = {"subject": "Hi {{ name }}", "html": "<p>Hi {{ name }}</p>"}
    first = api.post(f"/v1/templates/{template.id}/versions", body, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["version"] == 1
    assert first.json()["template_id"] == template.id
    assert first.json()["text"] == "" and first.json()["translations"] == {}
    second = api.post(f"/v1/templates/{template.slug}/versions", {**body, "text": "Hi"}, format="json")
    assert second.json()["version"] == 2
    assert api.get(f"/v1/templates/{template.id}").json()["latest_version"] == 2
    assert api.get(f"/v1/templates/{template.id}/versions/1").json()["subject"] == "Hi {{ name }}"
    assert api.get(f"/v1/templates/{template.id}/versions/2").json()["text"] == "Hi"
    assert_envelope(api.get(f"/v1/templates/{template.id}/versions/3"), 404, "template_version_not_found")


def test_versions_are_immutable_there_is_no_route_to_change_one(api, workspace):
    template = VersionedTemplateFactory(workspace=workspace)
    url = f"/v1/templates/{template.id}/versions/1"
    assert_envelope(api.patch(url, {"subject": "x"}, format="json"), 405, "method_not_allowed")
    assert_envelope(api.delete(url), 405, "method_not_allowed")


def test_archived_templates_take_no_new_versions(api, workspace):
    template = TemplateFactory(workspace=workspace, archived_at="2026-01-01T00:00:00Z")
    body = {"subject": "s", "html": "h"}
    assert_envelope(api.post(f"/v1/templates/{template.id}/versions", body, format="json"), 409, "template_archived")


@pytest.mark.parametrize(
    ("body", "field", "line", "fragment"),
    [
        ({"subject": "ok", "html": "<p>\n\n{{ name }</p>"}, "html", 3, "unexpected '}'"),
        ({"subject": "Hi {% if %}", "html": "ok"}, "subject", 1, ""),
        ({"subject": "ok", "html": "ok", "text": "a\n{% endfor %}"}, "text", 2, "endfor"),
        (
            {"subject": "ok", "html": "ok", "translations": {"de": {"subject": "Hallo {{", "html": "ok"}}},
            "translations.de.subject",
            1,
            "",
        ),
        (
            {"subject": "ok", "html": "ok", "translations": {"pt-BR": {"subject": "ok", "html": "a\nb\n{% for %}"}}},
            "translations.pt-BR.html",
            3,
            "",
        ),
        ({"subject": "ok", "html": "{% include 'evil' %}"}, "html", 1, "not supported"),
    ],
)
def test_syntax_errors_are_422_naming_field_and_line(api, workspace, body, field, line, fragment):
    template = TemplateFactory(workspace=workspace)
    response = api.post(f"/v1/templates/{template.id}/versions", body, format="json")
    error = assert_envelope(response, 422, "validation_failed")
    [violation] = error["violations"]
    assert violation["field"] == field
    assert violation["code"] == "template_syntax_error"
    assert violation["message"].startswith(f"line {line}: ")
    assert fragment in violation["message"]
    assert not TemplateVersion.objects.filter(template=template).exists()


@pytest.mark.parametrize(
    ("translations", "expected"),
    [
        ({"pt_BR": {"subject": "s", "html": "h"}}, {("translations.pt_BR", "invalid_locale")}),
        ({"de": {"subject": "s"}}, {("translations.de.html", "required")}),
        ({"de": {"subject": "s", "html": "h", "footer": "x"}}, {("translations.de.footer", "unknown_field")}),
        ({"de": "Hallo"}, {("translations.de", "invalid_value")}),
        ("nope", {("translations", "not_a_dict")}),
    ],
)
def test_translations_shape_is_validated(api, workspace, translations, expected):
    template = TemplateFactory(workspace=workspace)
    body = {"subject": "s", "html": "h", "translations": translations}
    error = assert_envelope(
        api.post(f"/v1/templates/{template.id}/versions", body, format="json"), 422, "validation_failed"
    )
    assert violations(error) == expected


def test_version_size_limits(api, workspace):
    template = TemplateFactory(workspace=workspace)
    body = {"subject": "s" * 999, "html": "x" * (512 * 1024 + 1), "text": "é" * (256 * 1024 + 1)}
    error = assert_envelope(
        api.post(f"/v1/templates/{template.id}/versions", body, format="json"), 422, "validation_failed"
    )
    assert violations(error) == {("subject", "max_length"), ("html", "too_long"), ("text", "too_long")}


def test_render_preview(api, workspace):
    template = TemplateFactory(workspace=workspace)
    api.post(
        f"/v1/templates/{template.id}/versions",
        {"subject": "Order {{ order_id }}", "html": "<p>Hi {{ name }}, total {{ total|currency('EUR') }}</p>"},
        format="json",
    )
    response = api.post(
        f"/v1/templates/{template.id}/render",
        {"data": {"name": "<Jane>", "order_id": "o_9", "total": 42}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "subject": "Order o_9",
        "html": "<p>Hi &lt;Jane&gt;, total €42.00</p>",
        "text": "Hi <Jane>, total €42.00",
        "version": 1,
        "locale": "en",
        "missing_variables": [],
    }


def test_render_uses_the_workspace_default_locale_and_the_given_zone(api, workspace):
    workspace.default_locale = "de"
    workspace.save()
    template = VersionedTemplateFactory(workspace=workspace, version__html="{{ at|datetime('short') }}")
    response = api.post(
        f"/v1/templates/{template.id}/render",
        {"data": {"at": "2026-06-09T22:30:00+00:00"}, "timezone": "Europe/Berlin"},
        format="json",
    )
    assert response.json()["html"] == "10.06.26, 00:30"
    assert response.json()["locale"] == "de"


def test_render_picks_a_version_and_a_translation(api, workspace):
    template = TemplateFactory(workspace=workspace, latest_version=2)
    TranslatedVersionFactory(template=template, version=1)
    TemplateVersionFactory(template=template, version=2)
    response = api.post(
        f"/v1/templates/{template.id}/render",
        {"data": {"name": "Jo", "order_id": 7}, "version": 1, "locale": "pt_br"},
        format="json",
    )
    assert response.json()["subject"] == "Pedido 7"
    assert response.json()["locale"] == "pt-BR"
    assert response.json()["version"] == 1


def test_render_without_a_version_is_422_template_has_no_version(api, workspace):
    template = TemplateFactory(workspace=workspace)
    response = api.post(f"/v1/templates/{template.id}/render", {"data": {}}, format="json")
    assert_envelope(response, 422, "template_has_no_version")


def test_render_of_a_missing_version_number_is_422(api, workspace):
    template = VersionedTemplateFactory(workspace=workspace)
    response = api.post(f"/v1/templates/{template.id}/render", {"version": 9}, format="json")
    assert_envelope(response, 422, "template_version_not_found")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"timezone": "Mars/Olympus"}, {("timezone", "invalid_timezone")}),
        ({"timezone": "../../etc/passwd"}, {("timezone", "invalid_timezone")}),
        ({"locale": "not a locale"}, {("locale", "invalid_locale")}),
        ({"data": [1, 2]}, {("data", "not_a_dict")}),
        ({"version": 0}, {("version", "min_value")}),
        ({"subject": "x"}, {("subject", "unknown_field")}),
    ],
)
def test_render_validation(api, workspace, body, expected):
    template = VersionedTemplateFactory(workspace=workspace)
    error = assert_envelope(
        api.post(f"/v1/templates/{template.id}/render", body, format="json"), 422, "validation_failed"
    )
    assert violations(error) == expected


def test_a_render_failure_is_422_template_render_failed(api, workspace):
    template = VersionedTemplateFactory(workspace=workspace, version__html="{{ 1 / 0 }}")
    response = api.post(f"/v1/templates/{template.id}/render", {"data": {}}, format="json")
    error = assert_envelope(response, 422, "template_render_failed")
    assert "division by zero" in error["message"]


# The bodies that would change the template if its workspace did not matter; every other route
# of the schema under /v1/templates/{id} is called without one.
BODIES = {
    ("patch", "/v1/templates/{id}"): {"name": "Mine now"},
    ("post", "/v1/templates/{id}/versions"): {"subject": "s", "html": "h"},
    ("post", "/v1/templates/{id}/render"): {"data": {}},
}
ROUTES_WITH_AN_ID = [
    (method, route.replace("{id}", "{ref}").replace("{number}", "1"), BODIES.get((method, route)))
    for method, route in routes_with_an_id("/v1/templates/")
]


@pytest.mark.parametrize(("method", "route", "body"), ROUTES_WITH_AN_ID)
@pytest.mark.parametrize("by", ["id", "slug"])
def test_another_workspaces_template_is_404_on_every_route(other_api, workspace, method, route, body, by):
    template = VersionedTemplateFactory(workspace=workspace, slug="private")
    ref = template.id if by == "id" else template.slug
    response = getattr(other_api, method)(route.format(ref=ref), body, format="json")
    assert_envelope(response, 404, "template_not_found")
    template.refresh_from_db()
    assert template.archived_at is None and template.name != "Mine now" and template.latest_version == 1


@pytest.mark.parametrize(
    ("method", "route", "body", "scope"),
    [
        ("get", "/v1/templates", None, "templates:read"),
        ("post", "/v1/templates", {"name": "x"}, "templates:manage"),
        ("get", "/v1/templates/{ref}", None, "templates:read"),
        ("patch", "/v1/templates/{ref}", {"name": "x"}, "templates:manage"),
        ("delete", "/v1/templates/{ref}", None, "templates:manage"),
        ("get", "/v1/templates/{ref}/versions", None, "templates:read"),
        ("post", "/v1/templates/{ref}/versions", {"subject": "s", "html": "h"}, "templates:manage"),
        ("get", "/v1/templates/{ref}/versions/1", None, "templates:read"),
        ("post", "/v1/templates/{ref}/render", {"data": {}}, "templates:read"),
    ],
)
def test_a_key_without_the_scope_is_403(make_client, workspace, method, route, body, scope):
    template = VersionedTemplateFactory(workspace=workspace)
    client = make_client(workspace, scopes=["messages:send"])
    response = getattr(client, method)(route.format(ref=template.id), body, format="json")
    error = assert_envelope(response, 403, "missing_scope")
    assert scope in error["message"]


def test_read_scope_cannot_write_and_manage_can_read(make_client, workspace):
    reader = make_client(workspace, scopes=["templates:read"])
    assert_envelope(reader.post("/v1/templates", {"name": "x"}, format="json"), 403, "missing_scope")
    manager = make_client(workspace, scopes=["templates:manage"])
    assert manager.get("/v1/templates").status_code == 200


def test_a_version_with_its_translations_is_limited_in_total(api, workspace):
    template = TemplateFactory(workspace=workspace)
    big = "x" * 520_000
    translations = {lang: {"subject": "s", "html": big} for lang in ("de", "fr", "es")}
    body = {"subject": "s", "html": big, "text": "x" * 100_000, "translations": translations}
    response = api.post(f"/v1/templates/{template.id}/versions", body, format="json")
    error = assert_envelope(response, 422, "validation_failed")
    assert violations(error) == {("translations", "too_long")}


def test_a_deeply_nested_template_is_a_422_not_a_500(api, workspace):
    template = TemplateFactory(workspace=workspace)
    body = {"subject": "s", "html": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"}
    error = assert_envelope(
        api.post(f"/v1/templates/{template.id}/versions", body, format="json"), 422, "validation_failed"
    )
    assert violations(error) == {("html", "template_syntax_error")}


def test_admin_archive_action_calls_the_service(admin_client, workspace):
    template = TemplateFactory(workspace=workspace)
    response = admin_client.post(
        "/admin/templates_app/template/", {"action": "archive", "_selected_action": [template.pk]}, follow=True
    )
    assert response.status_code == 200
    template.refresh_from_db()
    assert template.archived_at is not None
    assert admin_client.get(f"/admin/templates_app/template/{template.pk}/change/").status_code == 200


def test_render_with_deeply_nested_data_is_422_too_deep_not_500(api, workspace):
    template = VersionedTemplateFactory(workspace=workspace)
    raw = '{"data": {"x": ' + "[" * 500 + "]" * 500 + "}}"
    response = api.generic("POST", f"/v1/templates/{template.id}/render", raw, content_type="application/json")
    error = assert_envelope(response, 422, "validation_failed")
    assert violations(error) == {("data", "too_deep")}


def test_render_of_a_subject_longer_than_998_characters_is_422(api, workspace):
    """#15 item 11: the cap applies to the rendered subject (a short source can render a long one)."""
    template = TemplateFactory(workspace=workspace)
    api.post(f"/v1/templates/{template.id}/versions", {"subject": "{{ s }}", "html": "<p>x</p>"}, format="json")
    ok = api.post(f"/v1/templates/{template.id}/render", {"data": {"s": "é" * 998}}, format="json")
    assert ok.status_code == 200 and ok.json()["subject"] == "é" * 998
    response = api.post(f"/v1/templates/{template.id}/render", {"data": {"s": "x" * 480_000}}, format="json")
    error = assert_envelope(response, 422, "template_render_failed")
    assert "480,000 characters" in error["message"] and "at most 998" in error["message"]


@pytest.mark.parametrize(
    ("html", "fragment"),
    [
        ("{% call nothing() %}{% endcall %}", "'call' must call a macro defined in this template"),
        ("{% call dict() %}{% endcall %}", "'call' must call a macro defined in this template"),
        ("{{ x" + "|upper" * 210 + " }}", "nests too deeply"),
        ("{{ x" + "|upper" * 1000 + " }}", "nests too deeply"),
        ("{{ x }}" * 6000, "too large"),
        ("{% for a in x %}" * 21 + "{% endfor %}" * 21, "loops nest at most 16 deep"),
        ('{{ "%(a)1000000000s"|format(a=1) }}', "Format widths are limited to 1000"),
    ],
)
def test_poison_and_compile_bombs_are_422_at_save(api, workspace, html, fragment):
    template = TemplateFactory(workspace=workspace)
    response = api.post(f"/v1/templates/{template.id}/versions", {"subject": "s", "html": html}, format="json")
    error = assert_envelope(response, 422, "validation_failed")
    [violation] = error["violations"]
    assert (violation["field"], violation["code"]) == ("html", "template_syntax_error")
    assert fragment in violation["message"]
    assert not TemplateVersion.objects.filter(template=template).exists()


def test_a_version_whose_translations_together_are_too_large_is_422(api, workspace):
    template = TemplateFactory(workspace=workspace)
    part = "{{ x }}" * 4800  # 4,802 nodes: within the per-part bound, 24,010 in all
    translations = {lang: {"subject": "s", "html": part} for lang in ("de", "fr", "es", "it")}
    body = {"subject": "s", "html": part, "translations": translations}
    response = api.post(f"/v1/templates/{template.id}/versions", body, format="json")
    error = assert_envelope(response, 422, "validation_failed")
    assert violations(error) == {("translations", "template_too_large")}
    assert "20,000" in error["violations"][0]["message"]
    assert not TemplateVersion.objects.filter(template=template).exists()


@pytest.mark.parametrize(
    "html",
    [
        "{% call nothing() %}{% endcall %}",
        "{% call dict() %}{% endcall %}",
        "{{ x" + "|upper" * 210 + " }}",
        '{{ "%(a)1000000000s"|format(a=1) }}',
    ],
)
def test_a_poison_version_saved_before_the_checks_previews_as_a_422_not_a_500(api, workspace, html):
    template = VersionedTemplateFactory(workspace=workspace, version__html=html)
    response = api.post(f"/v1/templates/{template.id}/render", {"data": {}}, format="json")
    error = assert_envelope(response, 422, "template_render_failed")
    assert error["message"].startswith("html")


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"locale": "ja-JP-u-ca-japanese"}, "locale", "invalid_locale"),
        ({"timezone": "localtime"}, "timezone", "invalid_timezone"),
        ({"timezone": "Factory"}, "timezone", "invalid_timezone"),
    ],
)
def test_a_preview_refuses_what_a_send_refuses(api, workspace, body, field, code):
    template = VersionedTemplateFactory(workspace=workspace)
    error = assert_envelope(
        api.post(f"/v1/templates/{template.id}/render", body, format="json"), 422, "validation_failed"
    )
    assert violations(error) == {(field, code)}
