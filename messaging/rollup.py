"""Rebuilding the hourly event rollup from the events table (`manage.py rollup_events`).

The workers keep the rollup as they record events (messaging.lifecycle); the rebuild is for
events recorded before the rollup existed, or to check it. It recounts `[since, …)` from the
events under a lock that makes recording wait (messaging.queries.event_rollup_lock), so running
it while mail flows neither loses nor doubles a count, and running it twice gives the same rows.
"""

from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Case, Count, F, Min, Value, When
from django.db.models.functions import Trunc

from messaging import queries
from messaging.models import EventRollup, EventType, MessageEvent

BATCH = 5000


def _hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@transaction.atomic
def event_rollup_rebuild(*, since: datetime | None = None) -> tuple[datetime | None, int]:
    """Recount the rollup from the events that occurred in or after `since`'s hour.

    Without `since`: from the earliest event's hour (the rollup's older rows, whose events
    retention may have dropped, are kept). Returns (the first hour recounted, rows written).
    """
    queries.event_rollup_lock()
    if since is None:
        since = MessageEvent.objects.aggregate(first=Min("occurred_at"))["first"]
        if since is None:
            return None, 0
    since = _hour(since)
    counted = (
        MessageEvent.objects.filter(occurred_at__gte=since)
        .annotate(
            hour=Trunc("occurred_at", "hour", tzinfo=UTC),
            klass=Case(When(type=EventType.BOUNCED, then=F("message__bounce_class")), default=Value("")),
        )
        .values(
            "workspace_id",
            "message__livemode",
            "hour",
            "type",
            "message__sender_id",
            "message__template_id",
            "message__unsubscribe_group_id",
            "klass",
        )
        .annotate(n=Count("id"))
        .order_by()
    )
    EventRollup.objects.filter(bucket__gte=since).delete()
    rows = (
        EventRollup(
            workspace_id=row["workspace_id"],
            livemode=row["message__livemode"],
            bucket=row["hour"],
            type=row["type"],
            sender_id=row["message__sender_id"],
            template_id=row["message__template_id"] or "",
            group_id=row["message__unsubscribe_group_id"] or "",
            bounce_class=(row["klass"] or "")[:8],
            n=row["n"],
        )
        for row in counted.iterator(chunk_size=BATCH)
    )
    written = 0
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            written += len(EventRollup.objects.bulk_create(batch))
            batch = []
    if batch:
        written += len(EventRollup.objects.bulk_create(batch))
    return since, written
