"""The return-path (custom MAIL FROM) host: its records, their verification, the envelope domain."""

import pytest
import spf

import domains.spf  # noqa: F401 - routes pyspf's lookups through the platform resolver (the loopback DNS)
from domains.models import Domain
from domains.selectors import bounce_warning_of, envelope_domain_of
from domains.services import domain_refresh
from tests.domains.factories import IssuedDomainFactory, VerifiedDomainFactory, publish_as_told, publish_dkim

RP = "bounces.mail.acme.com"


@pytest.fixture
def domain(workspace):
    return IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")


def refresh(domain):
    return domain_refresh(domain=Domain.objects.get(pk=domain.pk))


def records_of(api, domain):
    return api.get(f"/v1/domains/{domain.id}").json()["dns_records"]


def checks_of(domain):
    return {(c["purpose"], c["type"]): c for c in Domain.objects.get(pk=domain.pk).record_checks}


def test_the_return_path_host_sits_under_the_domain_and_names_the_operator_only(api, domain, settings):
    records = {r["purpose"]: r for r in records_of(api, domain)}
    assert records["SPF"] == {"purpose": "SPF", "type": "TXT", "host": RP, "value": "v=spf1 ip4:127.0.0.1 ~all"}
    assert records["RETURN_PATH"] == {
        "purpose": "RETURN_PATH",
        "type": "MX",
        "host": RP,
        "value": "inbound.operator.test",
        "priority": 10,
    }
    # The DKIM and DMARC records keep their host and value.
    assert records["DKIM"]["host"] == "mlr1._domainkey.mail.acme.com"
    assert records["DMARC"] == {
        "purpose": "DMARC",
        "type": "TXT",
        "host": "_dmarc.mail.acme.com",
        "value": "v=DMARC1; p=none;",
    }


def test_spf_lists_every_egress_network_and_the_operator_include(api, domain, settings):
    settings.PUFFERPOST_SPF_ADDRESSES = ["127.0.0.1/32", "127.0.10.0/24", "::1/128"]
    settings.PUFFERPOST_SPF_INCLUDE = "spf.operator.test"
    (spf_record,) = [r for r in records_of(api, domain) if r["purpose"] == "SPF"]
    assert spf_record["value"] == "v=spf1 ip4:127.0.0.1 ip4:127.0.10.0/24 ip6:::1 include:spf.operator.test ~all"


def test_without_an_inbound_host_no_return_path_is_offered_and_the_status_says_so(api, domain, settings):
    settings.PUFFERPOST_INBOUND_MX_HOST = ""
    body = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()
    assert [r["purpose"] for r in body["dns_records"]] == ["DKIM", "DMARC"]
    assert body["return_path_host"] is None
    assert body["return_path_status"] == "pending"
    assert "offers no return path" in body["return_path_error"]
    assert body["bounce_domain"] == "mail.acme.com"
    assert "cannot come back" in body["bounce_warning"] and "offers no return path" in body["bounce_warning"]


def test_following_dns_records_verifies_the_return_path_and_moves_the_envelope(api, domain, dns):
    body = api.get(f"/v1/domains/{domain.id}").json()
    assert (body["return_path_status"], body["bounce_domain"]) == ("pending", "mail.acme.com")
    assert "cannot come back" in body["bounce_warning"]

    publish_as_told(dns, body["dns_records"])
    body = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()

    assert (body["verified"], body["return_path_status"], body["return_path_error"]) == (True, "verified", None)
    assert body["bounce_domain"] == RP
    assert body["bounce_warning"] is None
    assert {(c["purpose"], c["status"]) for c in body["record_checks"]} == {
        ("DKIM", "ok"),
        ("SPF", "ok"),
        ("DMARC", "ok"),
        ("RETURN_PATH", "ok"),
    }
    assert Domain.objects.get(pk=domain.pk).return_path_verified_at is not None


def test_a_real_spf_evaluation_passes_for_the_return_path_from_the_egress_address(api, domain, dns):
    publish_as_told(dns, records_of(api, domain))
    # pyspf through the loopback DNS, as a receiver evaluates MAIL FROM:<bounces+…@bounces.mail.acme.com>.
    assert spf.check2(i="127.0.0.1", s=f"bounces+msg_x@{RP}", h="out.operator.test")[0] == "pass"
    assert spf.check2(i="127.0.0.2", s=f"bounces+msg_x@{RP}", h="out.operator.test")[0] == "softfail"
    # The from-domain's own SPF (the customer's mail provider) is not involved: there is none here.
    assert spf.check2(i="127.0.0.1", s="receipts@mail.acme.com", h="out.operator.test")[0] == "none"


def test_the_old_spf_at_the_from_domain_does_not_verify_the_return_path(domain, dns):
    publish_dkim(dns, domain)
    dns.publish("mail.acme.com", "TXT", "v=spf1 mx ~all")
    refreshed = refresh(domain)
    assert refreshed.verified and refreshed.return_path_status == "pending"
    assert refreshed.return_path_error.startswith(f"{RP} does not exist in DNS")


def test_an_spf_record_that_does_not_authorise_the_egress_address_fails(api, domain, dns):
    dns.publish(RP, "TXT", "v=spf1 ip4:127.9.9.9 -all")
    dns.publish(RP, "MX", (10, "inbound.operator.test"))
    refreshed = refresh(domain)
    assert refreshed.return_path_status == "failed"
    check = checks_of(domain)[("SPF", "TXT")]
    assert (check["status"], check["problem"]) == ("wrong", "wrong_value")
    assert "does not authorise the sending address 127.0.0.1" in check["message"] and "fail" in check["message"]
    assert check["expected"] == "v=spf1 ip4:127.0.0.1 ~all"
    assert check["found"] == ["v=spf1 ip4:127.9.9.9 -all"]


def test_an_mx_pointing_elsewhere_fails_with_expected_and_found(domain, dns):
    dns.publish(RP, "TXT", "v=spf1 ip4:127.0.0.1 ~all")
    dns.publish(RP, "MX", (10, "mx.mailbox-provider.test"))
    refreshed = refresh(domain)
    assert refreshed.return_path_status == "failed"
    check = checks_of(domain)[("RETURN_PATH", "MX")]
    assert (check["status"], check["problem"]) == ("wrong", "wrong_value")
    assert (check["expected"], check["found"]) == ("10 inbound.operator.test", ["10 mx.mailbox-provider.test"])
    assert "bounces go elsewhere" in refreshed.return_path_error


def test_a_verified_return_path_that_drifts_fails_and_the_envelope_falls_back(domain, dns, settings):
    publish_dkim(dns, domain)
    dns.publish(RP, "TXT", "v=spf1 ip4:127.0.0.1 ~all")
    dns.publish(RP, "MX", (10, "inbound.operator.test"))
    verified = refresh(domain)
    assert envelope_domain_of(verified) == RP

    dns.remove(RP, "MX")
    drifted = refresh(domain)
    assert drifted.return_path_status == "failed"
    assert drifted.verified  # advisory: DKIM is still the gate
    assert envelope_domain_of(drifted) == "mail.acme.com"
    assert "failed verification" in bounce_warning_of(drifted)

    settings.PUFFERPOST_RETURN_PATH_DOMAIN = "rp.operator.test"
    assert envelope_domain_of(drifted) == "rp.operator.test"
    assert bounce_warning_of(drifted) == ""


def test_a_return_path_lookup_timeout_keeps_the_status(domain, dns, settings, monkeypatch):
    settings.PUFFERPOST_DNS_TIMEOUT = 0.3
    monkeypatch.setattr(dns, "stall_seconds", 0.6)
    dns.publish(RP, "TXT", "v=spf1 ip4:127.0.0.1 ~all")
    dns.publish(RP, "MX", (10, "inbound.operator.test"))
    assert refresh(domain).return_path_status == "verified"
    dns.fail(RP, "timeout")
    kept = refresh(domain)
    assert kept.return_path_status == "verified"
    assert checks_of(domain)[("SPF", "TXT")]["problem"] == "dns_timeout"


def test_the_return_path_never_gates_sending(workspace, dns):
    domain = VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")
    publish_dkim(dns, domain)
    refreshed = refresh(domain)
    assert refreshed.verified and refreshed.return_path_status == "pending"
