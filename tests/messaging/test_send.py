import re

import pytest
from django.utils import timezone

from messaging.models import IdempotencyRecord, Message, MessageAttachment, MessageEvent
from pufferpost import redis as pp_redis
from pufferpost.ids import is_valid
from tests.factories import SenderFactory, TemplateFactory, TemplateVersionFactory
from tests.helpers import assert_envelope
from tests.messaging.conftest import FROM, b64, make_sendable
from tests.messaging.factories import (
    SuppressionFactory,
    UnsubscribeFactory,
    UnsubscribeGroupFactory,
    VerifiedDomainFactory,
)


def send(api, body, **headers):
    return api.post("/v1/messages", body, format="json", **headers)


def nothing_stored():
    return not Message.objects.exists() and not MessageEvent.objects.exists() and not IdempotencyRecord.objects.exists()


def test_send_is_accepted_with_a_message_id_and_stores_message_and_event(api, sendable, body):
    response = send(api, body(replyTo="Support@Acme.com", cc=["audit@acme.com"], metadata={"order_id": "o_9"}))
    assert response.status_code == 202, response.content
    payload = response.json()
    assert set(payload) == {"id", "status"} and payload["status"] == "accepted"
    assert is_valid("msg", payload["id"])
    message = Message.objects.get(pk=payload["id"])
    assert message.workspace == sendable.workspace
    assert message.sender == sendable.sender
    assert message.template_version == sendable.version  # the latest version is pinned
    assert message.reply_to == "support@acme.com"
    assert message.cc == ["audit@acme.com"]
    assert message.metadata == {"order_id": "o_9"}
    assert message.data == {"name": "Jane"}
    assert message.status == "accepted"
    assert message.locale == "en" and message.timezone == "UTC"
    assert list(message.events.values_list("type", flat=True)) == ["accepted"]


@pytest.mark.parametrize("field", ["data", "cc", "metadata", "attachments", "replyTo", "locale", "unsubscribeGroup"])
def test_an_optional_field_sent_as_null_answers_exactly_as_one_left_out(api, sendable, body, field):
    """The guide lists these as optional; SDKs often send an unset optional field as null."""
    stored = ("data", "cc", "metadata", "reply_to", "locale", "timezone", "unsubscribe_group_id", "status")
    left_out = send(api, body(**{field: ...}))
    as_null = send(api, body(**{field: None}))
    assert as_null.status_code == left_out.status_code == 202, as_null.content
    assert set(as_null.json()) == set(left_out.json()) == {"id", "status"}
    first, second = (Message.objects.values_list(*stored).get(pk=r.json()["id"]) for r in (left_out, as_null))
    assert second == first
    assert not MessageAttachment.objects.exists()


def test_locale_defaults_to_the_workspace_default_and_can_be_overridden(api, sendable, body):
    sendable.workspace.default_locale = "fr"
    sendable.workspace.save()
    first = send(api, body()).json()["id"]
    second = send(api, body(locale="pt-BR", timezone="Europe/Berlin")).json()["id"]
    assert Message.objects.get(pk=first).locale == "fr"
    assert Message.objects.values_list("locale", "timezone").get(pk=second) == ("pt-BR", "Europe/Berlin")


def test_from_and_to_are_normalised(api, sendable, body):
    response = send(api, body(**{"from": "  Receipts@MAIL.acme.com", "to": "Jane@Example.COM"}))
    assert response.status_code == 202, response.content
    message = Message.objects.get()
    assert (message.from_address, message.to) == (FROM, "jane@example.com")


def test_template_slug_is_accepted_and_template_id_wins_over_it(api, sendable, body):
    other = TemplateFactory(workspace=sendable.workspace, slug="other")
    assert send(api, body(templateId=..., template="order-confirmation")).status_code == 202
    assert send(api, body(template="other")).status_code == 202  # templateId (with a version) wins
    assert set(Message.objects.values_list("template_id", flat=True)) == {sendable.template.id}
    assert other.id


def test_a_new_version_is_pinned_for_later_sends_only(api, sendable, body):
    first = send(api, body()).json()["id"]
    TemplateVersionFactory(template=sendable.template, version=3)
    second = send(api, body()).json()["id"]
    assert Message.objects.get(pk=first).template_version.version == 2
    assert Message.objects.get(pk=second).template_version.version == 3


def test_attachments_are_stored_apart_and_never_echoed(api, sendable, body):
    pdf = b"%PDF-1.4 fake" * 10
    response = send(
        api, body(attachments=[{"filename": "receipt.pdf", "contentType": "application/pdf", "content": b64(pdf)}])
    )
    assert response.status_code == 202, response.content
    attachment = MessageAttachment.objects.get()
    assert (attachment.filename, attachment.content_type, bytes(attachment.content)) == (
        "receipt.pdf",
        "application/pdf",
        pdf,
    )
    read = api.get(f"/v1/messages/{response.json()['id']}")
    assert read.json()["attachments"] == [{"filename": "receipt.pdf", "content_type": "application/pdf"}]
    assert b64(pdf) not in read.content.decode()


def test_the_largest_allowed_attachments_are_accepted(api, sendable, body):
    one_mb = b64(b"\x00" * 1_048_576)
    files = [{"filename": f"f{i}.bin", "contentType": "application/octet-stream", "content": one_mb} for i in range(3)]
    response = send(api, body(attachments=files))
    assert response.status_code == 202, response.content
    assert MessageAttachment.objects.count() == 3


def test_mime_wrapped_base64_is_accepted(api, sendable, body):
    wrapped = "\r\n".join(re.findall(".{1,76}", b64(b"hello world" * 20)))
    response = send(api, body(attachments=[{"filename": "a.txt", "contentType": "text/plain", "content": wrapped}]))
    assert response.status_code == 202, response.content
    assert bytes(MessageAttachment.objects.get().content) == b"hello world" * 20


def _attachment(**overrides):
    item = {"filename": "a.pdf", "contentType": "application/pdf", "content": b64(b"x")}
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not ...}


# (overrides, field, code): every field limit of the guide's table.
VIOLATIONS = [
    ({"from": ...}, "from", "required"),
    ({"to": ...}, "to", "required"),
    ({"from": "not-an-email"}, "from", "invalid_email"),
    ({"to": "jane"}, "to", "invalid_email"),
    ({"to": ["a@example.com"]}, "to", "invalid_value"),
    ({"replyTo": "nope"}, "replyTo", "invalid_email"),
    ({"cc": ["a@example.com"] * 3 + ["bad"]}, "cc[3]", "invalid_email"),
    ({"cc": [f"a{i}@example.com" for i in range(26)]}, "cc", "max_length"),
    ({"cc": "a@example.com"}, "cc", "not_a_list"),
    ({"data": ["x"]}, "data", "not_an_object"),
    ({"metadata": {"order_id": 9}}, "metadata.order_id", "not_a_string"),
    ({"metadata": {"order_id": "x" * 501}}, "metadata.order_id", "max_length"),
    ({"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata", "too_many_keys"),
    ({"metadata": {"k" * 101: "v"}}, "metadata." + "k" * 101, "invalid_key"),
    ({"metadata": "x"}, "metadata", "not_an_object"),
    ({"locale": "german!"}, "locale", "invalid_locale"),
    ({"locale": 7}, "locale", "not_a_string"),
    ({"timezone": "Mars/Olympus"}, "timezone", "invalid_timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone", "invalid_timezone"),
    # What rendering refuses, sending refuses (one check): locale extensions, the host's own zone.
    ({"locale": "ja-JP-u-ca-japanese"}, "locale", "invalid_locale"),
    ({"locale": "de-DE-1996"}, "locale", "invalid_locale"),
    ({"timezone": "localtime"}, "timezone", "invalid_timezone"),
    ({"timezone": "posixrules"}, "timezone", "invalid_timezone"),
    ({"templateId": 5}, "templateId", "not_a_string"),
    ({"unsubscribeGroup": "g" * 65}, "unsubscribeGroup", "max_length"),
    ({"attachments": [_attachment()] * 4}, "attachments", "max_length"),
    ({"attachments": [_attachment(filename="../etc/passwd")]}, "attachments[0].filename", "invalid_filename"),
    ({"attachments": [_attachment(filename="a\\b.pdf")]}, "attachments[0].filename", "invalid_filename"),
    ({"attachments": [_attachment(filename="a\x00.pdf")]}, "attachments[0].filename", "invalid_filename"),
    ({"attachments": [_attachment(filename="a" * 256)]}, "attachments[0].filename", "max_length"),
    # #15 item 17: names no header can carry and types no relay will take are refused at once.
    ({"attachments": [_attachment(filename="a\r\nBcc: x@y.test.pdf")]}, "attachments[0].filename", "invalid_filename"),
    ({"attachments": [_attachment(filename="a\n.pdf")]}, "attachments[0].filename", "invalid_filename"),
    ({"attachments": [_attachment(filename="a\t.pdf")]}, "attachments[0].filename", "invalid_filename"),
    ({"attachments": [_attachment(filename="a\x85.pdf")]}, "attachments[0].filename", "invalid_filename"),
    ({"attachments": [_attachment(filename="a\u2028.pdf")]}, "attachments[0].filename", "invalid_filename"),
    (
        {"attachments": [_attachment(contentType="message/rfc822")]},
        "attachments[0].contentType",
        "undeliverable_content_type",
    ),
    (
        {"attachments": [_attachment(contentType="Message/Partial")]},
        "attachments[0].contentType",
        "undeliverable_content_type",
    ),
    (
        {"attachments": [_attachment(contentType="multipart/mixed")]},
        "attachments[0].contentType",
        "undeliverable_content_type",
    ),
    # #11 item 6: text/* may name its charset, and nothing else may be said.
    (
        {"attachments": [_attachment(contentType="text/csv; charset=klingon")]},
        "attachments[0].contentType",
        "invalid_charset",
    ),
    (
        {"attachments": [_attachment(contentType="text/csv; charset=utf-8 or so")]},
        "attachments[0].contentType",
        "invalid_charset",
    ),
    (
        {"attachments": [_attachment(contentType="text/csv; name=x.csv")]},
        "attachments[0].contentType",
        "invalid_content_type",
    ),
    (
        {"attachments": [_attachment(contentType="application/pdf; charset=utf-8")]},
        "attachments[0].contentType",
        "invalid_content_type",
    ),
    # #15 item 18: control characters and address literals never reach a header or RCPT.
    ({"to": "jane@[127.0.0.1]"}, "to", "invalid_email"),
    ({"cc": ["jane@[IPv6:::1]"]}, "cc[0]", "invalid_email"),
    ({"to": '"ja\x01ne"@example.com'}, "to", "invalid_email"),
    ({"replyTo": '"a\x7fb"@example.com'}, "replyTo", "invalid_email"),
    ({"attachments": [_attachment(contentType="pdf")]}, "attachments[0].contentType", "invalid_content_type"),
    ({"attachments": [_attachment(content="not base64!")]}, "attachments[0].content", "invalid_base64"),
    (
        {"attachments": [_attachment(content=b64(b"\x00" * 1_048_577))]},
        "attachments[0].content",
        "too_large",
    ),
    ({"attachments": [_attachment(content=...)]}, "attachments[0].content", "required"),
    ({"attachments": [_attachment(size=3)]}, "attachments[0].size", "unknown_field"),
    ({"subject": "Hi"}, "subject", "unknown_field"),
    ({"html": "<p>Hi</p>"}, "html", "unknown_field"),
]


@pytest.mark.parametrize(("overrides", "field", "code"), VIOLATIONS, ids=[v[1] + ":" + v[2] for v in VIOLATIONS])
def test_each_field_limit_is_a_422_violation_naming_the_field(api, sendable, body, overrides, field, code):
    error = assert_envelope(send(api, body(**overrides)), 422, "validation_failed")
    assert {"field": field, "code": code} in [{"field": v["field"], "code": v["code"]} for v in error["violations"]]
    assert nothing_stored()


def test_limits_at_their_edges_are_accepted(api, sendable, body):
    response = send(
        api,
        body(
            cc=[f"a{i}@example.com" for i in range(25)],
            metadata={f"k{i}": "v" * 500 for i in range(50)},
            attachments=[_attachment(filename="a" * 255)] * 3,
        ),
    )
    assert response.status_code == 202, response.content


def test_a_non_object_body_is_422(api, sendable):
    error = assert_envelope(api.post("/v1/messages", [1], format="json"), 422, "validation_failed")
    assert error["violations"][0]["field"] is None


def test_no_template_is_template_required(api, sendable, body):
    assert_envelope(send(api, body(templateId=...)), 422, "template_required")
    assert_envelope(send(api, body(templateId="", template=None)), 422, "template_required")
    assert nothing_stored()


@pytest.mark.parametrize("how", ["unknown id", "unknown slug", "archived", "other workspace"])
def test_missing_archived_or_foreign_templates_are_template_not_found(api, sendable, body, other_workspace, how):
    if how == "unknown id":
        request = body(templateId="tpl_01J9Y0AA11BB22CC33DD44EE55")
    elif how == "unknown slug":
        request = body(templateId=..., template="nope")
    elif how == "archived":
        sendable.template.archived_at = timezone.now()
        sendable.template.save()
        request = body()
    else:
        foreign = make_sendable(other_workspace).template
        request = body(templateId=foreign.id)
    error = assert_envelope(send(api, request), 422, "template_not_found")
    assert "template" in error["message"].lower()
    assert nothing_stored()


@pytest.mark.parametrize("dmarc", ["missing", "unknown"])
def test_dmarc_is_observed_but_never_blocks_a_send(api, sendable, body, dmarc):
    sendable.domain.dmarc_status = dmarc
    sendable.domain.save()
    response = send(api, body())
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"


def test_a_template_without_a_version_is_template_has_no_version(api, sendable, body):
    empty = TemplateFactory(workspace=sendable.workspace, slug="empty")
    assert_envelope(send(api, body(templateId=empty.id)), 422, "template_has_no_version")
    assert_envelope(send(api, body(templateId=..., template="empty")), 422, "template_has_no_version")
    assert nothing_stored()


@pytest.mark.parametrize(
    "how", ["no sender", "under_review", "paused", "domain pending", "domain failed", "no domain", "parent domain"]
)
def test_the_sender_gate_answers_sender_not_available_with_the_exact_message(api, sendable, body, how):
    if how == "no sender":
        sendable.sender.delete()
    elif how in ("under_review", "paused"):
        sendable.sender.state = how
        sendable.sender.save()
    elif how in ("domain pending", "domain failed"):
        sendable.domain.dkim_status = how.split()[1]
        sendable.domain.save()
    elif how == "no domain":
        sendable.domain.delete()
    else:
        sendable.domain.domain = "acme.com"  # only the exact from-domain counts
        sendable.domain.save()
    error = assert_envelope(send(api, body(**{"from": "Receipts@mail.acme.com"})), 422, "sender_not_available")
    assert error["message"] == 'No active sender for "receipts@mail.acme.com".'
    assert nothing_stored()


def test_a_sender_or_domain_of_another_workspace_does_not_open_the_gate(api, workspace, other_workspace):
    make_sendable(other_workspace)
    template = TemplateFactory(workspace=workspace)
    TemplateVersionFactory(template=template)
    SenderFactory(workspace=workspace, from_address=FROM, state="active")  # domain only verified elsewhere
    request = {"from": FROM, "to": "jane@example.com", "templateId": template.id}
    assert_envelope(send(api, request), 422, "sender_not_available")


def test_another_address_on_a_verified_domain_is_not_a_sender(api, sendable, body):
    VerifiedDomainFactory(workspace=sendable.workspace, domain="other.acme.com")
    error = assert_envelope(send(api, body(**{"from": "noreply@mail.acme.com"})), 422, "sender_not_available")
    assert error["message"] == 'No active sender for "noreply@mail.acme.com".'


def test_a_suppressed_recipient_is_recipient_suppressed(api, sendable, body):
    SuppressionFactory(workspace=sendable.workspace, email="blocked@example.com", reason="bounce")
    error = assert_envelope(send(api, body(to="Blocked@example.com")), 422, "recipient_suppressed")
    assert error["message"] == '"blocked@example.com" is on the suppression list.'
    assert nothing_stored()


def test_a_suppression_in_another_workspace_does_not_block(api, sendable, body, other_workspace):
    SuppressionFactory(workspace=other_workspace, email="blocked@example.com")
    assert send(api, body(to="blocked@example.com")).status_code == 202


def test_unsubscribe_groups_are_checked(api, sendable, body, other_workspace):
    group = UnsubscribeGroupFactory(workspace=sendable.workspace)
    UnsubscribeFactory(group=group, email="gone@example.com")
    foreign = UnsubscribeGroupFactory(workspace=other_workspace)
    assert_envelope(send(api, body(unsubscribeGroup="grp_nope")), 422, "unknown_unsubscribe_group")
    assert_envelope(send(api, body(unsubscribeGroup=foreign.id)), 422, "unknown_unsubscribe_group")
    error = assert_envelope(
        send(api, body(to="gone@example.com", unsubscribeGroup=group.id)), 422, "recipient_unsubscribed"
    )
    assert "gone@example.com" in error["message"]
    assert nothing_stored()
    # Opting out of one group does not block sends without it.
    assert send(api, body(to="gone@example.com")).status_code == 202
    accepted = send(api, body(unsubscribeGroup=group.id))
    assert accepted.status_code == 202
    assert Message.objects.get(pk=accepted.json()["id"]).unsubscribe_group == group


def test_a_paused_workspace_is_403_sending_paused(api, sendable, body):
    sendable.workspace.sending_paused = True
    sendable.workspace.save()
    assert_envelope(send(api, body()), 403, "sending_paused")
    assert nothing_stored()


def test_sending_needs_the_messages_send_scope(make_client, sendable, body):
    client = make_client(sendable.workspace, scopes=["messages:read"])
    error = assert_envelope(send(client, body()), 403, "missing_scope")
    assert "messages:send" in error["message"]


def test_precedence_paused_before_validation_and_template_before_sender(api, sendable, body):
    sendable.sender.delete()
    assert_envelope(send(api, body(templateId="tpl_nope")), 422, "template_not_found")
    assert_envelope(send(api, body(templateId="tpl_nope", cc="x")), 422, "validation_failed")
    sendable.workspace.sending_paused = True
    sendable.workspace.save()
    assert_envelope(send(api, body(cc="x")), 403, "sending_paused")


def test_an_oversized_body_is_413(api, sendable, body, settings):
    settings.PUFFERPOST_SEND_MAX_BODY_BYTES = 1000
    assert_envelope(send(api, body(data={"x": "y" * 2000})), 413, "payload_too_large")


def _statement(sql: str) -> str:
    """What a statement does and to which table: `INSERT messaging_message`, `EXECUTE pp_api_key`."""
    words = sql.replace('"', "").split()
    if words[0] == "INSERT":
        return f"INSERT {words[2]}"
    if words[0] == "EXECUTE":
        return "EXECUTE " + words[1].split("(")[0]
    return words[0]


def test_a_single_send_costs_a_handful_of_queries(api, sendable, body, django_assert_max_num_queries, monkeypatch):
    send(api, body())  # warm-up (zone list, script registration, statements prepared)
    redis_commands = []
    client = pp_redis.client()
    execute_command = client.execute_command

    def counted(*args, **options):
        redis_commands.append(args[0])
        return execute_command(*args, **options)

    monkeypatch.setattr(client, "execute_command", counted)
    # key lookup, one context query, message insert, event insert, rollup upsert (+ savepoint pair
    # in tests); no webhook endpoint lookup in a workspace that has none
    with django_assert_max_num_queries(7) as captured:
        assert send(api, body()).status_code == 202
    assert [_statement(query["sql"]) for query in captured.captured_queries] == [
        "EXECUTE pp_api_key",
        "EXECUTE pp_send_context",
        "SAVEPOINT",
        "INSERT messaging_message",
        "INSERT messaging_messageevent",
        "EXECUTE pp_event_rollup_add",
        "RELEASE",
    ]
    # One round trip to Redis: rate limit and quota in one script (the delivery enqueue is the broker's).
    assert redis_commands == ["EVALSHA"]


@pytest.mark.parametrize(
    ("raw_field", "code"),
    [
        ('"data": {"note": "a\\u0000b"}', "invalid_character"),
        ('"data": {"a\\u0000": "b"}', "invalid_character"),
        ('"data": {"note": "\\ud800"}', "invalid_character"),
        ('"data": {"total": 1e999}', "invalid_number"),
        ('"data": {"deep": ' + "[" * 40 + "]" * 40 + "}", "too_deep"),
        ('"metadata": {"order_id": "a\\u0000b"}', "invalid_character"),
        ('"metadata": {"order_id": "\\udfff"}', "invalid_character"),
    ],
)
def test_json_postgresql_cannot_store_is_a_422_violation_not_a_500(api, sendable, raw_field, code):
    raw = f'{{"from": "{FROM}", "to": "jane@example.com", "templateId": "{sendable.template.id}", {raw_field}}}'
    response = api.generic("POST", "/v1/messages", raw, content_type="application/json")
    error = assert_envelope(response, 422, "validation_failed")
    assert code in {v["code"] for v in error["violations"]}
    assert not Message.objects.exists()


def test_a_batch_item_with_unstorable_data_fails_alone(api, sendable, body, enqueued):
    response = api.post("/v1/messages/batch", {"messages": [body(), body(data={"note": "a\x00b"})]}, format="json")
    assert response.status_code == 200
    first, second = response.json()["data"]
    assert first["status"] == "accepted"
    assert second["error"]["violations"][0]["code"] == "invalid_character"


def test_a_locale_is_stored_in_the_form_rendering_reads(api, sendable, body):
    sent = send(api, body(locale="PT_br")).json()["id"]
    assert Message.objects.get(pk=sent).locale == "pt-BR"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("text/csv; charset=utf-8", "text/csv; charset=utf-8"),
        ('Text/CSV; Charset="ISO-8859-1"', "text/csv; charset=iso-8859-1"),
        ("text/plain;charset=us-ascii", "text/plain; charset=us-ascii"),
    ],
)
def test_a_text_attachment_may_declare_its_charset(api, sendable, body, given, stored):
    response = send(api, body(attachments=[_attachment(filename="rows.csv", contentType=given)]))
    assert response.status_code == 202, response.content
    assert MessageAttachment.objects.get().content_type == stored


def test_an_address_literal_is_refused_with_a_message_that_says_why(api, sendable, body):
    error = assert_envelope(send(api, body(to="jane@[127.0.0.1]")), 422, "validation_failed")
    (violation,) = error["violations"]
    assert "Address literals" in violation["message"]
    assert nothing_stored()


def test_template_id_takes_precedence_over_a_slug_even_when_it_names_nothing(api, sendable, body):
    """The guide: `templateId` "takes precedence over `template`", so a good slug never rescues a bad id."""
    request = body(templateId="tpl_01J9Y0AA11BB22CC33DD44EE55", template="order-confirmation")
    assert_envelope(send(api, request), 422, "template_not_found")
    empty = TemplateFactory(workspace=sendable.workspace, slug="empty")
    assert_envelope(send(api, body(templateId=empty.id, template="order-confirmation")), 422, "template_has_no_version")
    assert nothing_stored()


def test_every_violation_names_its_field_code_and_a_message(api, sendable, body):
    """422s carry a `violations` array, one entry per offending field, each saying why."""
    error = assert_envelope(send(api, body(to="jane", cc="x", metadata="y")), 422, "validation_failed")
    assert {v["field"] for v in error["violations"]} == {"to", "cc", "metadata"}
    for violation in error["violations"]:
        assert set(violation) == {"field", "code", "message"}
        assert violation["code"] and violation["message"]
    assert nothing_stored()


def test_length_limits_count_characters_not_bytes(api, sendable, body):
    """The guide's limits are in characters: 500 for a metadata value, 255 for a filename."""
    response = send(
        api,
        body(
            metadata={"note": "é" * 499 + "😀"},
            attachments=[_attachment(filename="ü" * 251 + ".pdf")],
        ),
    )
    assert response.status_code == 202, response.content
    message = Message.objects.get(pk=response.json()["id"])
    assert message.metadata == {"note": "é" * 499 + "😀"}
    assert MessageAttachment.objects.get().filename == "ü" * 251 + ".pdf"


def test_data_is_optional(api, sendable, body):
    response = send(api, body(data=...))
    assert response.status_code == 202, response.content
    assert Message.objects.get(pk=response.json()["id"]).data == {}


def test_the_guides_example_request_is_accepted_and_stored_whole(api, sendable, body):
    group = UnsubscribeGroupFactory(workspace=sendable.workspace)
    response = send(
        api,
        {
            "from": FROM,
            "to": "jane@example.com",
            "template": "order-confirmation",
            "data": {"name": "Jane", "order_id": "o_9", "total": "€42.00"},
            "replyTo": "support@acme.com",
            "cc": ["audit@acme.com"],
            "metadata": {"order_id": "o_9", "user_id": "123"},
            "unsubscribeGroup": group.id,
            "locale": "de",
            "timezone": "Europe/Berlin",
        },
        HTTP_IDEMPOTENCY_KEY="order-9-confirmation",
    )
    assert response.status_code == 202, response.content
    view = api.get(f"/v1/messages/{response.json()['id']}").json()
    assert view["status"] == "accepted"
    assert (view["from"], view["to"], view["reply_to"], view["cc"]) == (
        FROM,
        "jane@example.com",
        "support@acme.com",
        ["audit@acme.com"],
    )
    assert view["template_id"] == sendable.template.id and view["template_version"] == 2
    assert view["data"] == {"name": "Jane", "order_id": "o_9", "total": "€42.00"}
    assert view["metadata"] == {"order_id": "o_9", "user_id": "123"}
    assert (view["locale"], view["timezone"], view["unsubscribe_group"]) == ("de", "Europe/Berlin", group.id)


def test_another_workspaces_template_slug_is_template_not_found(api, sendable, body, other_workspace):
    theirs = TemplateFactory(workspace=other_workspace, slug="theirs")
    TemplateVersionFactory(template=theirs)
    assert_envelope(send(api, body(templateId=..., template="theirs")), 422, "template_not_found")
    assert nothing_stored()
