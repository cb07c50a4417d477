"""Alignment and DMARC, observed: parsed policy, DKIM and SPF alignment, the receivers' rules."""

import pytest

from domains.models import Domain
from domains.services import domain_refresh
from tests.domains.factories import IssuedDomainFactory, publish_as_told


@pytest.fixture
def domain(workspace):
    return IssuedDomainFactory(workspace=workspace, domain="mail.acme.com")


def authentication(api, domain):
    return api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()["authentication"]


def publish_all_but_dmarc(api, dns, domain):
    records = api.get(f"/v1/domains/{domain.id}").json()["dns_records"]
    publish_as_told(dns, [r for r in records if r["purpose"] != "DMARC"])


def test_the_dmarc_policy_is_parsed(api, domain, dns):
    dns.publish(
        "_dmarc.mail.acme.com",
        "TXT",
        "v=DMARC1; p=quarantine; sp=reject; pct=50; rua=mailto:d@acme.com,mailto:x@acme.com; adkim=s; aspf=r",
    )
    assert authentication(api, domain)["dmarc_policy"] == {
        "p": "quarantine",
        "sp": "reject",
        "pct": 50,
        "rua": ["mailto:d@acme.com", "mailto:x@acme.com"],
        "adkim": "s",
        "aspf": "r",
    }


def test_defaults_follow_rfc_7489(api, domain, dns):
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=DMARC1; p=none")
    assert authentication(api, domain)["dmarc_policy"] == {
        "p": "none",
        "sp": "none",
        "pct": 100,
        "rua": [],
        "adkim": "r",
        "aspf": "r",
    }


def test_a_subdomain_inherits_the_organizational_domains_sp(api, domain, dns):
    dns.publish("_dmarc.acme.com", "TXT", "v=DMARC1; p=none; sp=quarantine")
    body = api.post(f"/v1/domains/{domain.id}/refresh", {}, format="json").json()
    assert body["dmarc_status"] == "missing"  # its own record is what dmarc_status reports
    policy = body["authentication"]["dmarc_policy"]
    assert (policy["p"], policy["inherited_from"]) == ("quarantine", "_dmarc.acme.com")


def test_a_fully_published_domain_aligns_both_ways_and_meets_the_receivers_rules(api, domain, dns):
    publish_as_told(dns, api.get(f"/v1/domains/{domain.id}").json()["dns_records"])
    auth = authentication(api, domain)
    assert (auth["dkim_aligned"], auth["spf_domain"], auth["spf_passes"], auth["spf_aligned"]) == (
        True,
        "bounces.mail.acme.com",
        True,
        True,
    )
    assert auth["spf_alignment"] == "relaxed" and auth["dmarc_passes"] is True
    assert [(r["receiver"], r["verdict"], r["missing"]) for r in auth["receivers"]] == [
        ("gmail_yahoo_2024", "meets", []),
        ("microsoft_2025", "meets", []),
    ]
    assert "5.7.515" in auth["receivers"][1]["note"]


def test_strict_spf_alignment_is_not_met_by_the_return_path_host_but_dkim_still_carries_dmarc(api, domain, dns):
    publish_all_but_dmarc(api, dns, domain)
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=DMARC1; p=reject; aspf=s; adkim=s")
    auth = authentication(api, domain)
    assert (auth["spf_alignment"], auth["spf_aligned"]) == ("strict", False)
    assert (auth["dkim_alignment"], auth["dkim_aligned"], auth["dmarc_passes"]) == ("strict", True, True)
    assert auth["receivers"][0]["verdict"] == "meets"


def test_without_dmarc_and_return_path_the_receivers_rules_are_missed(api, domain, dns):
    records = api.get(f"/v1/domains/{domain.id}").json()["dns_records"]
    publish_as_told(dns, [r for r in records if r["purpose"] == "DKIM"])
    auth = authentication(api, domain)
    assert auth["dmarc_policy"] == {}
    assert (auth["spf_domain"], auth["spf_passes"]) == ("mail.acme.com", False)
    (gmail, microsoft) = auth["receivers"]
    assert gmail["verdict"] == microsoft["verdict"] == "misses"
    assert gmail["missing"] == [
        "SPF must pass for the envelope sender: publish the return-path SPF and MX records.",
        "A DMARC record is required (p=none is enough): publish the DMARC record.",
    ]
    # DMARC is advisory: the domain is still verified and may send.
    assert Domain.objects.get(pk=domain.pk).verified


def test_dmarc_reject_never_blocks_a_send_decision(domain, dns, api):
    publish_as_told(dns, api.get(f"/v1/domains/{domain.id}").json()["dns_records"])
    dns.remove("_dmarc.mail.acme.com")
    dns.publish("_dmarc.mail.acme.com", "TXT", "v=DMARC1; p=reject; aspf=s")
    refreshed = domain_refresh(domain=Domain.objects.get(pk=domain.pk))
    assert refreshed.verified and refreshed.dmarc_policy["p"] == "reject"
