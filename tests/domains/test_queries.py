"""domains/queries.py's SQL does exactly what its ORM reading does."""

import threading
from datetime import UTC, datetime, timedelta

from django.db import connections, transaction
from django.forms.models import model_to_dict

from domains.models import DkimStatus, DmarcStatus, Domain, ReturnPathStatus
from domains.queries import (
    CHECK_RESULT_COLUMNS,
    CLAIM_COLUMNS,
    domains_claim_due_returning,
    domains_write_check_results,
)
from tests.factories import DomainFactory, WorkspaceFactory

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


def _check_results(n: int) -> dict:
    """What the n-th domain's check found: every column, with nested JSON, NULLs and quotes."""
    return {
        "dkim_status": [DkimStatus.VERIFIED, DkimStatus.FAILED, DkimStatus.PENDING][n % 3],
        "dmarc_status": [DmarcStatus.PRESENT, DmarcStatus.MISSING, DmarcStatus.UNKNOWN][n % 3],
        "dkim_error": "" if n % 3 == 0 else f"no TXT record at mlr1._domainkey ('{n}')",
        "dmarc_error": 'p=none; "quoted"' if n == 2 else "",
        "return_path_status": [ReturnPathStatus.VERIFIED, ReturnPathStatus.FAILED, ReturnPathStatus.PENDING][n % 3],
        "return_path_error": "",
        "return_path_verified_at": NOW - timedelta(days=n) if n % 2 == 0 else None,
        "record_checks": [{"type": "TXT", "host": f"h{n}", "ok": n % 2 == 0, "values": ["v=DKIM1", None]}],
        "dmarc_policy": {} if n == 1 else {"p": "reject", "pct": 100, "rua": ["mailto:d@example.com"]},
        "retired_selector": "mlr0" if n == 0 else "",
        "retired_dkim_public_key": "MIIB" * n,
        "retired_keep_until": NOW + timedelta(days=7) if n == 0 else None,
        "verified_at": NOW if n % 3 == 0 else None,
        "verification_lost_at": NOW - timedelta(hours=1) if n == 1 else None,
        "last_checked_at": NOW,
        "next_check_at": NOW + timedelta(hours=n + 1),
        "updated_at": NOW,
    }


def _state(rows) -> list[dict]:
    return [
        {k: v for k, v in model_to_dict(d).items() if k not in ("id", "workspace", "domain")}
        for d in Domain.objects.filter(pk__in=[r.pk for r in rows]).order_by("domain")
    ]


def test_writing_check_results_equals_bulk_update(db):
    written = []
    for name, write in (
        ("sql", domains_write_check_results),
        ("orm", lambda rows: Domain.objects.bulk_update(rows, list(CHECK_RESULT_COLUMNS))),
    ):
        workspace = WorkspaceFactory()
        rows = [DomainFactory(workspace=workspace, domain=f"d{n}.{name}.example.com") for n in range(3)]
        untouched = DomainFactory(workspace=workspace, domain=f"d9.{name}.example.com")
        for n, row in enumerate(rows):
            for column, value in _check_results(n).items():
                setattr(row, column, value)
        write(rows)
        written.append(_state([*rows, untouched]))
    assert written[0] == written[1]
    assert [row["dkim_status"] for row in written[0]] == ["verified", "failed", "pending", "pending"]
    assert written[0][2]["dmarc_policy"] == {"p": "reject", "pct": 100, "rua": ["mailto:d@example.com"]}
    domains_write_check_results([])  # nothing to write: no statement, no error


def _due_world():
    workspace, other = WorkspaceFactory(), WorkspaceFactory()
    for n, minutes in enumerate([-30, -1, -20, 0, 5, -10, 60]):
        DomainFactory(
            workspace=(workspace, other)[n % 2],
            domain=f"due{n}.example.com",
            selector=f"s{n}",
            dkim_public_key=f"KEY{n}",
            next_selector=f"s{n}b" if n == 2 else "",
            next_check_at=NOW + timedelta(minutes=minutes),
        )
    DomainFactory(workspace=workspace, domain="never.example.com", next_check_at=None)


def _orm_claim(*, now, until, limit):
    with transaction.atomic():
        rows = list(
            Domain.objects.select_for_update(skip_locked=True)
            .filter(next_check_at__lte=now)
            .order_by("next_check_at")
            .values_list(*CLAIM_COLUMNS)[:limit]
        )
        Domain.objects.filter(pk__in=[row[0] for row in rows]).update(next_check_at=until)
    return rows


def _next_checks():
    return dict(Domain.objects.values_list("domain", "next_check_at"))


def test_the_due_claim_takes_what_its_orm_reading_takes(db):
    _due_world()
    until = NOW + timedelta(minutes=10)
    outcomes = []
    for claim in (domains_claim_due_returning, _orm_claim):
        with transaction.atomic():
            runs = [claim(now=NOW, until=until, limit=3) for _ in range(3)]
            outcomes.append(([sorted(run) for run in runs], _next_checks()))
            transaction.set_rollback(True)
    assert outcomes[0] == outcomes[1]
    runs, next_checks = outcomes[0]
    # Oldest due first, three at a time; what one run claimed the next does not see.
    assert [[row[1] for row in run] for run in runs] == [
        ["due0.example.com", "due2.example.com", "due5.example.com"],
        ["due1.example.com", "due3.example.com"],
        [],
    ]
    assert dict(zip(CLAIM_COLUMNS, runs[0][1], strict=True)) | {"id": ""} == {
        "id": "",
        "domain": "due2.example.com",
        "selector": "s2",
        "dkim_public_key": "KEY2",
        "next_selector": "s2b",
        "next_dkim_public_key": "",
    }
    assert next_checks["due4.example.com"] == NOW + timedelta(minutes=5)
    assert next_checks["never.example.com"] is None
    assert {d for d, at in next_checks.items() if at == until} == {f"due{n}.example.com" for n in (0, 1, 2, 3, 5)}


def test_the_due_claim_skips_rows_another_run_holds_as_its_orm_reading_does(transactional_db):
    _due_world()
    held, release = threading.Event(), threading.Event()

    def other_run():
        try:
            with transaction.atomic():
                list(Domain.objects.select_for_update().filter(domain__in=["due0.example.com", "due3.example.com"]))
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(timeout=30)
        until = NOW + timedelta(minutes=10)
        orm = {row[1] for row in _orm_claim(now=NOW, until=until, limit=10)}
        Domain.objects.filter(domain__in=orm).update(next_check_at=NOW - timedelta(minutes=1))
        sql = {row[1] for row in domains_claim_due_returning(now=NOW, until=until, limit=10)}
    finally:
        release.set()
        thread.join(timeout=30)
    assert sql == orm == {f"due{n}.example.com" for n in (1, 2, 5)}
