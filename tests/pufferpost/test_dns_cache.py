"""Delivery's DNS lookups are kept in the process for their TTL (capped); verification always asks."""

import time

from pufferpost import dns as pp_dns


def test_a_delivery_lookup_is_asked_once_within_its_ttl(dns):
    dns.publish("shop.test", "MX", (10, "mx.shop.test"))
    first = pp_dns.mx("shop.test", cached=True)
    second = pp_dns.mx("shop.test", cached=True)
    assert first.records == second.records == [(10, "mx.shop.test")]
    assert dns.asked[("shop.test", "MX")] == 1
    pp_dns.mx("shop.test")  # an uncached lookup (verification's) always asks
    assert dns.asked[("shop.test", "MX")] == 2


def test_the_records_ttl_and_the_setting_bound_how_long(dns, settings):
    dns.publish("brief.test", "A", "127.0.0.9", ttl=1)
    assert pp_dns.addresses("brief.test", cached=True).records == ["127.0.0.9"]
    assert pp_dns.addresses("brief.test", cached=True).records == ["127.0.0.9"]
    assert dns.asked[("brief.test", "A")] == 1
    time.sleep(1.2)
    pp_dns.addresses("brief.test", cached=True)
    assert dns.asked[("brief.test", "A")] == 2
    settings.PUFFERPOST_DNS_CACHE_SECONDS = 0  # off
    pp_dns.addresses("brief.test", cached=True)
    pp_dns.addresses("brief.test", cached=True)
    assert dns.asked[("brief.test", "A")] == 4


def test_absent_records_are_kept_and_failures_are_asked_again(dns):
    assert pp_dns.txt("_mta-sts.plain.test", cached=True).outcome == pp_dns.Outcome.NXDOMAIN
    assert pp_dns.txt("_mta-sts.plain.test", cached=True).outcome == pp_dns.Outcome.NXDOMAIN
    assert dns.asked[("_mta-sts.plain.test", "TXT")] == 1
    dns.fail("broken.test")
    assert pp_dns.mx("broken.test", cached=True).outcome == pp_dns.Outcome.ERROR
    assert pp_dns.mx("broken.test", cached=True).outcome == pp_dns.Outcome.ERROR
    assert dns.asked[("broken.test", "MX")] >= 2  # (the resolver may retry within one lookup)
    before = dns.asked[("broken.test", "MX")]
    pp_dns.mx("broken.test", cached=True)
    assert dns.asked[("broken.test", "MX")] > before


def test_a_cached_answer_is_a_copy_and_a_zone_change_is_seen_at_once(dns):
    dns.publish("moving.test", "MX", (10, "old.moving.test"))
    answer = pp_dns.mx("moving.test", cached=True)
    answer.records.append((99, "mangled.test"))
    assert pp_dns.mx("moving.test", cached=True).records == [(10, "old.moving.test")]
    dns.remove("moving.test", "MX")
    dns.publish("moving.test", "MX", (5, "new.moving.test"))
    assert pp_dns.mx("moving.test", cached=True).records == [(5, "new.moving.test")]
