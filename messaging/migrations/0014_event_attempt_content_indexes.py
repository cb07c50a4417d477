"""Events, delivery attempts and kept content keep the indexes a read or a guarantee needs.

Every delivered message writes four events, an attempt twice and its content once; each index is
one more insertion per row. Dropped:

- events: the message foreign key's own index (event_timeline_idx leads with message_id and
  serves every read by message), and the `varchar_pattern_ops` twins Django adds for text keys
  (nothing runs LIKE on an id) of the message, workspace and primary keys. The workspace's own
  index stays, renamed event_workspace_idx: deleting a workspace finds its events through it.
- attempts: the message foreign key's index and its twin (attempt_message_idx leads with
  message_id).
- content: the primary key's twin.

Events 7 → 3 indexes, attempts 5 → 3, content 2 → 1. The reads' plans are in
tests/messaging/test_indexes.py; bench/README.md has the before/after.

Only indexes change, as in 0011: state records `db_index=False`, the database drops the indexes
by name (no foreign-key constraint is dropped and re-validated, as AlterField would). On the
partitioned tables, dropping or renaming the parent's index does the same for every partition's.
"""

from django.db import migrations, models


def _index(table, name, column, like):
    opclass = " varchar_pattern_ops" if like else ""
    return f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}"{opclass})'


EVENT, ATTEMPT, CONTENT = "messaging_messageevent", "messaging_deliveryattempt", "messaging_messagecontent"
# (table, column, index, whether it is a varchar_pattern_ops twin)
DROPS = [
    (EVENT, "message_id", "messaging_messageevent_message_id_2f3585a9", False),
    (EVENT, "message_id", "messaging_messageevent_message_id_2f3585a9_like", True),
    (EVENT, "workspace_id", "messaging_messageevent_workspace_id_b7ba9aa9_like", True),
    (EVENT, "id", "messaging_messageevent_id_26f300eb_like", True),
    (ATTEMPT, "message_id", "messaging_deliveryattempt_message_id_3317fec4", False),
    (ATTEMPT, "message_id", "messaging_deliveryattempt_message_id_3317fec4_like", True),
    (CONTENT, "message_id", "messaging_messagecontent_message_id_6f565e0a_like", True),
]
WORKSPACE_INDEX = "messaging_messageevent_workspace_id_b7ba9aa9"


class Migration(migrations.Migration):
    dependencies = [("messaging", "0013_event_rollup")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *(
                    migrations.AlterField(
                        model_name=model,
                        name=name,
                        field=models.ForeignKey(
                            db_index=False, on_delete=models.deletion.CASCADE, related_name=related_name, to=to
                        ),
                    )
                    for model, name, related_name, to in [
                        ("messageevent", "message", "events", "messaging.message"),
                        ("messageevent", "workspace", "+", "pufferpost.workspace"),
                        ("deliveryattempt", "message", "delivery_attempts", "messaging.message"),
                    ]
                ),
                migrations.AddIndex(
                    model_name="messageevent",
                    index=models.Index(fields=["workspace"], name="event_workspace_idx"),
                ),
            ],
            database_operations=[
                *(
                    migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"', _index(table, name, column, like))
                    for table, column, name, like in DROPS
                ),
                migrations.RunSQL(
                    f'ALTER INDEX "{WORKSPACE_INDEX}" RENAME TO "event_workspace_idx"',
                    f'ALTER INDEX "event_workspace_idx" RENAME TO "{WORKSPACE_INDEX}"',
                ),
            ],
        ),
    ]
