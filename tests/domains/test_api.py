import re
import threading

import pytest
from django.db import connection

from domains import services as domain_services
from domains.models import Domain
from domains.services import domain_create
from pufferpost.errors import Conflict
from senders.models import Sender
from senders.services import sender_review
from tests.domains.factories import IssuedDomainFactory, publish_dkim
from tests.factories import DomainFactory, TemplateFactory, TemplateVersionFactory
from tests.helpers import assert_envelope, routes_with_an_id

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
FIELDS = {
    "id",
    "domain",
    "verified",
    "dkim_status",
    "dmarc_status",
    "dkim_error",
    "dmarc_error",
    "dns_records",
    "return_path_host",
    "return_path_status",
    "return_path_error",
    "bounce_domain",
    "bounce_warning",
    "record_checks",
    "authentication",
    "created_at",
    "updated_at",
    "last_checked_at",
}


def create(api, domain, **kwargs):
    return api.post("/v1/domains", {"domain": domain}, format="json", **kwargs)


def test_create_answers_201_with_the_guide_shape_and_no_dkim_record_before_the_key(api, workspace):
    response = create(api, "mail.acme.com")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == FIELDS
    assert re.fullmatch(r"dom_[0-9A-HJKMNP-TV-Z]{26}", body["id"])
    assert body["domain"] == "mail.acme.com"
    assert body["verified"] is False
    assert body["dkim_status"] == "pending"
    assert body["dmarc_status"] == "unknown"
    assert body["dkim_error"] is None and body["dmarc_error"] is None
    assert TIMESTAMP.match(body["created_at"])
    assert body["last_checked_at"] is None
    # SPF now sits at the return-path host and authorises the sending source (issue #12): the old
    # `v=spf1 mx ~all` at the from-domain authorised the customer's own mail provider instead.
    assert body["dns_records"] == [
        {"purpose": "SPF", "type": "TXT", "host": "bounces.mail.acme.com", "value": "v=spf1 ip4:127.0.0.1 ~all"},
        {"purpose": "DMARC", "type": "TXT", "host": "_dmarc.mail.acme.com", "value": "v=DMARC1; p=none;"},
        {
            "purpose": "RETURN_PATH",
            "type": "MX",
            "host": "bounces.mail.acme.com",
            "value": "inbound.operator.test",
            "priority": 10,
        },
    ]
    assert body["return_path_host"] == "bounces.mail.acme.com"
    assert body["return_path_status"] == "pending"
    assert body["bounce_domain"] == "mail.acme.com"
    assert "cannot come back" in body["bounce_warning"]
    assert Domain.objects.get(pk=body["id"]).workspace == workspace


def test_the_dkim_record_appears_once_the_key_is_issued(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        domain_id = create(api, "mail.acme.com").json()["id"]
    assert len(callbacks) == 1

    records = api.get(f"/v1/domains/{domain_id}").json()["dns_records"]

    domain = Domain.objects.get(pk=domain_id)
    assert [r["purpose"] for r in records] == ["DKIM", "SPF", "DMARC", "RETURN_PATH"]
    dkim = records[0]
    assert dkim["type"] == "TXT"
    assert dkim["host"] == "mlr1._domainkey.mail.acme.com"
    assert dkim["value"] == f"v=DKIM1; k=rsa; p={domain.dkim_public_key}"
    assert len(dkim["value"]) > 255
    assert "255" in dkim["note"] and "split" in dkim["note"]


def test_no_record_names_the_platform(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        domain_id = create(api, "mail.acme.com").json()["id"]
    records = api.get(f"/v1/domains/{domain_id}").json()["dns_records"]
    for record in records:
        text = f"{record['host']} {record['value']} {record.get('note', '')}".lower()
        assert "puffer" not in text
        assert record["host"].endswith("mail.acme.com")


def test_the_domain_is_trimmed_lowercased_and_loses_its_trailing_dot(api):
    response = create(api, "  Mail.ACME.com.  ")
    assert response.status_code == 201
    assert response.json()["domain"] == "mail.acme.com"


def test_an_internationalised_name_is_stored_in_its_ascii_form(api):
    assert create(api, "Bücher.example").json()["domain"] == "xn--bcher-kva.example"


def test_create_is_idempotent_per_workspace(api, other_api):
    first = create(api, "mail.acme.com")
    again = create(api, "MAIL.acme.com")
    elsewhere = create(other_api, "mail.acme.com")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert elsewhere.status_code == 201
    assert elsewhere.json()["id"] != first.json()["id"]
    assert Domain.objects.filter(domain="mail.acme.com").count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_make_one_row(workspace):
    barrier = threading.Barrier(8)
    results, errors = [], []

    def add():
        try:
            barrier.wait()
            results.append(domain_create(workspace=workspace, domain="race.example.com"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Domain.objects.filter(workspace=workspace, domain="race.example.com").count() == 1
    assert sum(created for _, created in results) == 1
    assert len({domain.pk for domain, _ in results}) == 1


@pytest.mark.parametrize(
    "value",
    [
        "localhost",
        "1.2.3.4",
        "10.0.0.1.",
        "::1",
        "[::1]",
        "2001:db8::1",
        "a" * 64 + ".example.com",
        ".".join(["a" * 63] * 4),  # 255 characters
        "under_score.example.com",
        "-lead.example.com",
        "trail-.example.com",
        "double..dot.com",
        ".leading.example.com",
        "exa mple.com",
        "https://example.com",
        "user@example.com",
        "example.com/path",
        "example..",
        "*.example.com",
        "x" * 5000 + ".com",
    ],
)
def test_invalid_domain_names_are_422_invalid_domain(api, value):
    error = assert_envelope(create(api, value), 422, "validation_failed")
    assert [(v["field"], v["code"]) for v in error["violations"]] == [("domain", "invalid_domain")]
    assert not Domain.objects.exists()


def test_the_longest_valid_name_is_accepted(api):
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    assert len(name) == 253
    assert create(api, name).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "domain", "required"),
        ({"domain": None}, "domain", "required"),
        ({"domain": ""}, "domain", "required"),
        ({"domain": "   "}, "domain", "required"),
        ({"domain": ["example.com"]}, "domain", "invalid_value"),
        ({"domain": "example.com", "selector": "x"}, "selector", "unknown_field"),
    ],
)
def test_missing_or_extra_fields_are_422(api, body, field, code):
    error = assert_envelope(api.post("/v1/domains", body, format="json"), 422, "validation_failed")
    assert (field, code) in [(v["field"], v["code"]) for v in error["violations"]]


@pytest.mark.parametrize(
    ("method", "route"), [("put", "/v1/domains/{id}"), ("patch", "/v1/domains/{id}"), ("post", "/v1/domains/{id}")]
)
def test_unsupported_methods_are_405(api, workspace, method, route):
    domain = DomainFactory(workspace=workspace)
    assert_envelope(getattr(api, method)(route.format(id=domain.id), {}, format="json"), 405, "method_not_allowed")


def test_malformed_json_is_400(api):
    response = api.post("/v1/domains", data="{nope", content_type="application/json")
    assert_envelope(response, 400, "invalid_json")


def test_list_returns_the_workspace_domains_newest_first(api, workspace, other_workspace):
    older = DomainFactory(workspace=workspace, domain="a.example.com")
    newer = IssuedDomainFactory(workspace=workspace, domain="b.example.com")
    DomainFactory(workspace=other_workspace, domain="theirs.example.com")

    response = api.get("/v1/domains")

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["data"]
    assert [d["id"] for d in body["data"]] == [newer.id, older.id]
    assert set(body["data"][0]) == FIELDS
    assert body["data"][0]["dns_records"][0]["purpose"] == "DKIM"


def test_list_queries_do_not_grow_with_the_number_of_domains(api, workspace, django_assert_max_num_queries):
    IssuedDomainFactory.create_batch(30, workspace=workspace)
    with django_assert_max_num_queries(3):
        response = api.get("/v1/domains")
    assert len(response.json()["data"]) == 30


def test_an_empty_list_is_an_empty_data_array(api):
    assert api.get("/v1/domains").json() == {"data": []}


def test_retrieve_returns_one_domain(api, workspace):
    domain = IssuedDomainFactory(workspace=workspace)
    response = api.get(f"/v1/domains/{domain.id}")
    assert response.status_code == 200
    assert response.json()["id"] == domain.id
    assert response.json()["domain"] == domain.domain


def test_delete_answers_204_and_the_domain_is_gone(api, workspace):
    domain = DomainFactory(workspace=workspace)
    response = api.delete(f"/v1/domains/{domain.id}")
    assert response.status_code == 204
    assert response.content == b""
    assert not Domain.objects.filter(pk=domain.pk).exists()
    assert_envelope(api.get(f"/v1/domains/{domain.id}"), 404, "domain_not_found")


def test_refresh_accepts_an_empty_object_or_no_body(api, workspace, dns):
    domain = IssuedDomainFactory(workspace=workspace)
    assert api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").status_code == 200
    assert api.post(f"/v1/domains/{domain.id}/refresh").status_code == 200


def test_refresh_rejects_unknown_fields(api, workspace, dns):
    domain = IssuedDomainFactory(workspace=workspace)
    error = assert_envelope(
        api.post(f"/v1/domains/{domain.id}/refresh", {"force": True}, format="json"), 422, "validation_failed"
    )
    assert error["violations"][0]["field"] == "force"


def test_refresh_returns_the_rechecked_domain(api, workspace, dns):
    domain = IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")
    publish_dkim(dns, domain)
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=DMARC1; p=none;")

    response = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert (body["verified"], body["dkim_status"], body["dmarc_status"]) == (True, "verified", "present")
    assert body["dkim_error"] is None and body["dmarc_error"] is None
    assert TIMESTAMP.match(body["last_checked_at"])


ID_ROUTES = routes_with_an_id("/v1/domains/")


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
def test_another_workspaces_domain_is_404_exactly_like_an_unknown_one(api, other_workspace, dns, method, route):
    theirs = IssuedDomainFactory(workspace=other_workspace)

    foreign = getattr(api, method)(route.format(id=theirs.id), {}, format="json")
    unknown = getattr(api, method)(route.format(id="dom_01J9Z3K7Q2N8M4V6XB0R5T9AHC"), {}, format="json")
    garbage = getattr(api, method)(route.format(id="not-an-id"), {}, format="json")

    for response in (foreign, unknown, garbage):
        error = assert_envelope(response, 404, "domain_not_found")
        assert error["message"] == "No such domain."
        assert set(error) == {"code", "message", "request_id"}
    assert Domain.objects.filter(pk=theirs.pk, last_checked_at__isnull=True).exists()


@pytest.mark.parametrize(
    ("method", "route", "scopes", "needed"),
    [
        ("get", "/v1/domains", ["senders:manage"], "domains:read"),
        ("get", "/v1/domains/{id}", ["senders:manage"], "domains:read"),
        ("post", "/v1/domains", ["domains:read"], "domains:manage"),
        ("delete", "/v1/domains/{id}", ["domains:read"], "domains:manage"),
        ("post", "/v1/domains/{id}/refresh", ["domains:read"], "domains:manage"),
    ],
)
def test_a_key_without_the_scope_is_403_missing_scope(make_client, workspace, method, route, scopes, needed):
    domain = DomainFactory(workspace=workspace)
    client = make_client(workspace, scopes=scopes)
    body = {"domain": "new.example.com"} if route == "/v1/domains" else {}

    error = assert_envelope(
        getattr(client, method)(route.format(id=domain.id), body, format="json"), 403, "missing_scope"
    )

    assert needed in error["message"]
    assert Domain.objects.filter(pk=domain.pk).exists()
    assert not Domain.objects.filter(domain="new.example.com").exists()


def test_manage_scope_can_read(make_client, workspace):
    client = make_client(workspace, scopes=["domains:manage"])
    assert client.get("/v1/domains").status_code == 200


def test_without_a_key_it_is_401(client, db):
    assert_envelope(client.get("/v1/domains"), 401, "unauthorized")


def test_no_response_carries_the_private_key(api, workspace, dns, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        domain_id = create(api, "mail.acme.com").json()["id"]
    private = Domain.objects.get(pk=domain_id).dkim_private_key
    assert "PRIVATE KEY" in private
    responses = [
        create(api, "mail.acme.com"),
        api.get("/v1/domains"),
        api.get(f"/v1/domains/{domain_id}"),
        api.post(f"/v1/domains/{domain_id}/refresh", {}, format="json"),
    ]
    secret_line = private.splitlines()[1]
    for response in responses:
        assert "PRIVATE" not in response.content.decode()
        assert secret_line not in response.content.decode()


def test_the_list_pages_on_request_and_keeps_the_guides_shape_otherwise(api, workspace):
    domains = [IssuedDomainFactory(workspace=workspace, domain=f"d{i}.example.com") for i in range(5)]
    newest_first = [d.id for d in reversed(domains)]
    plain = api.get("/v1/domains")
    assert list(plain.json()) == ["data"] and "Link" not in plain
    first = api.get("/v1/domains?limit=2")
    assert first.status_code == 200
    body = first.json()
    assert [d["id"] for d in body["data"]] == newest_first[:2] and body["next_cursor"]
    assert first["Link"].endswith('>; rel="next"') and "cursor=" in first["Link"]
    seen = [d["id"] for d in body["data"]]
    cursor = body["next_cursor"]
    while cursor:
        page = api.get("/v1/domains", {"limit": 2, "cursor": cursor}).json()
        seen += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
    assert seen == newest_first
    assert api.get("/v1/domains?limit=5").json()["next_cursor"] is None


def test_more_domains_than_one_answer_holds_get_a_next_cursor_and_a_link(api, workspace, settings):
    IssuedDomainFactory.create_batch(101, workspace=workspace)
    response = api.get("/v1/domains")
    body = response.json()
    assert len(body["data"]) == 100 and body["next_cursor"]
    link = response["Link"].removeprefix("<").split(">;")[0]
    rest = api.get(link.removeprefix("http://testserver"))
    assert len(rest.json()["data"]) == 1 and rest.json()["next_cursor"] is None


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=101", "limit"), ("cursor=nope", "cursor")])
def test_a_bad_limit_or_cursor_is_422(api, query, field):
    error = assert_envelope(api.get(f"/v1/domains?{query}"), 422, "validation_failed")
    assert [v["field"] for v in error["violations"]] == [field]


def test_a_cursor_of_another_workspace_is_refused(api, other_api, workspace, other_workspace):
    IssuedDomainFactory.create_batch(2, workspace=other_workspace)
    cursor = other_api.get("/v1/domains?limit=1").json()["next_cursor"]
    assert_envelope(api.get(f"/v1/domains?cursor={cursor}"), 422, "validation_failed")


def test_domains_beyond_the_workspace_cap_are_a_409_and_the_existing_one_still_answers(api, workspace):
    workspace.max_domains = 2
    workspace.save()
    assert create(api, "a.example.com").status_code == 201
    assert create(api, "b.example.com").status_code == 201
    error = assert_envelope(create(api, "c.example.com"), 409, "domain_limit_reached")
    assert "limit of 2 domains" in error["message"]
    assert create(api, "a.example.com").status_code == 200
    assert Domain.objects.filter(workspace=workspace).count() == 2
    api.delete(f"/v1/domains/{Domain.objects.get(domain='a.example.com').id}")
    assert create(api, "c.example.com").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_pass_the_cap_together(workspace, monkeypatch):
    # Key issue is not what this tests; run eagerly in several threads at once, Celery's global
    # "inside a task" flag would be left set for the rest of the process.
    issued = []
    monkeypatch.setattr(domain_services.issue_dkim_key_task, "delay", issued.append)
    workspace.max_domains = 3
    workspace.save()
    barrier = threading.Barrier(8)
    refused = []

    def add(index):
        try:
            barrier.wait()
            domain_create(workspace=workspace, domain=f"race{index}.example.com")
        except Conflict as exc:
            refused.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Domain.objects.filter(workspace=workspace).count() == 3
    assert refused == ["domain_limit_reached"] * 5
    assert len(issued) == 3


class StallingNameServer:
    """A UDP name server on loopback that records every question and never answers."""

    def __init__(self):
        import socket

        import dns.message

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.questions: list[str] = []
        self.running = True

        def serve():
            while self.running:
                try:
                    data, _ = self.sock.recvfrom(4096)
                except OSError:
                    continue
                self.questions.append(dns.message.from_wire(data).question[0].name.to_text(omit_final_dot=True))

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def stalling_dns(settings):
    server = StallingNameServer()
    settings.PUFFERPOST_DNS_NAMESERVERS = [("127.0.0.1", server.port)]
    yield server
    server.stop()


def test_refresh_lookups_end_together_at_the_deadline_against_a_stalling_name_server(
    api, workspace, stalling_dns, settings
):
    settings.PUFFERPOST_DNS_TIMEOUT = 5.0  # per lookup: two lookups would hold the request 10 s
    settings.PUFFERPOST_DOMAIN_REFRESH_DEADLINE = 0.5
    domain = IssuedDomainFactory(workspace=workspace, domain="slow.example.com")

    response = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["dkim_status"] == "pending" and "timed out" in body["dkim_error"]
    assert "timed out" in body["dmarc_error"]
    # The DKIM lookup used up the deadline, so the DMARC question was never even sent.
    assert stalling_dns.questions and all("_domainkey" in q for q in stalling_dns.questions)


def test_a_verified_domain_does_not_create_senders(api, workspace, dns):
    """Gotcha of the guide: "a verified domain does not auto-create senders"."""
    domain = IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")
    publish_dkim(dns, domain)
    assert api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()["verified"] is True
    assert not Sender.objects.filter(workspace=workspace).exists()
    assert api.get("/v1/senders").json()["data"] == []


def test_creating_again_returns_the_current_dns_records_with_the_dkim_one(api, django_capture_on_commit_callbacks):
    """Idempotent create "returns the existing record and its current DNS tokens"."""
    with django_capture_on_commit_callbacks(execute=True):
        first = create(api, "mail.acme.com")
    assert "DKIM" not in [r["purpose"] for r in first.json()["dns_records"]]

    again = create(api, "mail.acme.com")

    assert again.status_code == 200
    records = again.json()["dns_records"]
    assert [r["purpose"] for r in records][0] == "DKIM"
    assert records[0]["value"] == f"v=DKIM1; k=rsa; p={Domain.objects.get().dkim_public_key}"
    assert again.json()["id"] == first.json()["id"]


def test_the_guides_four_step_checklist_opens_the_send_gate_only_at_the_end(
    api, workspace, dns, django_capture_on_commit_callbacks
):
    """Domain created and refreshed to verified, sender registered and approved: only then a 202."""
    template = TemplateFactory(workspace=workspace)
    TemplateVersionFactory(template=template)
    request = {"from": "receipts@mail.acme.com", "to": "jane@example.com", "templateId": template.id}

    def gate():
        return api.post("/v1/messages", request, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        domain_id = create(api, "mail.acme.com").json()["id"]
    sender_id = api.post("/v1/senders", {"fromAddress": "Receipts@mail.acme.com"}, format="json").json()["id"]
    error = assert_envelope(gate(), 422, "sender_not_available")
    assert error["message"] == 'No active sender for "receipts@mail.acme.com".'

    sender_review(sender=Sender.objects.get(pk=sender_id), verb="approve", reason="reviewed")
    assert api.get(f"/v1/senders/{sender_id}").json()["state"] == "active"
    assert_envelope(gate(), 422, "sender_not_available")  # the domain is not verified yet

    publish_dkim(dns, Domain.objects.get(pk=domain_id))
    assert api.post(f"/v1/domains/{domain_id}/refresh", {}, format="json").json()["verified"] is True
    response = gate()
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "accepted"
