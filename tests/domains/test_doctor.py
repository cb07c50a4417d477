"""The DNS doctor: for every record a verdict a person can act on, each case on the loopback DNS."""

import json

import pytest

from domains import services
from domains.models import Domain
from domains.services import domain_refresh
from tests.domains.factories import (
    IssuedDomainFactory,
    VerifiedDomainFactory,
    another_public_key,
    dkim_value,
    publish_as_told,
    publish_dkim,
)

DKIM = "mlr1._domainkey.mail.acme.com"
RP = "bounces.mail.acme.com"


@pytest.fixture
def domain(workspace):
    return IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")


def doctor(domain, purpose):
    refreshed = domain_refresh(domain=Domain.objects.get(pk=domain.pk))
    (check,) = [c for c in refreshed.record_checks if c["purpose"] == purpose]
    return check


def test_the_api_shows_a_verdict_per_record(api, domain, dns):
    body = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()
    assert [(c["purpose"], c["type"], c["host"]) for c in body["record_checks"]] == [
        (r["purpose"], r["type"], r["host"]) for r in body["dns_records"]
    ]
    assert api.get(f"/v1/domains/{domain.id}").json()["record_checks"] == body["record_checks"]
    for check in body["record_checks"]:
        assert set(check) == {"purpose", "type", "host", "status", "problem", "message", "expected", "found"}


def test_a_name_that_does_not_exist_is_nxdomain(domain, dns):
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("missing", "nxdomain")
    assert check["message"].startswith(f"{DKIM} does not exist in DNS (NXDOMAIN)")
    assert check["expected"] == dkim_value(domain)


def test_a_name_with_other_txt_records_only_has_no_record(domain, dns):
    dns.publish(DKIM, "TXT", "google-site-verification=abc")
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"], check["found"]) == (
        "missing",
        "no_record",
        ["google-site-verification=abc"],
    )


def test_a_wrong_value_shows_expected_and_found(domain, dns):
    publish_dkim(dns, domain, k="ed25519")
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "wrong_value")
    assert "has k=ed25519, but the key is rsa" in check["message"]
    assert check["expected"] == dkim_value(domain)
    assert check["found"] == [dkim_value(domain, k="ed25519")]


def test_a_cname_instead_of_the_txt_record(domain, dns):
    dns.publish(DKIM, "CNAME", "mlr1.keys.elsewhere.test")
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "cname")
    assert check["found"] == ["CNAME mlr1.keys.elsewhere.test"]
    assert f"Delete the CNAME at {DKIM}" in check["message"]


def test_a_cname_to_a_valid_key_verifies(domain, dns):
    # Delegating the key by CNAME is legitimate: the value found through it is what counts.
    dns.publish(DKIM, "CNAME", "mlr1.keys.acme.com")
    dns.publish("mlr1.keys.acme.com", "TXT", dkim_value(domain))
    assert doctor(domain, "DKIM")["status"] == "ok"


@pytest.mark.parametrize(
    ("published_at", "suffix", "relative"),
    [
        (f"{DKIM}.acme.com", "acme.com", "mlr1._domainkey.mail"),
        (f"{DKIM}.mail.acme.com", "mail.acme.com", "mlr1._domainkey"),
    ],
)
def test_the_double_suffix_is_recognised(domain, dns, published_at, suffix, relative):
    dns.publish(published_at, "TXT", dkim_value(domain))
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "wrong_host")
    assert f"published at {published_at}, not at {DKIM}" in check["message"]
    assert f"Enter the host as {relative} (the provider adds .{suffix})" in check["message"]
    assert Domain.objects.get(pk=domain.pk).dkim_status == "pending"


def test_the_double_suffix_of_the_return_path_records(domain, dns):
    dns.publish(f"{RP}.acme.com", "TXT", "v=spf1 ip4:127.0.0.1 ~all")
    dns.publish(f"{RP}.acme.com", "MX", (10, "inbound.operator.test"))
    refreshed = domain_refresh(domain=Domain.objects.get(pk=domain.pk))
    problems = {c["purpose"]: c["problem"] for c in refreshed.record_checks}
    assert problems["SPF"] == problems["RETURN_PATH"] == "wrong_host"
    assert refreshed.return_path_status == "failed"


def test_the_quick_drift_recheck_keeps_the_double_suffix_diagnosis(domain, dns):
    dns.publish(f"{DKIM}.acme.com", "TXT", dkim_value(domain))
    assert doctor(domain, "DKIM")["problem"] == "wrong_host"
    Domain.objects.filter(pk=domain.pk).update(next_check_at="2000-01-01T00:00:00Z")
    assert services.domains_recheck_due() == 1
    (check,) = [c for c in Domain.objects.get(pk=domain.pk).record_checks if c["purpose"] == "DKIM"]
    assert check["problem"] == "wrong_host"


def test_a_different_key(domain, dns):
    publish_dkim(dns, domain, p=another_public_key())
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "key_mismatch")


def test_a_truncated_key(domain, dns):
    publish_dkim(dns, domain, p=domain.dkim_public_key[:200])
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "key_truncated")
    assert f"stops after 200 of its {len(domain.dkim_public_key)} characters" in check["message"]


def test_a_key_split_over_two_records(domain, dns):
    value = dkim_value(domain)
    dns.publish(DKIM, "TXT", value[:250])
    dns.publish(DKIM, "TXT", value[250:])
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "split_wrongly")
    assert "split over 2 separate TXT records" in check["message"]


def test_a_key_split_with_literal_quotes(domain, dns):
    value = dkim_value(domain)
    dns.publish(DKIM, "TXT", f'{value[:200]}" "{value[200:]}')
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "split_wrongly")
    assert "quote characters" in check["message"]


def test_testing_mode_verifies_with_a_warning(domain, dns):
    publish_dkim(dns, domain, t="y")
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("warning", "testing_mode")
    assert Domain.objects.get(pk=domain.pk).verified


def test_a_revoked_key(domain, dns):
    publish_dkim(dns, domain, p="")
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("wrong", "revoked")


def test_two_spf_records_at_one_name(domain, dns):
    dns.publish(RP, "TXT", "v=spf1 ip4:127.0.0.1 ~all")
    dns.publish(RP, "TXT", "v=spf1 include:other.test ~all")
    dns.publish(RP, "MX", (10, "inbound.operator.test"))
    check = doctor(domain, "SPF")
    assert (check["status"], check["problem"]) == ("wrong", "duplicate_spf")
    assert sorted(check["found"]) == ["v=spf1 include:other.test ~all", "v=spf1 ip4:127.0.0.1 ~all"]
    assert "RFC 7208 §4.5" in check["message"]
    assert Domain.objects.get(pk=domain.pk).return_path_status == "failed"


def test_an_spf_record_over_ten_lookups(domain, dns):
    includes = " ".join(f"include:s{n}.acme.com" for n in range(11))
    for n in range(11):
        dns.publish(f"s{n}.acme.com", "TXT", "v=spf1 -all")
    # The egress address matches first, but a receiver walking the record for anyone else hits the limit.
    dns.publish(RP, "TXT", f"v=spf1 ip4:127.0.0.1 {includes} ~all")
    dns.publish(RP, "MX", (10, "inbound.operator.test"))
    check = doctor(domain, "SPF")
    assert (check["status"], check["problem"]) == ("wrong", "too_many_lookups")
    assert "more than 10 DNS lookups" in check["message"]


def test_ten_lookups_are_still_fine(domain, dns):
    includes = " ".join(f"include:s{n}.acme.com" for n in range(10))
    for n in range(10):
        dns.publish(f"s{n}.acme.com", "TXT", "v=spf1 -all")
    dns.publish(RP, "TXT", f"v=spf1 ip4:127.0.0.1 {includes} ~all")
    dns.publish(RP, "MX", (10, "inbound.operator.test"))
    assert doctor(domain, "SPF")["status"] == "ok"


@pytest.fixture
def fast_failures(dns, settings, monkeypatch):
    settings.PUFFERPOST_DNS_TIMEOUT = 0.3
    monkeypatch.setattr(dns, "stall_seconds", 0.6)


def test_a_timeout_is_not_missing(workspace, dns, fast_failures):
    verified = VerifiedDomainFactory(workspace=workspace, domain="mail.acme.com")
    publish_dkim(dns, verified)
    dns.fail(DKIM, "timeout")
    check = doctor(verified, "DKIM")
    assert (check["status"], check["problem"]) == ("unreachable", "dns_timeout")
    assert "timed out" in check["message"] and "not reported missing" in check["message"]
    assert Domain.objects.get(pk=verified.pk).verified


def test_servfail_is_its_own_verdict(domain, dns, fast_failures):
    dns.fail(DKIM, "servfail")
    check = doctor(domain, "DKIM")
    assert (check["status"], check["problem"]) == ("unreachable", "dns_servfail")
    assert "SERVFAIL" in check["message"]
    assert Domain.objects.get(pk=domain.pk).dkim_status == "pending"


def test_timeout_servfail_and_nxdomain_each_give_their_own_reason(domain, dns, fast_failures):
    dns.fail("_dmarc.mail.acme.com", "timeout")
    dns.fail(RP, "servfail")
    refreshed = domain_refresh(domain=Domain.objects.get(pk=domain.pk))
    problems = {c["purpose"]: c["problem"] for c in refreshed.record_checks}
    assert problems == {
        "DKIM": "nxdomain",
        "DMARC": "dns_timeout",
        "SPF": "dns_servfail",
        "RETURN_PATH": "dns_servfail",
    }
    assert refreshed.return_path_status == "pending"


def test_a_fully_published_domain_is_all_ok(api, domain, dns):
    publish_as_told(dns, api.get(f"/v1/domains/{domain.id}").json()["dns_records"])
    body = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()
    assert [(c["status"], c["problem"], c["message"]) for c in body["record_checks"]] == [("ok", "", "")] * 4


def test_no_verdict_names_the_platform(domain, dns):
    dns.publish(DKIM, "CNAME", "x.elsewhere.test")
    dns.publish(RP, "TXT", "v=spf1 -all")
    dns.publish(RP, "TXT", "v=spf1 ~all")
    refreshed = domain_refresh(domain=Domain.objects.get(pk=domain.pk))
    text = json.dumps(refreshed.record_checks).lower() + refreshed.return_path_error.lower()
    assert "puffer" not in text
