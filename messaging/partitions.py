"""Monthly partitions of the message tables, and retention by dropping them (README "Retention").

Every table below is partitioned by RANGE on a message id (`msg_` + a ULID). A ULID starts with
its creation time in milliseconds, so the ids of one calendar month (UTC) form one contiguous
range: from the ULID of the month's first millisecond with zero randomness (`msg_01JD…000`) to
the next month's. `messaging_message` is partitioned on its primary key itself, so Django's
single-column primary key and every foreign key to it keep working; the other tables are
partitioned on their `message_id`, so a message's events, attempts, content, body and
attachments live in the same month as the message and a month goes in one piece.

A DEFAULT partition of each table catches ids outside every month (hand-made ids, or a month
that was not created in time). `ensure_partitions` (beat, daily, and `manage.py partitions`)
keeps the current month and PUFFERPOST_PARTITIONS_AHEAD months ahead; it is idempotent.

Purging (`purge`, beat daily and `manage.py partitions --purge`) works a month at a time, oldest
first, only on months that ended before both horizons below, and only when no message in the
month is still on its way (`still_on_its_way`: accepted, queued, or `sent` recently enough that a
DSN can still turn it into bounced):
- the *content* tables (events, attempts, rendered content, submitted bodies, attachments) are
  dropped once the month ended more than the longest `content_retention_days` of the workspaces
  with mail in it;
- the *message* partition (the metadata: status, addresses, subject, tags, data) once the month
  ended more than the longest `message_retention_days` of those workspaces.
Suppressions are never dropped: their `source_message` is set to null first, as Django's
SET_NULL would. Idempotency records of the month (a day's life at most) are deleted with it.

A workspace whose settings are shorter than those of its neighbours in a month has its own rows
of that month removed earlier, in batches, by messaging.retention.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from ulid import ULID

from messaging.models import TERMINAL_STATUSES, IdempotencyRecord, Message, MessageStatus, Suppression
from messaging.queries import default_partition_rows_delete
from pufferpost.models import Workspace

logger = logging.getLogger("pufferpost.retention")

MESSAGES = "messaging_message"
# The content tables, partitioned on message_id in the months of messaging_message. Dropped
# children first (their foreign keys point at the message partition).
CONTENT = (
    "messaging_messageevent",
    "messaging_deliveryattempt",
    "messaging_messagecontent",
    "messaging_messagebody",
    "messaging_messageattachment",
)
# Table -> partition key column.
PARTITIONED = {MESSAGES: "id", **{table: "message_id" for table in CONTENT}}
# Tables outside the partitions that reference messages, and what a dropped month does to them.
# Tables whose rows point at messages; `_release_references` lets go of a month's before its drop.
REFERENCING = {"messaging_suppression", "messaging_idempotencyrecord"}
PREFIX = "msg_"
# No message id is older than this; ids below it (or outside every month) go to the default partition.
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_NAME = re.compile(r"^(?P<table>.+)_p(?P<year>\d{4})_(?P<month>\d{2})$")
NOT_TERMINAL = ("accepted", "queued", "sent")
assert not set(NOT_TERMINAL) & {str(s) for s in TERMINAL_STATUSES}


def sent_settled_before(now: datetime) -> datetime:
    """`sent` mail accepted before this moment is finished as far as retention goes.

    `sent` is the status of a message the receiving server took (a DSN may still bounce it) or
    whose answer never came (`outcome: unknown`, messaging.delivery.sweeper). A message is sent
    within the retry window after it was accepted, and receiving servers give up on a deferred
    message within PUFFERPOST_RETENTION_SENT_GRACE; after both, its final answer is not coming
    and it is kept or purged like delivered mail (it still reads `sent`).
    """
    return now - timedelta(seconds=settings.PUFFERPOST_DELIVERY_RETRY_WINDOW + settings.PUFFERPOST_RETENTION_SENT_GRACE)


def still_on_its_way(now: datetime) -> Q:
    """The messages retention never touches: accepted, queued, and `sent` not yet settled."""
    return Q(status__in=[MessageStatus.ACCEPTED, MessageStatus.QUEUED]) | Q(
        status=MessageStatus.SENT, created_at__gte=sent_settled_before(now)
    )


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def bound(moment: datetime) -> str:
    """The smallest message id made at `moment` (millisecond precision): the ULID with zero randomness."""
    millis = int(moment.timestamp() * 1000)
    return PREFIX + str(ULID.from_bytes(millis.to_bytes(6, "big") + bytes(10)))


def id_time(message_id: str) -> datetime | None:
    """When a message id was made, or None for an id that is not `msg_` + a ULID."""
    try:
        return ULID.from_str(message_id.removeprefix(PREFIX)).datetime if message_id.startswith(PREFIX) else None
    except ValueError:
        return None


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month.year:04d}_{month.month:02d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def is_partitioned(table: str, cursor=None) -> bool:
    sql = "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)"
    if cursor is not None:
        cursor.execute(sql, [table])
        return cursor.fetchone() is not None
    with connection.cursor() as c:
        c.execute(sql, [table])
        return c.fetchone() is not None


def months(table: str, cursor) -> dict[datetime, str]:
    """The monthly partitions of `table` that exist: {month start: partition name}."""
    cursor.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(%s)""",
        [table],
    )
    found = {}
    for (name,) in cursor.fetchall():
        match = _NAME.match(name)
        if match and match["table"] == table:
            found[datetime(int(match["year"]), int(match["month"]), 1, tzinfo=UTC)] = name
    return found


def message_months() -> list[datetime]:
    """The months messaging_message has a partition for, oldest first ([] while it is not partitioned)."""
    with connection.cursor() as cursor:
        return sorted(months(MESSAGES, cursor)) if is_partitioned(MESSAGES, cursor) else []


def create_month(cursor, table: str, month: datetime) -> bool:
    """Create `table`'s partition for `month` unless it exists; True when it was created."""
    name = partition_name(table, month)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if cursor.fetchone()[0]:
        return False
    lo, hi = bound(month), bound(add_months(month, 1))
    # No partition covers the range yet, so its rows can only be in the default partition.
    key = PARTITIONED[table]
    stray = _model(table).objects.filter(**{f"{key}__gte": lo, f"{key}__lt": hi}).count()
    if stray:
        # PostgreSQL refuses the partition while the default one holds rows of its range.
        raise PartitionError(
            f"{default_name(table)} holds {stray} row(s) of {month:%Y-%m}; the month was not created "
            f"in time (see README, Retention: moving rows out of the default partition)"
        )
    cursor.execute(f"CREATE TABLE {_q(name)} PARTITION OF {_q(table)} FOR VALUES FROM (%s) TO (%s)", [lo, hi])
    return True


class PartitionError(RuntimeError):
    pass


def ensure_partitions(now: datetime | None = None, ahead: int | None = None) -> list[str]:
    """Create the current month and `ahead` months after it in every partitioned table (idempotent)."""
    now = now or datetime.now(UTC)
    ahead = settings.PUFFERPOST_PARTITIONS_AHEAD if ahead is None else ahead
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        for table in PARTITIONED:
            if not is_partitioned(table, cursor):
                continue
            for n in range(ahead + 1):
                month = add_months(month_start(now), n)
                if create_month(cursor, table, month):
                    created.append(partition_name(table, month))
    if created:
        logger.info("partitions created: %s", ", ".join(created))
    return created


@dataclass
class MonthReport:
    month: str
    action: str  # dropped, content_dropped, kept, blocked
    detail: str = ""
    messages: int | None = None


@dataclass
class PurgeReport:
    months: list[MonthReport] = field(default_factory=list)
    late_rows_deleted: int = 0

    def as_lines(self) -> list[str]:
        lines = [f"{m.month}: {m.action}{' (' + m.detail + ')' if m.detail else ''}" for m in self.months]
        if self.late_rows_deleted:
            lines.append(f"default partitions: {self.late_rows_deleted} late row(s) of purged months deleted")
        return lines


def _model(table: str):
    """The model of a partitioned table: what DDL does not need, reads go through the ORM."""
    return next(m for m in apps.get_app_config("messaging").get_models() if m._meta.db_table == table)


def _in_month(month: datetime):
    """The month's messages (the id range prunes to its partition)."""
    return Message.objects.filter(pk__gte=bound(month), pk__lt=bound(add_months(month, 1)))


def _longest(month: datetime, column: str) -> int | None:
    """The longest retention (days) among the workspaces with mail in `month`; None when empty."""
    with_mail = Exists(_in_month(month).filter(workspace_id=OuterRef("pk")))
    return Workspace.objects.filter(with_mail).aggregate(longest=Max(column))["longest"]


def _unfinished(month: datetime, now: datetime) -> dict[str, int]:
    """{status: count} of the month's messages still on their way (the id range prunes to its partition)."""
    rows = (
        _in_month(month).filter(still_on_its_way(now)).values_list("status").annotate(n=Count("pk")).order_by("status")
    )
    return dict(rows)


def _drop_content(cursor, month: datetime) -> list[str]:
    dropped = []
    for table in CONTENT:
        name = partition_name(table, month)
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            cursor.execute(f"DROP TABLE {_q(name)}")
            dropped.append(name)
    return dropped


def _release_references(cursor, month: datetime) -> None:
    lo, hi = bound(month), bound(add_months(month, 1))
    # Suppressions outlive the mail that caused them; a month's idempotency records go with it.
    Suppression.objects.filter(source_message_id__gte=lo, source_message_id__lt=hi).update(source_message=None)
    IdempotencyRecord.objects.filter(message_id__gte=lo, message_id__lt=hi).delete()
    # Any other table referencing messages would block the drop: refuse rather than guess.
    cursor.execute(
        """SELECT conrelid::regclass::text FROM pg_constraint
            WHERE contype = 'f' AND confrelid = to_regclass(%s) AND conparentid = 0""",
        [MESSAGES],
    )
    unknown = {row[0] for row in cursor.fetchall()} - set(REFERENCING) - set(CONTENT)
    if unknown:
        raise PartitionError(f"{', '.join(sorted(unknown))} reference(s) messages; retention does not know them")


def purge(now: datetime | None = None, *, dry_run: bool = False) -> PurgeReport:
    """Drop what every workspace with mail in a month no longer keeps, a month at a time."""
    now = now or datetime.now(UTC)
    report = PurgeReport()
    with connection.cursor() as cursor:
        if not is_partitioned(MESSAGES, cursor):
            return report
        message_months = months(MESSAGES, cursor)
    for month, partition in sorted(message_months.items()):
        end = add_months(month, 1)
        if end > now - timedelta(days=1):
            break  # this month and the later ones are still being written
        label = f"{month:%Y-%m}"
        try:
            _purge_month(report, month, partition, label, now, dry_run)
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            logger.warning("retention: %s not purged this run, its tables are busy: %s", label, exc)
            report.months.append(MonthReport(label, "busy", "lock timeout; tried again next run"))
            break
    report.late_rows_deleted = _delete_late_rows()
    return report


def _purge_month(report, month, partition, label, now, dry_run) -> None:
    """One month, in one transaction."""
    end = add_months(month, 1)
    # An empty month: the defaults a new workspace gets.
    default_message_days = Workspace._meta.get_field("message_retention_days").default
    default_content_days = Workspace._meta.get_field("content_retention_days").default
    with transaction.atomic(), connection.cursor() as cursor:
        # Never wait behind live traffic for the table locks a drop takes: try again tomorrow.
        cursor.execute("SET LOCAL lock_timeout = %s", [f"{settings.PUFFERPOST_PURGE_LOCK_TIMEOUT}s"])
        # A table with pending deferred foreign-key checks cannot be dropped: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        message_days = _longest(month, "message_retention_days") or default_message_days
        content_days = _longest(month, "content_retention_days") or default_content_days
        content_due = end <= now - timedelta(days=content_days)
        message_due = end <= now - timedelta(days=message_days)
        has_content = any(_exists(cursor, partition_name(table, month)) for table in CONTENT)
        if not message_due and not (content_due and has_content):
            report.months.append(MonthReport(label, "kept", f"kept for {message_days} days after the month"))
            return
        unfinished = _unfinished(month, now)
        if unfinished:
            detail = ", ".join(f"{n} {status}" for status, n in unfinished.items())
            logger.warning("retention: %s not purged, messages still on their way: %s", label, detail)
            report.months.append(MonthReport(label, "blocked", f"still on their way: {detail}"))
            return
        if dry_run:
            report.months.append(MonthReport(label, "would drop" if message_due else "would drop content"))
            transaction.set_rollback(True)
            return
        count = _in_month(month).count()
        dropped = _drop_content(cursor, month)
        if message_due:
            _release_references(cursor, month)
            cursor.execute(f"ALTER TABLE {_q(MESSAGES)} DETACH PARTITION {_q(partition)}")
            cursor.execute(f"DROP TABLE {_q(partition)}")
            dropped.append(partition)
            action = "dropped"
        else:
            action = "content dropped"
        logger.info("retention: %s %s (%d messages): %s", label, action, count, ", ".join(dropped))
        report.months.append(MonthReport(label, action, f"{count} messages", messages=count))


def _exists(cursor, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    return cursor.fetchone()[0]


def _delete_late_rows() -> int:
    """Rows written after their month's content was dropped (a late open, click or DSN event)
    land in the default partition; they are past retention too, so they go, bounded per run to
    the key range of the months whose content is gone.

    The DELETE is messaging.queries.default_partition_rows_delete: aimed at the default partition
    by the name the catalog reads here return, it can only ever touch rows already there.
    tests/messaging/test_retention.py holds it to the late rows of purged months: a
    default-partition row outside their range stays.
    """
    deleted = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        message_months = months(MESSAGES, cursor)
        for table in CONTENT:
            existing = months(table, cursor)
            gone = [m for m in message_months if m not in existing]
            if not gone or not _exists(cursor, default_name(table)):
                continue
            # Everything below the newest month whose content is gone, and not in a kept month.
            below = bound(add_months(max(gone), 1))
            if existing:
                below = min(below, bound(min(existing)))
            deleted += default_partition_rows_delete(
                partition=default_name(table), key=PARTITIONED[table], at_least=bound(EPOCH), below=below
            )
    return deleted


def content_dropped(message_id: str, *, content_retention_days: int, now: datetime | None = None) -> bool:
    """Whether the content of `message_id` is past retention: its workspace's content retention ran
    out after the message's month (messaging.retention removes it), or the month's content
    partitions were dropped."""
    now = now or datetime.now(UTC)
    created = id_time(message_id)
    if created is None or created >= month_start(now):
        return False
    if add_months(month_start(created), 1) + timedelta(days=content_retention_days) <= now:
        return True
    with connection.cursor() as cursor:
        table = "messaging_messagecontent"
        return is_partitioned(table, cursor) and not _exists(cursor, partition_name(table, month_start(created)))


def status() -> list[dict]:
    """Every partitioned table's partitions with their row estimates and sizes (for the command)."""
    rows = []
    with connection.cursor() as cursor:
        for table in PARTITIONED:
            cursor.execute(
                """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint,
                          pg_total_relation_size(c.oid)
                     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname""",
                [table],
            )
            for name, bounds, tuples, size in cursor.fetchall():
                rows.append(
                    {"table": table, "partition": name, "bounds": bounds, "rows": max(tuples, 0), "bytes": size}
                )
    return rows
