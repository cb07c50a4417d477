"""Per-workspace retention inside the months that are kept (README "Retention").

A month's partitions go whole (messaging.partitions.purge) once the month is past the longest
setting among the workspaces with mail in it. A workspace whose own setting is shorter would keep
its mail as long as its neighbours; `workspace_retention_purge` makes its setting hold by removing
that workspace's rows of such a month through the ORM, in batches:

- its messages' content (events, delivery attempts, rendered content, submitted bodies,
  attachments) once the month ended more than its `content_retention_days` ago;
- its messages themselves (and with them anything left of their content and their idempotency
  records; suppressions stay, their `source_message` set to null) once the month ended more than
  its `message_retention_days` ago.

Only finished mail is touched (never `messaging.partitions.still_on_its_way`), and only in months
not yet due for the whole-month purge: a workspace at the longest setting waits for the drop, so
the common case stays a partition drop and the row-by-row work is only the difference. Each batch
is its own short transaction; a run stops after PUFFERPOST_RETENTION_MAX_BATCHES and the next run
goes on where the rows are. Running it again removes nothing more.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from messaging import partitions
from messaging.models import DeliveryAttempt, Message, MessageAttachment, MessageBody, MessageContent, MessageEvent
from pufferpost.models import Workspace

logger = logging.getLogger("pufferpost.retention")

# A message's content, in the order it is deleted.
CONTENT_MODELS = (MessageEvent, DeliveryAttempt, MessageContent, MessageBody, MessageAttachment)


@dataclass
class WorkspacePurge:
    month: str
    workspace_id: str
    what: str  # "content" or "messages"
    days: int
    messages: int

    def as_line(self, *, dry_run: bool = False) -> str:
        verb = "would remove" if dry_run else "removed"
        what = f"the content of {self.messages} message(s)" if self.what == "content" else f"{self.messages} message(s)"
        setting = "content_retention_days" if self.what == "content" else "message_retention_days"
        return f"{self.month} {self.workspace_id}: {verb} {what} ({setting} {self.days})"


@dataclass
class WorkspacePurgeReport:
    purges: list[WorkspacePurge] = field(default_factory=list)
    batches: int = 0
    complete: bool = True  # False when the run stopped at PUFFERPOST_RETENTION_MAX_BATCHES

    def as_lines(self, *, dry_run: bool = False) -> list[str]:
        lines = [p.as_line(dry_run=dry_run) for p in self.purges]
        if not self.complete:
            lines.append("per-workspace retention: batch limit reached; the next run goes on")
        return lines


def _has_content() -> Q:
    return (
        Q(Exists(MessageEvent.objects.filter(message_id=OuterRef("pk"))))
        | Q(Exists(DeliveryAttempt.objects.filter(message_id=OuterRef("pk"))))
        | Q(Exists(MessageContent.objects.filter(message_id=OuterRef("pk"))))
        | Q(Exists(MessageBody.objects.filter(message_id=OuterRef("pk"))))
        | Q(Exists(MessageAttachment.objects.filter(message_id=OuterRef("pk"))))
    )


def workspace_retention_purge(
    *, now: datetime | None = None, dry_run: bool = False, batch_size: int | None = None, max_batches: int | None = None
) -> WorkspacePurgeReport:
    """Remove each workspace's rows that its own (shorter) retention no longer keeps; see the module."""
    now = now or datetime.now(UTC)
    batch_size = batch_size or settings.PUFFERPOST_RETENTION_BATCH
    budget = max_batches or settings.PUFFERPOST_RETENTION_MAX_BATCHES
    report = WorkspacePurgeReport()
    for month in partitions.message_months():
        end = partitions.add_months(month, 1)
        if end >= now:
            break
        lo, hi = partitions.bound(month), partitions.bound(end)
        in_month = Message.objects.filter(workspace_id=OuterRef("pk"), pk__gte=lo, pk__lt=hi)
        workspaces = list(
            Workspace.objects.filter(Exists(in_month))
            .order_by("pk")
            .values_list("pk", "content_retention_days", "message_retention_days")
        )
        if not workspaces:
            continue
        # The horizons at which messaging.partitions.purge drops the month whole.
        content_horizon = max(c for _, c, _ in workspaces)
        message_horizon = max(m for _, _, m in workspaces)
        for workspace_id, content_days, message_days in workspaces:
            if message_days < message_horizon and end + timedelta(days=message_days) <= now:
                what, days = "messages", message_days
            elif content_days < content_horizon and end + timedelta(days=content_days) <= now:
                what, days = "content", content_days
            else:
                continue  # the month's drop (messaging.partitions.purge) serves this workspace
            rows = Message.objects.filter(workspace_id=workspace_id, pk__gte=lo, pk__lt=hi).exclude(
                partitions.still_on_its_way(now)
            )
            if what == "content":
                rows = rows.filter(_has_content())
            if dry_run:
                count = rows.count()
            else:
                count, used = _purge_in_batches(rows, what, batch_size, budget)
                budget -= used
                report.batches += used
            if count:
                label = f"{month:%Y-%m}"
                report.purges.append(WorkspacePurge(label, workspace_id, what, days, count))
                if not dry_run:
                    logger.info("retention: %s", report.purges[-1].as_line())
            if budget <= 0 and rows.exists():
                report.complete = False
                logger.warning(
                    "retention: per-workspace removal stopped after %d batch(es) (PUFFERPOST_RETENTION_MAX_BATCHES); "
                    "the next run goes on",
                    report.batches,
                )
                return report
    return report


def _purge_in_batches(rows, what: str, batch_size: int, budget: int) -> tuple[int, int]:
    """Remove `rows` (or their content) a batch at a time, oldest first; (messages, batches used)."""
    done, used, after = 0, 0, None
    while used < budget:
        # Forward along the workspace's list index (workspace, created_at, id), so a batch never
        # reads the rows before it again and a row skipped while locked waits for the next run.
        page = rows
        if after is not None:  # (created_at, id) > after, with the bound the index can seek to
            page = rows.filter(Q(created_at__gt=after[0]) | Q(pk__gt=after[1]), created_at__gte=after[0])
        with transaction.atomic():
            picked = list(
                page.select_for_update(skip_locked=True)
                .order_by("created_at", "pk")
                .values_list("created_at", "pk")[:batch_size]
            )
            if not picked:
                break
            used += 1
            after = picked[-1]
            ids = [pk for _, pk in picked]
            if what == "messages":
                # The ORM's cascade: content, idempotency records; suppressions' source_message set to null.
                Message.objects.filter(pk__in=ids).delete()
            else:
                for model in CONTENT_MODELS:
                    model.objects.filter(message_id__in=ids).delete()
            done += len(ids)
    return done, used
