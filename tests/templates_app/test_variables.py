"""The render preview lists the variables `data` lacks; strict templates refuse them at preview and send."""

from tests.helpers import assert_envelope
from tests.messaging.conftest import FROM, make_sendable


def preview(api, ref, data, **extra):
    return api.post(f"/v1/templates/{ref}/render", {"data": data, **extra}, format="json")


def versioned(api, **template):
    created = api.post("/v1/templates", {"name": "Order confirmation", **template}, format="json")
    assert created.status_code == 201, created.content
    version = api.post(
        f"/v1/templates/{created.json()['id']}/versions",
        {
            "subject": "Order {{ order_id }}",
            "html": "<p>Hi {{ name }}{% if coupon %}, use {{ coupon.code }}{% endif %}</p>{% for i in range(2) %}{{ i }}{% endfor %}",
            "translations": {"de": {"subject": "Bestellung {{ order_id }}", "html": "<p>Hallo {{ vorname }}</p>"}},
        },
        format="json",
    )
    assert version.status_code == 201, version.content
    return created.json()


def test_the_preview_lists_missing_variables_and_still_renders(api, workspace):
    template = versioned(api)
    assert template["strict_variables"] is False
    response = preview(api, template["id"], {"name": "Jane"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["missing_variables"] == ["coupon", "order_id"]  # `range` and loop variables are not data
    assert body["subject"] == "Order"
    assert (
        preview(api, template["id"], {"name": "J", "order_id": "o_9", "coupon": None}).json()["missing_variables"] == []
    )
    # The locale's translation is what counts.
    assert preview(api, template["id"], {"order_id": "o_9"}, locale="de").json()["missing_variables"] == ["vorname"]


def test_a_strict_template_refuses_a_preview_with_missing_variables(api, workspace):
    template = versioned(api, strictVariables=True)
    assert template["strict_variables"] is True
    error = assert_envelope(preview(api, template["id"], {"name": "Jane"}), 422, "template_variables_missing")
    assert error["missing_variables"] == ["coupon", "order_id"]
    assert "coupon, order_id" in error["message"]
    ok = preview(api, template["id"], {"name": "Jane", "order_id": "o_9", "coupon": {"code": "X"}})
    assert ok.status_code == 200 and ok.json()["html"].startswith("<p>Hi Jane, use X</p>")


def test_strictness_is_switched_with_patch(api, workspace):
    template = versioned(api)
    patched = api.patch(f"/v1/templates/{template['id']}", {"strictVariables": True}, format="json")
    assert patched.status_code == 200 and patched.json()["strict_variables"] is True
    assert_envelope(preview(api, template["id"], {}), 422, "template_variables_missing")
    off = api.patch(f"/v1/templates/{template['id']}", {"strictVariables": False}, format="json")
    assert off.json()["strict_variables"] is False
    assert preview(api, template["id"], {}).status_code == 200


def test_a_send_with_a_strict_template_and_missing_data_is_refused_and_lenient_ones_are_accepted(api, workspace):
    make_sendable(workspace)  # domain, sender, and a template of its own
    template = versioned(api, slug="strict-one")
    send = {"from": FROM, "to": "jane@example.com", "template": "strict-one", "data": {"name": "Jane"}}
    assert api.post("/v1/messages", send, format="json").status_code == 202  # lenient: accepted, as the guide says
    api.patch(f"/v1/templates/{template['id']}", {"strictVariables": True}, format="json")
    error = assert_envelope(api.post("/v1/messages", send, format="json"), 422, "template_variables_missing")
    assert error["missing_variables"] == ["coupon", "order_id"]
    send["data"] = {"name": "Jane", "order_id": "o_9", "coupon": None}
    assert api.post("/v1/messages", send, format="json").status_code == 202
    german = {**send, "locale": "de"}
    assert assert_envelope(api.post("/v1/messages", german, format="json"), 422, "template_variables_missing")[
        "missing_variables"
    ] == ["vorname"]
