"""DKIM key rotation: a new key under a new selector, pending until its record verifies; signing
switches only then; the old record is kept listed for the grace period, then retired."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from domains import services
from domains.models import Domain
from domains.services import domain_refresh, next_selector_after
from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from tests.domains.factories import IssuedDomainFactory, VerifiedDomainFactory, publish_as_told, publish_dkim
from tests.helpers import assert_envelope

OLD = "mlr1._domainkey.mail.acme.com"
NEW = "mlr2._domainkey.mail.acme.com"


@pytest.fixture
def verified(workspace, dns):
    domain = VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")
    publish_dkim(dns, domain)
    return domain


def rotate(api, domain):
    return api.post(f"/v1/domains/{domain.id}/dkim/rotate", {}, format="json")


def dkim_records(body):
    return [r for r in body["dns_records"] if r["purpose"] == "DKIM"]


def test_selectors_count_up_and_skip_the_ones_still_listed():
    assert next_selector_after("mlr1") == "mlr2"
    assert next_selector_after("s") == "s2"
    assert next_selector_after("mlr1", taken={"mlr2"}) == "mlr3"


def test_rotation_needs_domains_manage(make_client, workspace, verified):
    reader = make_client(workspace, scopes=["domains:read"])
    assert rotate(reader, verified).status_code == 403


def test_a_domain_without_a_key_cannot_rotate(api, workspace):
    domain = IssuedDomainFactory(workspace=workspace, dkim_public_key="", dkim_private_key="")
    assert_envelope(rotate(api, domain), 409, "dkim_key_not_issued")


def test_the_new_record_is_listed_pending_beside_the_active_one_and_signing_waits(api, verified, dns):
    endpoint = webhook_endpoint_create(
        workspace=verified.workspace,
        url="https://hooks.example.org/in",
        events=["domain.dkim_rotation_started", "domain.dkim_rotation_completed"],
    )
    response = rotate(api, verified)
    assert response.status_code == 200, response.content
    body = response.json()
    old, new = dkim_records(body)
    assert (old["host"], old["state"]) == (OLD, "active")
    assert (new["host"], new["state"]) == (NEW, "pending")
    row = Domain.objects.get(pk=verified.pk)
    assert new["value"] == f"v=DKIM1; k=rsa; p={row.next_dkim_public_key}"
    assert row.next_dkim_public_key != row.dkim_public_key
    assert_envelope(rotate(api, verified), 409, "dkim_rotation_in_progress")

    [started] = WebhookDelivery.objects.filter(endpoint=endpoint)
    payload = json.loads(started.payload)
    assert payload["type"] == "domain.dkim_rotation_started"
    assert payload["domain"]["selector"] == "mlr2" and payload["domain"]["active_selector"] == "mlr1"
    assert payload["domain"]["record"]["host"] == NEW

    # Not published yet: a refresh keeps signing with the active key, and says what is pending.
    body = api.post(f"/v1/domains/{verified.id}/refresh", {}, format="json").json()
    assert body["verified"] is True
    row = Domain.objects.get(pk=verified.pk)
    assert (row.selector, row.dkim_public_key) == ("mlr1", verified.dkim_public_key)
    checks = {c["host"]: c for c in body["record_checks"] if c["purpose"] == "DKIM"}
    assert (checks[OLD]["status"], checks[NEW]["status"], checks[NEW]["problem"]) == ("ok", "missing", "nxdomain")


def test_signing_switches_once_the_new_record_verifies_and_the_old_one_is_kept_then_retired(
    api, verified, dns, settings
):
    settings.PUFFERPOST_DKIM_ROTATION_GRACE = 3600
    endpoint = webhook_endpoint_create(
        workspace=verified.workspace, url="https://hooks.example.org/in", events=["domain.dkim_rotation_completed"]
    )
    new_key = rotate(api, verified).json()
    publish_as_told(dns, [r for r in dkim_records(new_key) if r.get("state") == "pending"])

    body = api.post(f"/v1/domains/{verified.id}/refresh", {}, format="json").json()

    row = Domain.objects.get(pk=verified.pk)
    assert (row.selector, row.rotating, row.verified) == ("mlr2", False, True)
    assert row.dkim_private_key != verified.dkim_private_key and row.dkim_public_key != verified.dkim_public_key
    body = api.get(f"/v1/domains/{verified.id}").json()
    active, retiring = dkim_records(body)
    assert (active["host"], active["state"]) == (NEW, "active")
    assert (retiring["host"], retiring["state"]) == (OLD, "retiring")
    keep_until = retiring["keep_until"]
    assert keep_until == row.retired_keep_until.isoformat(timespec="seconds")
    [completed] = WebhookDelivery.objects.filter(endpoint=endpoint)
    payload = json.loads(completed.payload)
    assert (payload["domain"]["selector"], payload["domain"]["retired_selector"]) == ("mlr2", "mlr1")

    # After the grace period the old record is retired: no longer listed.
    Domain.objects.filter(pk=verified.pk).update(retired_keep_until=timezone.now() - timedelta(seconds=1))
    body = api.post(f"/v1/domains/{verified.id}/refresh", {}, format="json").json()
    assert [(r["host"], r.get("state")) for r in dkim_records(body)] == [(NEW, None)]
    assert Domain.objects.get(pk=verified.pk).retired_selector == ""


def test_a_drift_of_the_active_selector_still_drives_verified(api, verified, dns):
    new_key = rotate(api, verified).json()
    publish_as_told(dns, [r for r in dkim_records(new_key) if r.get("state") == "pending"])
    domain_refresh(domain=Domain.objects.get(pk=verified.pk))
    # The old record disappearing does not matter any more; the new (active) one does.
    dns.remove(OLD)
    assert domain_refresh(domain=Domain.objects.get(pk=verified.pk)).verified
    dns.remove(NEW)
    lost = domain_refresh(domain=Domain.objects.get(pk=verified.pk))
    assert (lost.verified, lost.dkim_status) == (False, "failed")
    assert lost.dkim_error == f"No TXT record at {NEW}"


def test_while_pending_a_drift_of_the_active_key_loses_verification(api, verified, dns):
    rotate(api, verified)
    dns.remove(OLD)
    assert domain_refresh(domain=Domain.objects.get(pk=verified.pk)).dkim_status == "failed"


def test_the_quick_recheck_completes_a_rotation_too(api, verified, dns):
    new_key = rotate(api, verified).json()
    publish_as_told(dns, [r for r in dkim_records(new_key) if r.get("state") == "pending"])
    assert services.domains_recheck_due() == 1
    assert Domain.objects.get(pk=verified.pk).selector == "mlr2"


def test_the_admin_action_starts_a_rotation(admin_client, verified):
    response = admin_client.post(
        "/admin/domains/domain/", {"action": "rotate_dkim_key", "_selected_action": [verified.pk]}, follow=True
    )
    assert "Started a DKIM rotation for 1 domain(s)." in response.content.decode()
    assert Domain.objects.get(pk=verified.pk).next_selector == "mlr2"
    html = admin_client.get(f"/admin/domains/domain/{verified.pk}/change/").content.decode()
    assert "PRIVATE KEY" not in html
