"""Event counts and rates over a period, read from the hourly rollup (`GET /v1/stats`, the admin's charts).

The rollup (messaging.models.EventRollup) holds one count per UTC hour, so a period is cut into
hours or days of the asked timezone, and a day of a zone is a whole number of UTC hours only in a
zone whole hours off UTC: a zone like Asia/Kolkata (+05:30) is refused rather than answered with
days that are half an hour off.

Rates are shares of the period's delivery outcomes, `delivered + bounced` (what receiving servers
said; a late bounce of a delivered message counts in both): delivery rate = delivered / outcomes,
bounce rate = bounces other than blocks / outcomes, block rate = blocks / outcomes, complaint
rate = complained / delivered. A rate with a zero denominator is null.
"""

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum

from messaging.models import EventRollup, EventType
from pufferpost.formats import utc_timestamp

INTERVALS = ("hour", "day")
MAX_SPAN = timedelta(days=366)
MAX_BUCKETS = 2000
# Without `from`: the 30 days (or, by hour, the 48 hours) before `to`.
DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=30)}
BLOCK = "block"
COUNT_KEYS = (*EventType.values, "blocked")
RATE_KEYS = ("delivery_rate", "bounce_rate", "block_rate", "complaint_rate")


@dataclass(frozen=True)
class Period:
    """`[since, until)` cut into buckets (UTC datetimes of each bucket's start), in `zone`."""

    since: datetime
    until: datetime
    interval: str
    zone: str
    starts: tuple[datetime, ...]


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def whole_hours(zone: ZoneInfo, since: datetime, until: datetime) -> bool:
    """True when `zone` is a whole number of hours off UTC all through `[since, until)`."""
    moment = since
    while moment < until + timedelta(days=1):
        offset = zone.utcoffset(moment.replace(tzinfo=None))
        if offset is None or offset % timedelta(hours=1):
            return False
        moment += timedelta(hours=12)
    return True


def period_of(*, since: datetime, until: datetime, interval: str, zone: str) -> Period:
    """Widen `[since, until)` to whole buckets of `interval` in `zone` and list the bucket starts.

    The caller has checked the bounds (interval known, zone valid and whole hours off UTC,
    since < until, at most MAX_SPAN); the bucket count is the caller's to check against MAX_BUCKETS.
    """
    if interval == "hour":
        start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        starts = []
        moment = start
        while moment < until:
            starts.append(moment)
            moment += timedelta(hours=1)
        end = moment
    else:
        tz = ZoneInfo(zone)
        day = since.astimezone(tz).date()
        starts = []
        moment = _local_midnight(day, tz)
        while moment < until:
            starts.append(moment)
            day += timedelta(days=1)
            moment = _local_midnight(day, tz)
        end = moment
    return Period(since=starts[0], until=end, interval=interval, zone=zone, starts=tuple(starts))


def buckets_needed(*, since: datetime, until: datetime, interval: str) -> int:
    """An upper bound of the buckets `[since, until)` needs, computed without listing them."""
    hours = (until - since) / timedelta(hours=1)
    return int(hours) + 2 if interval == "hour" else int(hours / 24) + 2


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    outcomes = counts["delivered"] + counts["bounced"]

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "delivery_rate": share(counts["delivered"], outcomes),
        "bounce_rate": share(counts["bounced"] - counts["blocked"], outcomes),
        "block_rate": share(counts["blocked"], outcomes),
        "complaint_rate": share(counts["complained"], counts["delivered"]),
    }


def event_counts(
    *,
    workspace_id: str,
    livemode: bool,
    period: Period,
    sender_id: str | None = None,
    template_id: str | None = None,
    group_id: str | None = None,
) -> dict[datetime, dict[str, int]]:
    """{bucket start: {event type: n, …, "blocked": n}} for every bucket of `period` (zeros included).

    One grouped query on the rollup's key index (workspace, livemode, bucket, …), so its cost
    follows the rows of the period, never the number of messages.
    """
    rows = EventRollup.objects.filter(
        workspace_id=workspace_id, livemode=livemode, bucket__gte=period.since, bucket__lt=period.until
    )
    if sender_id is not None:
        rows = rows.filter(sender_id=sender_id)
    if template_id is not None:
        rows = rows.filter(template_id=template_id)
    if group_id is not None:
        rows = rows.filter(group_id=group_id)
    # Summed per UTC hour in SQL and placed into the period's buckets here: every bucket edge is a
    # UTC hour (whole-hour zones only), so each hour falls in exactly one bucket.
    grouped = rows.values("bucket", "type").annotate(
        total=Sum("n"), blocked=Sum("n", filter=Q(type=EventType.BOUNCED, bounce_class=BLOCK))
    )
    result = {start: dict.fromkeys(COUNT_KEYS, 0) for start in period.starts}
    for row in grouped:
        counts = result[period.starts[bisect_right(period.starts, row["bucket"]) - 1]]
        counts[row["type"]] += row["total"]
        counts["blocked"] += row["blocked"] or 0
    return result


def stats_view(*, period: Period, buckets: dict[datetime, dict[str, int]], filters: dict) -> dict:
    """The `GET /v1/stats` body: the period as answered, totals, and one entry per bucket."""
    totals = dict.fromkeys(COUNT_KEYS, 0)
    data = []
    ends = [*period.starts[1:], period.until]
    for start, end in zip(period.starts, ends, strict=True):
        counts = buckets[start]
        for key, value in counts.items():
            totals[key] += value
        data.append(
            {"start": utc_timestamp(start), "end": utc_timestamp(end), "counts": counts, "rates": rates(counts)}
        )
    return {
        "from": utc_timestamp(period.since),
        "to": utc_timestamp(period.until),
        "interval": period.interval,
        "timezone": period.zone,
        "filters": filters,
        "totals": {"counts": totals, "rates": rates(totals)},
        "data": data,
    }
