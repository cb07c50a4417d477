"""messaging_message keeps the indexes a read or a guarantee needs: 19 → 9.

Dropped: the five foreign keys' own indexes (workspace and sender are prefixes of the page and
reputation indexes; template is served by the template index, which now leads with it; version and
group are only read when one is deleted, which the API never does), the `varchar_pattern_ops`
twins Django adds for text keys (nothing runs LIKE on an id), including the primary key's. Every
read's plan is in tests/messaging/test_indexes.py; bench/README.md has the before/after.

Only indexes change: state records `db_index=False`, the database drops the indexes by name (no
foreign-key constraint is dropped and re-validated, as AlterField would).
"""

from django.db import migrations, models

FOREIGN_KEYS = {
    "workspace": "messaging_message_workspace_id_88c47f7c",
    "sender": "messaging_message_sender_id_7a7088e6",
    "template": "messaging_message_template_id_922791e8",
    "template_version": "messaging_message_template_version_id_6e8a713e",
    "unsubscribe_group": "messaging_message_unsubscribe_group_id_4d8ce772",
}
TEXT_KEYS = {"id", "workspace", "sender", "template", "unsubscribe_group"}  # template_version's key is an integer


def _index(name, column, opclass=""):
    return f'CREATE INDEX IF NOT EXISTS "{name}" ON "messaging_message" ("{column}"{opclass})'


def _drops():
    operations = []
    for field, name in FOREIGN_KEYS.items():
        column = f"{field}_id"
        operations.append(migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"', _index(name, column)))
        if field in TEXT_KEYS:
            like = f"{name}_like"
            operations.append(
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{like}"', _index(like, column, " varchar_pattern_ops"))
            )
    like = "messaging_message_id_762a91ea_like"
    operations.append(migrations.RunSQL(f'DROP INDEX IF EXISTS "{like}"', _index(like, "id", " varchar_pattern_ops")))
    return operations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0010_partition_by_month"),
        ("pufferpost", "0005_workspace_caps"),
        ("senders", "0001_initial"),
        ("templates_app", "0003_strict_variables"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="message", name="message_template_page_idx"),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["template", "-created_at", "-id"], name="message_template_page_idx"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name=field,
                    field=models.ForeignKey(
                        db_index=False,
                        null=field in ("template", "template_version", "unsubscribe_group"),
                        blank=field in ("template", "template_version", "unsubscribe_group"),
                        on_delete=on_delete,
                        related_name="messages",
                        to=to,
                    ),
                )
                for field, to, on_delete in [
                    ("workspace", "pufferpost.workspace", models.deletion.CASCADE),
                    ("sender", "senders.sender", models.deletion.PROTECT),
                    ("template", "templates_app.template", models.deletion.PROTECT),
                    ("template_version", "templates_app.templateversion", models.deletion.PROTECT),
                    ("unsubscribe_group", "messaging.unsubscribegroup", models.deletion.SET_NULL),
                ]
            ],
            database_operations=_drops(),
        ),
    ]
