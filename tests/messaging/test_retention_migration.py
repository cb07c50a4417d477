"""The partitioning migration on a database with rows: backwards and forwards, nothing lost."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from ulid import ULID

from messaging import partitions
from messaging.models import DeliveryAttempt, Message, MessageContent, MessageEvent, Suppression
from tests.messaging.conftest import make_sendable
from tests.messaging.factories import MessageFactory

BEFORE = ("messaging", "0009_bounce_classes")


def _snapshot():
    snap = {}
    with connection.cursor() as cursor:
        for table in [*partitions.PARTITIONED, "messaging_suppression"]:
            cursor.execute(f"SELECT to_jsonb(t) FROM {table} t")
            snap[table] = sorted(str(row[0]) for row in cursor.fetchall())
    return snap


def _partitioned():
    with connection.cursor() as cursor:
        return {t: partitions.is_partitioned(t, cursor) for t in partitions.PARTITIONED}


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_row_both_ways(workspace):
    sendable = make_sendable(workspace)
    made = []
    for moment in (datetime(2026, 10, 30, tzinfo=UTC), datetime.now(UTC), datetime(2023, 5, 1, tzinfo=UTC)):
        partitions.ensure_partitions(now=moment, ahead=0) if moment.year > 2023 else None
        message = MessageFactory(
            id="msg_" + str(ULID.from_datetime(moment)),
            workspace=workspace,
            sender=sendable.sender,
            template=sendable.template,
            template_version=sendable.version,
            status="delivered",
        )
        MessageEvent.objects.create(message=message, workspace=workspace, type="delivered", occurred_at=moment)
        DeliveryAttempt.objects.create(message=message, state="succeeded", started_at=moment)
        MessageContent.objects.create(message=message, subject="s", text="t", html="h", built_at=moment)
        made.append(message.pk)
    Suppression.objects.create(workspace=workspace, email="x@example.com", reason="bounce", source_message_id=made[0])
    before = _snapshot()
    events = MessageEvent.objects.filter(message_id=made[1]).count()
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        _migrate([BEFORE])
        assert not any(_partitioned().values())
        assert _snapshot() == before
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'messaging_messageevent'::regclass AND contype = 'p'"
            )
            assert cursor.fetchone()[0] == "PRIMARY KEY (id)"
    finally:
        _migrate(leaves)
    assert all(_partitioned().values())
    assert _snapshot() == before
    # The rows are in their months again (October's was made by the migration from the data).
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, tableoid::regclass::text FROM messaging_message WHERE id = ANY(%s)", [made])
        where = dict(cursor.fetchall())
    assert where[made[0]] == "messaging_message_p2026_10"
    assert where[made[2]] == "messaging_message_default"
    # New rows after the round trip: identity values continue, foreign keys hold.
    attempt = DeliveryAttempt.objects.create(message_id=made[1], state="failed", started_at=datetime.now(UTC))
    assert attempt.pk > max(DeliveryAttempt.objects.exclude(pk=attempt.pk).values_list("pk", flat=True))
    assert Message.objects.get(pk=made[1]).events.count() == events
    assert Message.objects.filter(created_at__gte=datetime.now(UTC) - timedelta(days=3650)).count() == 3
