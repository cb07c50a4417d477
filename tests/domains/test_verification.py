import json
import logging

import pytest
from django.conf import settings

from domains.checks import InvalidTagList, parse_tag_list
from domains.models import Domain
from domains.services import domain_refresh
from messaging.webhooks.models import WebhookDelivery
from messaging.webhooks.services import webhook_endpoint_create
from tests.domains.factories import (
    IssuedDomainFactory,
    VerifiedDomainFactory,
    another_public_key,
    dkim_value,
    publish_dkim,
)
from tests.factories import DomainFactory

HOST = "mlr1._domainkey.mail.acme.com"


@pytest.fixture
def domain(workspace):
    return IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")


@pytest.fixture
def verified(workspace):
    return VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")


def refresh(domain):
    return domain_refresh(domain=Domain.objects.get(pk=domain.pk))


def test_refresh_flips_verified_when_the_dkim_record_appears(api, domain, dns):
    first = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()
    assert (first["verified"], first["dkim_status"]) == (False, "pending")
    assert first["dkim_error"] == f"No TXT record at {HOST}"

    publish_dkim(dns, domain)
    second = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()

    assert (second["verified"], second["dkim_status"], second["dkim_error"]) == (True, "verified", None)
    assert Domain.objects.get(pk=domain.pk).verified_at is not None


def test_a_long_key_split_into_several_strings_verifies(domain, dns):
    # The zone splits values over 255 bytes into strings, as DNS providers do.
    assert len(dkim_value(domain)) > 255
    publish_dkim(dns, domain)
    assert refresh(domain).verified


def test_tags_are_parsed_tolerantly(domain, dns):
    key = domain.dkim_public_key
    spaced = " ".join(key[i : i + 64] for i in range(0, len(key), 64))
    dns.publish(HOST, "TXT", f" v = DKIM1 ;\tk=rsa;  h=sha1:sha256; t=y;  p = {spaced} ; ")
    assert refresh(domain).verified


def test_k_h_and_v_are_optional(domain, dns):
    dns.publish(HOST, "TXT", f"p={domain.dkim_public_key}")
    assert refresh(domain).verified


def test_unrelated_txt_records_beside_the_key_are_ignored(domain, dns):
    dns.publish(HOST, "TXT", "google-site-verification=abc")
    publish_dkim(dns, domain)
    assert refresh(domain).verified


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"p": "ANOTHER"}, "has a different public key"),
        ({"k": "ed25519"}, "has k=ed25519, but the key is rsa"),
        ({"h": "sha1"}, "has h=sha1, which must include sha256"),
        ({"v": "DKIM2"}, "has v=DKIM2, which must be DKIM1"),
        ({"p": ""}, "has an empty p= (a revoked key)"),
        ({"p": "not*base64!"}, "has a p= value that is not valid base64"),
    ],
)
def test_a_wrong_record_fails_with_a_reason(domain, dns, overrides, reason):
    if overrides.get("p") == "ANOTHER":
        overrides = {"p": another_public_key()}
    publish_dkim(dns, domain, **overrides)

    refreshed = refresh(domain)

    assert not refreshed.verified
    assert refreshed.dkim_status == "failed"
    assert refreshed.dkim_error == f"TXT record at {HOST} {reason}"


def test_a_record_with_a_duplicated_tag_is_invalid(domain, dns):
    dns.publish(HOST, "TXT", f"v=DKIM1; p={domain.dkim_public_key}; p={domain.dkim_public_key}")
    refreshed = refresh(domain)
    assert refreshed.dkim_status == "failed"
    assert "p= appears twice" in refreshed.dkim_error


def test_the_api_reports_the_different_key_reason(api, domain, dns):
    publish_dkim(dns, domain, p=another_public_key())
    body = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()
    assert body["dkim_status"] == "failed"
    assert body["verified"] is False
    assert body["dkim_error"] == "TXT record at mlr1._domainkey.mail.acme.com has a different public key"


def test_removing_the_record_later_drops_verification_and_records_the_loss(verified, dns, caplog):
    publish_dkim(dns, verified)
    assert refresh(verified).verified
    dns.remove(HOST)

    with caplog.at_level(logging.WARNING, logger="domains.services"):
        lost = refresh(verified)

    assert not lost.verified
    assert lost.dkim_status == "failed"
    assert lost.dkim_error == f"No TXT record at {HOST}"
    assert lost.verification_lost_at is not None
    assert [r.getMessage() for r in caplog.records if "lost DKIM verification" in r.getMessage()] == [
        f"Domain {verified.id} (mail.acme.com, workspace {verified.workspace_id}) lost DKIM verification: "
        f"No TXT record at {HOST}"
    ]

    # A second check of the still-missing record is not a second loss.
    caplog.clear()
    again = refresh(verified)
    assert again.dkim_status == "failed"
    assert again.verification_lost_at == lost.verification_lost_at
    assert not [r for r in caplog.records if "lost DKIM verification" in r.getMessage()]


def test_a_record_replaced_by_a_wrong_one_also_loses_verification(verified, dns):
    publish_dkim(dns, verified, k="ed25519")
    lost = refresh(verified)
    assert lost.dkim_status == "failed"
    assert lost.verification_lost_at is not None


def test_a_missing_record_before_the_first_success_stays_pending(domain, dns):
    refreshed = refresh(domain)
    assert refreshed.dkim_status == "pending"
    assert refreshed.verification_lost_at is None


def test_a_failed_domain_recovers_when_the_record_is_fixed(domain, dns):
    publish_dkim(dns, domain, h="sha1")
    assert refresh(domain).dkim_status == "failed"
    dns.remove(HOST)
    publish_dkim(dns, domain)
    recovered = refresh(domain)
    assert (recovered.dkim_status, recovered.dkim_error) == ("verified", "")


@pytest.mark.parametrize("mode", ["servfail", "timeout"])
def test_a_resolver_failure_does_not_flip_a_verified_domain(verified, dns, settings, monkeypatch, mode):
    settings.PUFFERPOST_DNS_TIMEOUT = 0.3
    monkeypatch.setattr(dns, "stall_seconds", 0.6)
    publish_dkim(dns, verified)
    dns.fail(HOST, mode)

    kept = refresh(verified)

    assert kept.verified
    assert kept.dkim_status == "verified"
    assert kept.verification_lost_at is None
    assert kept.dkim_error.startswith(f"Could not look up the TXT record at {HOST}")
    assert kept.dkim_error.endswith("will try again.")
    # ... and it is looked at again soon, not after the long verified interval.
    assert (kept.next_check_at - kept.last_checked_at).total_seconds() == settings.PUFFERPOST_DOMAIN_RECHECK_PENDING

    dns.heal(HOST)
    healed = refresh(verified)
    assert (healed.dkim_status, healed.dkim_error) == ("verified", "")


def test_a_resolver_failure_leaves_a_pending_domain_pending(domain, dns):
    dns.fail(HOST)
    refreshed = refresh(domain)
    assert refreshed.dkim_status == "pending"
    assert "Could not look up" in refreshed.dkim_error


def test_a_resolver_failure_leaves_a_failed_domain_failed(domain, dns):
    publish_dkim(dns, domain, k="ed25519")
    assert refresh(domain).dkim_status == "failed"
    dns.fail(HOST)
    assert refresh(domain).dkim_status == "failed"


def test_dmarc_is_present_when_a_record_starts_with_v_dmarc1(domain, dns):
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=DMARC1; p=reject; rua=mailto:d@acme.com")
    refreshed = refresh(domain)
    assert (refreshed.dmarc_status, refreshed.dmarc_error) == ("present", "")
    # DMARC is advisory: it does not verify the domain.
    assert not refreshed.verified


def test_dmarc_is_missing_without_a_record(domain, dns):
    refreshed = refresh(domain)
    assert refreshed.dmarc_status == "missing"
    assert refreshed.dmarc_error == "No TXT record at _dmarc.mail.acme.com"


def test_dmarc_is_missing_when_no_record_is_a_dmarc_one(domain, dns):
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=spf1 -all")
    refreshed = refresh(domain)
    assert refreshed.dmarc_status == "missing"
    assert refreshed.dmarc_error == "No TXT record at _dmarc.mail.acme.com starts with v=DMARC1"


def test_a_dmarc_lookup_failure_keeps_the_dmarc_status(domain, dns):
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=DMARC1; p=none;")
    assert refresh(domain).dmarc_status == "present"
    dns.fail("_dmarc.mail.acme.com")
    refreshed = refresh(domain)
    assert refreshed.dmarc_status == "present"
    assert "Could not look up" in refreshed.dmarc_error


def test_dkim_is_the_gate_not_dmarc_or_spf(verified, dns):
    publish_dkim(dns, verified)
    dns.publish("mail.acme.com", "TXT", "v=spf1 mx ~all")
    refreshed = refresh(verified)
    assert refreshed.verified and refreshed.dmarc_status == "missing"


def test_a_green_spf_record_alone_does_not_verify(domain, dns):
    dns.publish("mail.acme.com", "TXT", "v=spf1 mx ~all")
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=DMARC1; p=none;")
    refreshed = refresh(domain)
    assert (refreshed.verified, refreshed.dkim_status, refreshed.dmarc_status) == (False, "pending", "present")


def test_a_verified_domain_does_not_create_senders(api, domain, dns):
    publish_dkim(dns, domain)
    assert api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()["verified"] is True
    assert api.get("/v1/senders").json() == {"data": []}


def test_without_a_key_dkim_is_not_looked_up_and_the_key_is_requested(
    workspace, dns, django_capture_on_commit_callbacks
):
    domain = DomainFactory(workspace=workspace, domain="mail.acme.com", selector=settings.PUFFERPOST_DKIM_SELECTOR)
    dns.publish(HOST, "TXT", "v=DKIM1; k=rsa; p=MIIB")

    with django_capture_on_commit_callbacks(execute=True):
        refreshed = refresh(domain)

    assert refreshed.dkim_status == "pending"
    assert "not been issued yet" in refreshed.dkim_error
    assert Domain.objects.get(pk=domain.pk).dkim_public_key


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("v=DKIM1; k=rsa; p=abc", {"v": "DKIM1", "k": "rsa", "p": "abc"}),
        ("v=DKIM1;p=abc;", {"v": "DKIM1", "p": "abc"}),
        ("  v =  DKIM1 ;\r\n\tp= a b c ", {"v": "DKIM1", "p": "a b c"}),
        ("p=", {"p": ""}),
    ],
)
def test_parse_tag_list(text, tags):
    assert parse_tag_list(text) == tags


@pytest.mark.parametrize("text", ["v=DKIM1; p=a; p=b", "v=DKIM1; nonsense", "=x", "1a=b", "v=DKIM1;; p=a"])
def test_parse_tag_list_rejects_malformed_lists(text):
    with pytest.raises(InvalidTagList):
        parse_tag_list(text)


def test_losing_verification_emits_one_domain_verification_lost_webhook_event(verified, dns):
    endpoint = webhook_endpoint_create(
        workspace=verified.workspace, url="https://hooks.example.org/in", events=["domain.verification_lost"]
    )
    publish_dkim(dns, verified)
    refresh(verified)
    dns.remove(HOST)
    refresh(verified)
    refresh(verified)  # still missing: not a second loss

    [delivery] = WebhookDelivery.objects.filter(endpoint=endpoint)
    payload = json.loads(delivery.payload)
    assert payload["type"] == "domain.verification_lost"
    assert payload["domain"] == {
        "id": verified.id,
        "domain": "mail.acme.com",
        "verified": False,
        "dkim_status": "failed",
        "dkim_error": f"No TXT record at {HOST}",
    }
