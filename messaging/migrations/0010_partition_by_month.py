"""Partition the message tables by month of the message id (see messaging/partitions.py).

Database only: Django's model state is unchanged (same fields, same single-column primary keys).
Each table is rebuilt as a partitioned table with the same columns, defaults, checks, identity,
indexes and foreign keys, read from the catalog at migration time (so an index another migration
added or dropped before this one is carried over as it is). Rows are copied, never dropped; the
reverse rebuilds plain tables the same way. Primary keys gain the partition key where they lack
it (events and attempts: `(id, message_id)`); ids are ULIDs or identity values, unique on their own.
"""

from datetime import UTC, datetime

from django.db import migrations
from ulid import ULID

TABLES = {
    "messaging_message": ("id", "id"),  # table: (partition key, Django's primary key column)
    "messaging_messageevent": ("message_id", "id"),
    "messaging_deliveryattempt": ("message_id", "id"),
    "messaging_messagecontent": ("message_id", "message_id"),
    "messaging_messagebody": ("message_id", "message_id"),
    "messaging_messageattachment": ("message_id", "id"),
}
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
AHEAD = 3


def _bound(moment):
    millis = int(moment.timestamp() * 1000)
    return "msg_" + str(ULID.from_bytes(millis.to_bytes(6, "big") + bytes(10)))


def _add_months(month, n):
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _q(name):
    return '"' + name.replace('"', '""') + '"'


def _capture(cursor, table):
    cursor.execute(
        """SELECT ci.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
             JOIN pg_class ci ON ci.oid = i.indexrelid
            WHERE i.indrelid = to_regclass(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                                 AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
            ORDER BY ci.relname""",
        [table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        """SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u', 'x') AND conparentid = 0
            ORDER BY contype, conname""",
        [table],
    )
    keys = cursor.fetchall()
    cursor.execute(
        """SELECT a.attname FROM pg_attribute a
            WHERE a.attrelid = to_regclass(%s) AND a.attidentity <> '' AND NOT a.attisdropped""",
        [table],
    )
    identity = [row[0] for row in cursor.fetchall()]
    return indexes, keys, identity


def _foreign_keys(cursor, tables):
    """Every top-level foreign key from or to one of `tables`: (table, name, definition)."""
    cursor.execute(
        """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE contype = 'f' AND conparentid = 0
              AND (conrelid = ANY(%s::regclass[]) OR confrelid = ANY(%s::regclass[]))
            ORDER BY 1, 2""",
        [tables, tables],
    )
    return cursor.fetchall()


def _month_range(cursor, now):
    """The months to create: from the oldest message id's month (not before EPOCH) to AHEAD ahead."""
    lo, hi = _bound(EPOCH), _bound(_add_months(datetime(now.year, now.month, 1, tzinfo=UTC), AHEAD + 1))
    cursor.execute("SELECT min(id) FROM messaging_message WHERE id >= %s AND id < %s", [lo, hi])
    oldest = cursor.fetchone()[0]
    first = datetime(now.year, now.month, 1, tzinfo=UTC)
    if oldest:
        created = ULID.from_str(oldest[4:]).datetime
        first = min(first, datetime(created.year, created.month, 1, tzinfo=UTC))
    result, month = [], first
    while month <= _add_months(datetime(now.year, now.month, 1, tzinfo=UTC), AHEAD):
        result.append(month)
        month = _add_months(month, 1)
    return result


def _rebuild(schema_editor, partitioned):
    connection = schema_editor.connection
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        tables = [t for t in TABLES if _is_partitioned(cursor, t) != partitioned]
        if not tables:
            return
        captured = {t: _capture(cursor, t) for t in tables}
        fks = _foreign_keys(cursor, tables)
        months = _month_range(cursor, now) if partitioned else []
        for table, name, _ in fks:
            cursor.execute(f"ALTER TABLE {_q(table)} DROP CONSTRAINT {_q(name)}")
        for table in tables:
            key, pk_column = TABLES[table]
            indexes, keys, identity = captured[table]
            old = table + "_prepartition" if partitioned else table + "_partitioned"
            cursor.execute(f"ALTER TABLE {_q(table)} RENAME TO {_q(old)}")
            like = "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS"
            tail = f" PARTITION BY RANGE ({_q(key)})" if partitioned else ""
            cursor.execute(f"CREATE TABLE {_q(table)} (LIKE {_q(old)} {like}){tail}")
            if partitioned:
                for month in months:
                    cursor.execute(
                        f"CREATE TABLE {_q(f'{table}_p{month.year:04d}_{month.month:02d}')} PARTITION OF {_q(table)} "
                        "FOR VALUES FROM (%s) TO (%s)",
                        [_bound(month), _bound(_add_months(month, 1))],
                    )
                cursor.execute(f"CREATE TABLE {_q(table + '_default')} PARTITION OF {_q(table)} DEFAULT")
            cursor.execute(f"INSERT INTO {_q(table)} SELECT * FROM {_q(old)}")
            cursor.execute(f"SELECT count(*) FROM {_q(old)}")
            moved = cursor.fetchone()[0]
            cursor.execute(f"SELECT count(*) FROM {_q(table)}")
            if cursor.fetchone()[0] != moved:
                raise RuntimeError(f"{table}: row count changed while rebuilding; nothing was changed")
            cursor.execute(f"DROP TABLE {_q(old)}")
            for name, _kind, definition in keys:
                if definition.startswith("PRIMARY KEY"):
                    columns = [key, pk_column] if key == pk_column else [pk_column, key]
                    if not partitioned:
                        columns = [pk_column]
                    definition = "PRIMARY KEY (" + ", ".join(dict.fromkeys(_q(c) for c in columns)) + ")"
                elif partitioned and key not in definition.split("(", 1)[1]:
                    raise RuntimeError(f"{table}: {name} ({definition}) does not include {key}; cannot partition")
                cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} {definition}")
            for _, definition in indexes:
                cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))
            for column in identity:
                # LIKE made a new sequence; keep its name and continue after the copied values.
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
                sequence = cursor.fetchone()[0]
                wanted = f"{table}_{column}_seq"
                if sequence and sequence.split(".")[-1].strip('"') != wanted:
                    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {_q(wanted)}")
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence(%s, %s), coalesce(max({_q(column)}), 0) + 1, false) "
                    f"FROM {_q(table)}",
                    [table, column],
                )
        for table, name, definition in fks:
            cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} {definition}")
        for table in tables:
            cursor.execute(f"ANALYZE {_q(table)}")


def _is_partitioned(cursor, table):
    cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [table])
    return cursor.fetchone() is not None


def forwards(apps, schema_editor):
    _rebuild(schema_editor, partitioned=True)


def backwards(apps, schema_editor):
    _rebuild(schema_editor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0009_bounce_classes"), ("pufferpost", "0005_workspace_caps")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
