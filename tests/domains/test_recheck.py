import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from domains import services, tasks
from domains.models import Domain
from tests.domains.factories import IssuedDomainFactory, VerifiedDomainFactory, publish_dkim
from tests.factories import DomainFactory


def due(**kwargs):
    return {"next_check_at": timezone.now() - timedelta(seconds=1), **kwargs}


def test_the_recheck_task_checks_every_due_domain_in_batches(workspace, dns, settings, django_assert_max_num_queries):
    settings.PUFFERPOST_DOMAIN_RECHECK_BATCH = 40
    domains = IssuedDomainFactory.create_batch(150, workspace=workspace, **due())
    published = domains[::3]
    for domain in published:
        publish_dkim(dns, domain)
    not_due = IssuedDomainFactory(workspace=workspace, next_check_at=timezone.now() + timedelta(hours=1))

    # Four batches: claim, lock, bulk update (plus savepoints) each, whatever the batch holds.
    with django_assert_max_num_queries(4 * 6 + 1):
        tasks.recheck_due_domains.delay()

    rows = {d.pk: d for d in Domain.objects.all()}
    assert all(rows[d.pk].last_checked_at is not None for d in domains)
    assert {pk for pk, d in rows.items() if d.verified} == {d.pk for d in published}
    assert rows[not_due.pk].last_checked_at is None
    now = timezone.now()
    for domain in published:
        wait = rows[domain.pk].next_check_at - now
        assert timedelta(seconds=settings.PUFFERPOST_DOMAIN_RECHECK_VERIFIED - 60) < wait
    for domain in domains[1::3]:
        wait = rows[domain.pk].next_check_at - now
        assert wait <= timedelta(seconds=settings.PUFFERPOST_DOMAIN_RECHECK_PENDING)


def test_a_second_run_finds_nothing_due(workspace, dns):
    IssuedDomainFactory.create_batch(5, workspace=workspace, **due())
    assert services.domains_recheck_due() == 5
    assert services.domains_recheck_due() == 0


def test_the_recheck_drops_a_domain_whose_record_drifted_away(workspace, dns):
    kept = VerifiedDomainFactory(workspace=workspace, **due())
    drifted = VerifiedDomainFactory(workspace=workspace, **due())
    publish_dkim(dns, kept)

    services.domains_recheck_due()

    assert Domain.objects.get(pk=kept.pk).verified
    lost = Domain.objects.get(pk=drifted.pk)
    assert (lost.dkim_status, lost.verification_lost_at is not None) == ("failed", True)


def test_the_recheck_keeps_verified_domains_through_a_resolver_outage(workspace, dns):
    domain = VerifiedDomainFactory(workspace=workspace, **due())
    dns.fail(domain.dkim_host)
    services.domains_recheck_due()
    assert Domain.objects.get(pk=domain.pk).verified


def test_claims_do_not_overlap(workspace):
    IssuedDomainFactory.create_batch(10, workspace=workspace, **due())

    first = services._claim_due(limit=6)
    second = services._claim_due(limit=6)

    assert len(first) == 6 and len(second) == 4
    assert not {t.id for t in first} & {t.id for t in second}
    assert services._claim_due(limit=6) == []
    assert Domain.objects.filter(next_check_at__lt=timezone.now() + timedelta(minutes=9)).count() == 0


def test_domains_without_a_key_are_not_dkim_checked_but_get_their_key_requested(
    workspace, dns, django_capture_on_commit_callbacks
):
    keyless = DomainFactory(workspace=workspace, selector="mlr1", **due())
    with django_capture_on_commit_callbacks(execute=True):
        services.domains_recheck_due()
    keyless.refresh_from_db()
    assert keyless.dkim_status == "pending"
    assert "not been issued" in keyless.dkim_error
    assert keyless.dmarc_status == "missing"
    assert keyless.dkim_public_key


def test_a_new_domain_is_checked_soon_after_its_key_is_issued(api, dns, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        domain_id = api.post("/v1/domains", {"domain": "mail.acme.com"}, format="json").json()["id"]
    domain = Domain.objects.get(pk=domain_id)
    publish_dkim(dns, domain)
    assert domain.next_check_at <= timezone.now()

    services.domains_recheck_due()

    assert Domain.objects.get(pk=domain_id).verified


def test_one_recheck_run_covers_a_thousand_due_domains(workspace, dns):
    # How fast it goes is `make bench`'s drift workload (10,000 domains); here: all of them, once, right.
    domains = IssuedDomainFactory.create_batch(1000, workspace=workspace, **due())
    for domain in domains[:500]:
        publish_dkim(dns, domain)

    assert services.domains_recheck_due() == 1000

    assert Domain.objects.filter(dkim_status="verified").count() == 500


@pytest.mark.parametrize("name", ["PUFFERPOST_DOMAIN_RECHECK_TICK", "PUFFERPOST_DOMAIN_RECHECK_BATCH"])
def test_a_non_positive_recheck_setting_stops_the_start(name):
    env = {**os.environ, name: "0", "DJANGO_SETTINGS_MODULE": "pufferpost.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"{name} must be positive" in result.stderr


def test_the_beat_tick_comes_from_the_setting():
    entry = django_settings.CELERY_BEAT_SCHEDULE["domains-recheck-due"]
    assert entry["task"] == "domains.tasks.recheck_due_domains"
    assert entry["schedule"] == django_settings.PUFFERPOST_DOMAIN_RECHECK_TICK
