"""Drift: re-check `--domains` verified domains (10,000 by default) against a loopback DNS server.

The DNS server runs in its own process (in-process it would compete for the GIL and be the
bottleneck) and publishes every domain's DKIM and DMARC TXT records. All domains share one key
pair (generating 10,000 RSA keys would take minutes and changes nothing in the check). The re-check
runs the way production runs it: the task beat schedules (`domains.tasks.recheck_due_domains`),
called here in-process, once per tick until nothing is due; each run has its own time budget
(RUN_BUDGET_SECONDS), so a run that cannot finish leaves the rest to the next tick.
"""

import time

from django.conf import settings
from django.db import connection

from bench import seed
from bench.workloads.delivery import start_dns

DRIFT_ZONE = "drift.test"
MAX_RUNS = 10


def _load_domains(fixture, count: int) -> str:
    from pufferpost.models import Workspace

    workspace = Workspace.objects.create(name="Bench drift")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO domains_domain (
                id, workspace_id, domain, selector, dkim_private_key, dkim_public_key, dkim_status,
                dmarc_status, dkim_error, dmarc_error, verified_at, verification_lost_at,
                last_checked_at, next_check_at, created_at, updated_at, dmarc_policy, record_checks,
                return_path_status, return_path_error, next_dkim_private_key, next_dkim_public_key,
                next_selector, retired_dkim_public_key, retired_selector)
            SELECT 'dom_' || lpad(i::text, 26, '0'), %(ws)s, 'd' || i || '.' || %(zone)s, %(selector)s,
                   %(private)s, %(public)s, 'verified', 'present', '', '', now() - interval '30 days', NULL,
                   now() - interval '1 hour', now() - interval '1 minute', now() - interval '30 days', now(),
                   '{}', '[]', 'pending', '', '', '', '', '', ''
            FROM generate_series(1, %(count)s) AS i
            """,
            {
                "ws": workspace.id,
                "zone": DRIFT_ZONE,
                "selector": seed.SELECTOR,
                "private": fixture.private_key_pem,
                "public": fixture.public_key_b64,
                "count": count,
            },
        )
        cursor.execute("ANALYZE domains_domain")
    return workspace.id


def run(ctx) -> None:
    from domains.tasks import recheck_due_domains
    from messaging.delivery.dkim import public_key_txt

    fixture = ctx.fixture
    count = ctx.args.domains
    workspace_id = _load_domains(fixture, count)
    dkim_txt = public_key_txt(fixture.public_key_b64)
    records = []
    for i in range(1, count + 1):
        records.append([f"{seed.SELECTOR}._domainkey.d{i}.{DRIFT_ZONE}", "TXT", dkim_txt])
        records.append([f"_dmarc.d{i}.{DRIFT_ZONE}", "TXT", "v=DMARC1; p=none"])
    dns, dns_port = start_dns(ctx, records, name="drift-dns")
    old = settings.PUFFERPOST_DNS_NAMESERVERS, settings.PUFFERPOST_DNS_TIMEOUT
    settings.PUFFERPOST_DNS_NAMESERVERS = [("127.0.0.1", dns_port)]
    settings.PUFFERPOST_DNS_TIMEOUT = 2.0
    runs = []
    try:
        started = time.perf_counter()
        for _ in range(MAX_RUNS):
            t0 = time.perf_counter()
            recheck_due_domains()  # the task body, in this process
            runs.append(round(time.perf_counter() - t0, 2))
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM domains_domain WHERE workspace_id = %s AND next_check_at <= now()",
                    [workspace_id],
                )
                if cursor.fetchone()[0] == 0:
                    break
        elapsed = time.perf_counter() - started
    finally:
        settings.PUFFERPOST_DNS_NAMESERVERS, settings.PUFFERPOST_DNS_TIMEOUT = old
        ctx.children.stop(dns)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT dkim_status, dmarc_status, count(*), count(*) FILTER (WHERE last_checked_at > now() - %s * interval '1 second') "
            "FROM domains_domain WHERE workspace_id = %s GROUP BY 1, 2",
            [elapsed + 5, workspace_id],
        )
        states = [{"dkim": a, "dmarc": b, "count": c, "checked_now": d} for a, b, c, d in cursor.fetchall()]
    checked = sum(s["checked_now"] for s in states)
    still_verified = sum(s["count"] for s in states if s["dkim"] == "verified")
    ctx.details["drift"] = {
        "domains": count,
        "seconds": round(elapsed, 2),
        "runs": runs,
        "states": states,
        "batch": settings.PUFFERPOST_DOMAIN_RECHECK_BATCH,
        "concurrency": settings.PUFFERPOST_DOMAIN_RECHECK_CONCURRENCY,
        "dns_port": dns_port,
    }
    ctx.row(
        "drift",
        f"re-check {count:,} domains ({len(runs)} task run{'s' * (len(runs) != 1)})",
        round(elapsed, 1),
        "s",
        goal="≤ 60 s",
        met=elapsed <= 60 and checked == count,
    )
    ctx.row("drift", "domains/s", round(checked / elapsed, 1) if elapsed else None, "domains/s")
    ctx.row(
        "drift",
        "checked / still verified",
        f"{checked:,} / {still_verified:,}",
        goal=f"{count:,} / {count:,}",
        met=checked == count and still_verified == count,
    )
