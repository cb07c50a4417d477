"""Every write to a domain: create, delete, DKIM key issuance, verification and drift re-checks."""

import base64
import dataclasses
import functools
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from domains import checks, records
from domains.checks import DkimFinding, DmarcFinding, ReturnPathFinding
from domains.models import DkimStatus, DmarcStatus, Domain, ReturnPathStatus
from domains.queries import domains_claim_due_returning, domains_write_check_results
from domains.tasks import issue_dkim_key as issue_dkim_key_task
from pufferpost import dns, events, metrics
from pufferpost.errors import Conflict
from pufferpost.models import Workspace
from pufferpost.services import workspace_capacity_check

logger = logging.getLogger(__name__)

# A claimed domain is not claimed again for this long, so a worker that dies mid-batch only
# delays its domains; it must outlast one batch even against a resolver that always times out.
CLAIM_LEASE = timedelta(minutes=10)
# One task run stops claiming new batches after this long and leaves the rest to the next tick.
RUN_BUDGET_SECONDS = 45.0


def domain_create(*, workspace: Workspace, domain: str) -> tuple[Domain, bool]:
    """Add `domain` (already normalised) to the workspace, or return the one already there.

    Idempotent and safe under concurrency: the unique constraint decides, and the loser of a
    race reads the winner's row. The signing key is issued by a task once the row is committed.
    """
    existing = Domain.objects.filter(workspace=workspace, domain=domain).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            workspace_capacity_check(
                workspace=workspace,
                rows=Domain.objects.filter(workspace=workspace),
                limit_field="max_domains",
                code="domain_limit_reached",
                noun="domains",
            )
            created = Domain.objects.create(
                workspace=workspace,
                domain=domain,
                selector=settings.PUFFERPOST_DKIM_SELECTOR,
                next_check_at=timezone.now() + timedelta(seconds=settings.PUFFERPOST_DOMAIN_RECHECK_PENDING),
            )
    except IntegrityError:
        return Domain.objects.get(workspace=workspace, domain=domain), False
    _enqueue_key_issue(created.pk)
    return created, True


def domain_delete(*, domain: Domain) -> None:
    domain.delete()


def _enqueue_key_issue(domain_id: str) -> None:

    transaction.on_commit(lambda: issue_dkim_key_task.delay(domain_id))


def new_dkim_key_pair() -> tuple[str, str]:
    """A fresh RSA-2048 key: (PKCS#8 PEM private key, base64 DER SubjectPublicKeyInfo)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public_der).decode("ascii")


def domain_issue_dkim_key(*, domain_id: str) -> bool:
    """Issue the domain's signing key once; True when this call issued it.

    An issued key is never replaced (customers have published it), so the write only lands on
    a row that still has no key, and a repeated or concurrent task is a no-op.
    """
    if not Domain.objects.filter(pk=domain_id, dkim_public_key="").exists():
        return False
    private_pem, public_b64 = new_dkim_key_pair()
    now = timezone.now()
    issued = Domain.objects.filter(pk=domain_id, dkim_public_key="").update(
        dkim_private_key=private_pem,
        dkim_public_key=public_b64,
        selector=settings.PUFFERPOST_DKIM_SELECTOR,
        next_check_at=now,
        updated_at=now,
    )
    if issued:
        logger.info("Issued the DKIM signing key of domain %s", domain_id)
    return bool(issued)


def domain_verification_lost(*, domain: Domain) -> None:
    """A verified domain lost its DKIM record: the single place that reacts to it.

    Runs inside the transaction that writes the state change, so whatever it records (the
    `domain.verification_lost` webhook event, when webhooks exist) commits with it or not at all.
    """
    logger.warning(
        "Domain %s (%s, workspace %s) lost DKIM verification: %s",
        domain.pk,
        domain.domain,
        domain.workspace_id,
        domain.dkim_error,
    )
    events.publish(
        events.DOMAIN_VERIFICATION_LOST,
        workspace_id=domain.workspace_id,
        occurred_at=domain.verification_lost_at or timezone.now(),
        subject={
            "id": domain.pk,
            "domain": domain.domain,
            "verified": domain.verified,
            "dkim_status": domain.dkim_status,
            "dkim_error": domain.dkim_error or None,
        },
    )


def _target(domain: Domain) -> checks.Target:
    return checks.Target(
        id=domain.pk,
        domain=domain.domain,
        selector=domain.selector,
        public_key=domain.dkim_public_key,
        next_selector=domain.next_selector,
        next_public_key=domain.next_dkim_public_key,
    )


def _apply(domain: Domain, findings: checks.Findings, now) -> tuple[bool, bool]:
    """Move one domain's state according to what DNS said: (just lost verification, rotation completes).

    A lookup the resolver could not answer changes no status: it only records the reason. While a
    rotation is pending the active key's record still drives `verified`; once the new key's record
    verifies, that record is the active one and `_rotation_complete` swaps the keys.
    """
    was = _state(domain)
    lost = False
    completes = bool(
        findings.next_dkim == DkimFinding.VALID
        and domain.next_dkim_public_key
        and domain.next_dkim_public_key == findings.next_public_key
    )
    if completes:
        findings = dataclasses.replace(
            findings,
            dkim=DkimFinding.VALID,
            dkim_error="",
            verdicts=tuple(v for v in findings.verdicts if not (v.purpose == "DKIM" and v.host == domain.dkim_host)),
        )
    if domain.retired_keep_until is not None and domain.retired_keep_until <= now:
        domain.retired_selector, domain.retired_dkim_public_key, domain.retired_keep_until = "", "", None
    if findings.dkim == DkimFinding.VALID:
        if domain.dkim_status != DkimStatus.VERIFIED:
            domain.verified_at = now
        domain.dkim_status = DkimStatus.VERIFIED
    elif findings.dkim in (DkimFinding.WRONG, DkimFinding.MISSING):
        lost = domain.dkim_status == DkimStatus.VERIFIED
        ever_verified = domain.verified_at is not None
        if findings.dkim == DkimFinding.WRONG or ever_verified:
            domain.dkim_status = DkimStatus.FAILED
        else:
            domain.dkim_status = DkimStatus.PENDING
        if lost:
            domain.verification_lost_at = now
    domain.dkim_error = findings.dkim_error[:500]

    if findings.dmarc == DmarcFinding.PRESENT:
        domain.dmarc_status = DmarcStatus.PRESENT
    elif findings.dmarc == DmarcFinding.MISSING:
        domain.dmarc_status = DmarcStatus.MISSING
    domain.dmarc_error = findings.dmarc_error[:500]
    if findings.dmarc != DmarcFinding.UNKNOWN:
        domain.dmarc_policy = findings.dmarc_policy

    _apply_return_path(domain, findings, now)
    domain.record_checks = _with_earlier_diagnoses([v.as_dict() for v in findings.verdicts], domain.record_checks)

    interval = (
        settings.PUFFERPOST_DOMAIN_RECHECK_VERIFIED
        if domain.dkim_status == DkimStatus.VERIFIED
        else settings.PUFFERPOST_DOMAIN_RECHECK_PENDING
    )
    if findings.dkim == DkimFinding.UNKNOWN or findings.dmarc == DmarcFinding.UNKNOWN:
        interval = min(interval, settings.PUFFERPOST_DOMAIN_RECHECK_PENDING)
    if findings.return_path == ReturnPathFinding.UNKNOWN or (domain.rotating and not completes):
        interval = min(interval, settings.PUFFERPOST_DOMAIN_RECHECK_PENDING)
    domain.last_checked_at = now
    domain.next_check_at = now + timedelta(seconds=interval)
    if _state(domain) != was:
        domain.updated_at = now
    return lost, completes


_PLAIN_MISSING = {"nxdomain", "no_record"}
_DIAGNOSED = {"wrong_host"}


def _with_earlier_diagnoses(verdicts: list[dict], earlier: list[dict]) -> list[dict]:
    """Keep a refresh's double-suffix diagnosis while a later quick check still finds
    the record missing: the drift re-check skips those probes, and "missing" alone says less."""
    before = {(v.get("purpose"), v.get("host")): v for v in earlier or []}
    kept = []
    for verdict in verdicts:
        previous = before.get((verdict["purpose"], verdict["host"]))
        if verdict["problem"] in _PLAIN_MISSING and previous and previous.get("problem") in _DIAGNOSED:
            verdict = previous
        kept.append(verdict)
    return kept


def _state(domain: Domain) -> tuple:
    return (
        domain.dkim_status,
        domain.dmarc_status,
        domain.dkim_error,
        domain.dmarc_error,
        domain.return_path_status,
        domain.return_path_error,
    )


def _apply_return_path(domain: Domain, findings: checks.Findings, now) -> None:
    """The return path moves like DKIM (pending until first verified, failed after), but is advisory:
    it never gates sending, it only decides which envelope domain delivery uses."""
    finding = findings.return_path
    if finding == ReturnPathFinding.VALID:
        domain.return_path_status = ReturnPathStatus.VERIFIED
        domain.return_path_verified_at = domain.return_path_verified_at or now
    elif finding == ReturnPathFinding.NOT_OFFERED:
        domain.return_path_status = ReturnPathStatus.PENDING
    elif finding == ReturnPathFinding.WRONG or (
        finding == ReturnPathFinding.MISSING and domain.return_path_verified_at is not None
    ):
        domain.return_path_status = ReturnPathStatus.FAILED
    elif finding == ReturnPathFinding.MISSING:
        domain.return_path_status = ReturnPathStatus.PENDING
    domain.return_path_error = findings.return_path_error[:500]


def _record(findings_by_id: dict[str, checks.Findings]) -> list[Domain]:
    """Write the findings of several domains in one transaction, rows locked in pk order.

    Applying them to freshly locked rows (not the claimed snapshot) keeps a concurrent refresh
    and re-check from both reporting the same loss.
    """
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Domain.objects.select_for_update()
            .defer("dkim_private_key", "next_dkim_private_key")
            .filter(pk__in=list(findings_by_id))
            .order_by("pk")
        )
        outcomes = [(row, *_apply(row, findings_by_id[row.pk], now)) for row in rows]
        domains_write_check_results(rows)
        for row, lost, completes in outcomes:
            if lost:
                domain_verification_lost(domain=row)
            if completes:
                _rotation_complete(domain=row, now=now)
    for row in rows:
        if findings_by_id[row.pk].dkim == DkimFinding.NO_KEY:
            _enqueue_key_issue(row.pk)
    for findings in findings_by_id.values():
        metrics.DNS_CHECKS.labels("dkim", str(findings.dkim.value)).inc()
        metrics.DNS_CHECKS.labels("dmarc", str(findings.dmarc.value)).inc()
    return rows


def domain_refresh(*, domain: Domain) -> Domain:
    """Re-check every record of one domain now (the DNS doctor in full) and return it with its new state.

    The lookups run inside the web request, so together they end by
    PUFFERPOST_DOMAIN_REFRESH_DEADLINE: a stalling name server leaves a lookup unreachable (no
    status changes) instead of holding the request for one timeout per lookup."""
    findings = checks.inspect(_target(domain), dns.resolver(total=settings.PUFFERPOST_DOMAIN_REFRESH_DEADLINE))
    _record({domain.pk: findings})
    domain.refresh_from_db()
    return domain


def _check(targets: list[checks.Target], pool: ThreadPoolExecutor, *, thorough: bool) -> int:
    inspect = functools.partial(checks.inspect, thorough=thorough)
    findings = dict(zip((t.id for t in targets), pool.map(inspect, targets), strict=True))
    return len(_record(findings))


def domains_recheck(*, domain_ids) -> int:
    """Re-check the given domains now (the admin's "Re-check now"); returns how many were checked."""
    targets = [
        _target(d)
        for d in Domain.objects.defer("dkim_private_key", "next_dkim_private_key").filter(pk__in=list(domain_ids))
    ]
    if not targets:
        return 0
    with ThreadPoolExecutor(max_workers=settings.PUFFERPOST_DOMAIN_RECHECK_CONCURRENCY) as pool:
        return _check(targets, pool, thorough=True)


def _claim_due(*, limit: int) -> list[checks.Target]:
    """Atomically take up to `limit` due domains, pushing their next check past the lease.

    SKIP LOCKED lets overlapping runs (a slow tick and the next one) split the work instead of
    checking the same domains twice.
    """
    now = timezone.now()
    return [checks.Target(*row) for row in domains_claim_due_returning(now=now, until=now + CLAIM_LEASE, limit=limit)]


def domains_recheck_due(*, batch_size: int | None = None) -> int:
    """The drift re-check: check every due domain in claimed batches; returns how many were checked.

    Lookups of a batch run in a bounded thread pool; its results are written in one bulk update.
    """
    batch_size = batch_size or settings.PUFFERPOST_DOMAIN_RECHECK_BATCH
    deadline = time.monotonic() + RUN_BUDGET_SECONDS
    checked = 0
    with ThreadPoolExecutor(max_workers=settings.PUFFERPOST_DOMAIN_RECHECK_CONCURRENCY) as pool:
        while True:
            targets = _claim_due(limit=batch_size)
            if targets:
                checked += _check(targets, pool, thorough=False)
            if len(targets) < batch_size or time.monotonic() > deadline:
                break
    if checked:
        logger.info("Re-checked %d domains", checked)
    return checked


# --- DKIM key rotation --------------------------------------------------------------------------


def next_selector_after(selector: str, *, taken=()) -> str:
    """`mlr1` → `mlr2`, `s` → `s2`: a new selector, never one in use or still listed."""
    match = re.fullmatch(r"(.*?)(\d+)", selector)
    base, number = (match.group(1), int(match.group(2))) if match else (selector, 1)
    while True:
        number += 1
        candidate = f"{base}{number}"
        if candidate != selector and candidate not in taken:
            return candidate


def _subject(domain: Domain, **extra) -> dict:
    return {"id": domain.pk, "domain": domain.domain, **extra}


def domain_dkim_rotate(*, domain: Domain) -> Domain:
    """Issue a new signing key under a new selector. Signing keeps the active key until the new
    key's record verifies (a refresh or the re-check); the old record is then listed "keep until"
    for PUFFERPOST_DKIM_ROTATION_GRACE and retired. One rotation at a time."""
    if not domain.key_issued:
        raise Conflict("dkim_key_not_issued", "The domain's first signing key has not been issued yet; retry shortly.")
    private_pem, public_b64 = new_dkim_key_pair()  # outside the lock: generating a key takes a while
    now = timezone.now()
    with transaction.atomic():
        row = Domain.objects.select_for_update().defer("dkim_private_key", "next_dkim_private_key").get(pk=domain.pk)
        if row.rotating:
            raise Conflict(
                "dkim_rotation_in_progress",
                f"A rotation to selector {row.next_selector} is waiting for its DNS record; publish it and refresh.",
            )
        selector = next_selector_after(row.selector, taken={row.retired_selector})
        Domain.objects.filter(pk=row.pk).update(
            next_selector=selector,
            next_dkim_private_key=private_pem,
            next_dkim_public_key=public_b64,
            rotation_started_at=now,
            next_check_at=now,
            updated_at=now,
        )
        events.publish(
            events.DOMAIN_DKIM_ROTATION_STARTED,
            workspace_id=row.workspace_id,
            occurred_at=now,
            subject=_subject(
                row,
                active_selector=row.selector,
                selector=selector,
                record={
                    "purpose": "DKIM",
                    "type": "TXT",
                    "host": f"{selector}._domainkey.{row.domain}",
                    "value": records.dkim_value(public_b64),
                },
            ),
        )
    logger.info("DKIM rotation of domain %s started: %s → %s", row.pk, row.selector, selector)
    domain.refresh_from_db()
    return domain


def domains_dkim_rotate(*, domain_ids) -> int:
    """The admin's "Rotate DKIM key": how many of the domains started a rotation (the others are
    already rotating or have no key yet)."""
    started = 0
    for domain in Domain.objects.defer("dkim_private_key", "next_dkim_private_key").filter(pk__in=list(domain_ids)):
        try:
            domain_dkim_rotate(domain=domain)
        except Conflict:
            continue
        started += 1
    return started


def _rotation_complete(*, domain: Domain, now) -> None:
    """The new key's record verified: sign with it from now on, keep listing the old one for the grace.

    Runs inside the transaction that recorded the check. The keys move by column (F), so no private
    key is read into this process.
    """
    keep_until = now + timedelta(seconds=settings.PUFFERPOST_DKIM_ROTATION_GRACE)
    old_selector, new_selector = domain.selector, domain.next_selector
    moved = Domain.objects.filter(pk=domain.pk, next_dkim_public_key=domain.next_dkim_public_key).update(
        retired_selector=old_selector,
        retired_dkim_public_key=domain.dkim_public_key,
        retired_keep_until=keep_until,
        selector=F("next_selector"),
        dkim_private_key=F("next_dkim_private_key"),
        dkim_public_key=F("next_dkim_public_key"),
        next_selector="",
        next_dkim_private_key="",
        next_dkim_public_key="",
        rotation_started_at=None,
        updated_at=now,
    )
    if not moved:
        return
    logger.info("DKIM rotation of domain %s completed: signing with %s", domain.pk, new_selector)
    events.publish(
        events.DOMAIN_DKIM_ROTATION_COMPLETED,
        workspace_id=domain.workspace_id,
        occurred_at=now,
        subject=_subject(
            domain,
            selector=new_selector,
            retired_selector=old_selector,
            keep_until=keep_until.isoformat(timespec="seconds"),
        ),
    )
