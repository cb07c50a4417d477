"""messaging.partitions reads rows through the ORM; each read equals the statement on the one
partition it stands for (the id range of a month prunes to that month's partition)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from messaging import partitions
from messaging.models import Message, MessageEvent
from tests.messaging.conftest import make_sendable
from tests.messaging.test_retention import JULY, JUNE, _message, months  # noqa: F401  (months: a fixture)

AUGUST = datetime(2026, 8, 1, tzinfo=UTC)
# Before the months the test database has: its rows land in the default partitions.
MARCH = datetime(2026, 3, 1, tzinfo=UTC)


def _one(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _longest_in_partition(partition: str, column: str):
    """What `_longest` read before: straight from the month's partition."""
    return _one(
        f'SELECT max(w."{column}") FROM pufferpost_workspace w '
        f'WHERE EXISTS (SELECT 1 FROM "{partition}" m WHERE m.workspace_id = w.id)'
    )


def test_the_month_reads_equal_the_statements_on_the_months_partition(months, workspace, other_workspace):  # noqa: F811
    other_workspace.message_retention_days, other_workspace.content_retention_days = 365, 200
    other_workspace.save()
    mine, theirs = make_sendable(workspace), make_sendable(other_workspace)
    for day in (1, 2, 30):
        _message(mine, JUNE + timedelta(days=day - 1))
    _message(theirs, JUNE + timedelta(days=3))
    _message(theirs, JULY + timedelta(days=4))  # July: only the other workspace
    _message(mine, JULY - timedelta(milliseconds=1))  # June's last millisecond

    for month in (JUNE, JULY, AUGUST):
        partition = partitions.partition_name(partitions.MESSAGES, month)
        assert partitions._in_month(month).count() == _one(f'SELECT count(*) FROM "{partition}"')
        for column in ("message_retention_days", "content_retention_days"):
            assert partitions._longest(month, column) == _longest_in_partition(partition, column)
        plan = str(partitions._in_month(month).explain())
        assert partition in plan and "_default" not in plan
        others = {partitions.partition_name(partitions.MESSAGES, m) for m in (JUNE, JULY, AUGUST)} - {partition}
        assert not any(other in plan for other in others), plan
    assert [partitions._in_month(m).count() for m in (JUNE, JULY, AUGUST)] == [5, 1, 0]
    assert partitions._longest(JUNE, "message_retention_days") == 365
    assert partitions._longest(JULY, "content_retention_days") == 200
    assert partitions._longest(AUGUST, "message_retention_days") is None


def test_a_month_whose_rows_wait_in_the_default_partition_is_refused_with_their_count(db, workspace):
    sendable = make_sendable(workspace)
    message = _message(sendable, MARCH + timedelta(days=3))
    MessageEvent.objects.create(message=message, workspace=workspace, type="delivered", occurred_at=message.created_at)
    _message(sendable, MARCH - timedelta(days=3))  # February: not in March's range
    lo, hi = partitions.bound(MARCH), partitions.bound(partitions.add_months(MARCH, 1))

    in_defaults = {}
    for table, key in partitions.PARTITIONED.items():
        in_default = _one(
            f'SELECT count(*) FROM "{partitions.default_name(table)}" WHERE "{key}" >= %s AND "{key}" < %s', [lo, hi]
        )
        through_orm = partitions._model(table).objects.filter(**{f"{key}__gte": lo, f"{key}__lt": hi}).count()
        assert through_orm == in_default
        in_defaults[table] = in_default
    events = MessageEvent.objects.filter(message=message).count()
    assert events >= 2  # the one added here and what the factory recorded
    content = {table: 0 for table in partitions.CONTENT} | {"messaging_messageevent": events}
    assert in_defaults == {partitions.MESSAGES: 1, **content}

    with connection.cursor() as cursor, pytest.raises(partitions.PartitionError, match=r"holds 1 row\(s\) of 2026-03"):
        partitions.create_month(cursor, partitions.MESSAGES, MARCH)
    assert Message.objects.filter(pk=message.pk).exists()
