"""messaging's hand-written SQL, each statement with the guarantee or measured win it carries.

The ORM is the default; what is here either states something the ORM cannot (a conditional
UPDATE … RETURNING) or is a win bench/profile_send.py measured (stated beside it).
tests/messaging/test_queries.py proves each returns what its ORM reading returns.
"""

from collections import namedtuple
from collections.abc import Iterable

from django.db import connection

from domains.models import DkimStatus, Domain
from messaging.models import EventRollup, Message, Suppression, Unsubscribe, UnsubscribeGroup
from pufferpost.queries import execute_prepared
from senders.models import Sender, SenderState
from templates_app.models import Template, TemplateVersion

SendContextRow = namedtuple(
    "SendContextRow",
    [
        "kind",
        "template_id",
        "slug",
        "name",
        "version_id",
        "version",
        "strict_variables",
        "from_address",
        "sender_id",
        "email",
        "suppression_reason",
        "suppressed_at",
        "group_id",
    ],
)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _send_context_sql() -> str:
    # Each kind fills its own named columns and leaves the others NULL.
    return f"""
        SELECT 'template' AS kind, t.id AS template_id, t.slug, t.name, v.id AS version_id, v.version,
               t.strict_variables, NULL AS from_address, NULL AS sender_id, NULL AS email,
               NULL AS suppression_reason, NULL::timestamptz AS suppressed_at, NULL AS group_id
          FROM {_table(Template)} t
          LEFT JOIN LATERAL (
              SELECT tv.id, tv.version FROM {_table(TemplateVersion)} tv
               WHERE tv.template_id = t.id ORDER BY tv.version DESC LIMIT 1
          ) v ON true
         WHERE t.workspace_id = %(ws)s AND t.archived_at IS NULL
           AND (t.id = ANY(%(template_ids)s::text[]) OR t.slug = ANY(%(slugs)s::text[]))
        UNION ALL
        SELECT 'sender', NULL, NULL, NULL, NULL, NULL, NULL, s.from_address, s.id, NULL, NULL, NULL, NULL
          FROM {_table(Sender)} s
         WHERE s.workspace_id = %(ws)s AND s.from_address = ANY(%(froms)s::text[])
           AND (%(test)s OR (s.state = %(active)s AND EXISTS (
               SELECT 1 FROM {_table(Domain)} d
                WHERE d.workspace_id = s.workspace_id AND d.dkim_status = %(verified)s
                  AND d.domain = regexp_replace(s.from_address, '^.*@', '')
           )))
        UNION ALL
        SELECT 'suppressed', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, x.email, x.reason, x.created_at, NULL
          FROM {_table(Suppression)} x
         WHERE x.workspace_id = %(ws)s AND x.email = ANY(%(tos)s::text[])
        UNION ALL
        SELECT 'group', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, g.id
          FROM {_table(UnsubscribeGroup)} g
         WHERE g.workspace_id = %(ws)s AND g.id = ANY(%(groups)s::text[])
        UNION ALL
        SELECT 'unsubscribed', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, u.email, NULL, NULL, u.group_id
          FROM {_table(Unsubscribe)} u
          JOIN {_table(UnsubscribeGroup)} ug ON ug.id = u.group_id
         WHERE ug.workspace_id = %(ws)s AND u.group_id = ANY(%(groups)s::text[]) AND u.email = ANY(%(tos)s::text[])
    """


_SEND_CONTEXT_TYPES = {
    "ws": "text",
    "template_ids": "text[]",
    "slugs": "text[]",
    "froms": "text[]",
    "tos": "text[]",
    "groups": "text[]",
    "active": "text",
    "verified": "text",
    "test": "boolean",
}


def send_context_rows(
    *,
    workspace_id: str,
    template_ids: Iterable[str],
    slugs: Iterable[str],
    froms: Iterable[str],
    tos: Iterable[str],
    groups: Iterable[str],
    livemode: bool = True,
) -> list[SendContextRow]:
    """What the send checks read, for a single send and a 100-item batch alike, in one round trip.

    - `template`: the active templates named by id or slug, with their latest version (or NULL);
    - `sender`: the active senders of `froms` whose exact from-domain is DKIM-verified (for a test
      key, `livemode=False`: every registered sender of `froms`);
    - `suppressed`: the suppressed addresses among `tos`, with reason and since when;
    - `group`: the workspace's groups among `groups`;
    - `unsubscribed`: the opt-outs of `tos` from `groups`.

    One UNION ALL instead of five ORM queries: five round trips would cost more than the
    send-context read does today (0.14 ms of CPU, bench/README.md). Prepared once per connection:
    planning the five branches as text took 0.37 ms of PostgreSQL CPU per send, more than the
    send's inserts and commit together (bench/README.md, send path).
    """
    params = {
        "ws": workspace_id,
        "template_ids": sorted(template_ids),
        "slugs": sorted(slugs),
        "froms": sorted(froms),
        "tos": sorted(tos),
        "groups": sorted(groups),
        "active": SenderState.ACTIVE,
        "verified": DkimStatus.VERIFIED,
        "test": not livemode,
    }
    with connection.cursor() as cursor:
        execute_prepared(
            cursor, name="pp_send_context", sql=_send_context_sql(), types=_SEND_CONTEXT_TYPES, params=params
        )
        return [SendContextRow._make(row) for row in cursor.fetchall()]


def messages_update_returning(
    *, message_ids: list[str], from_statuses: Iterable[str], assignments: dict
) -> list[tuple[str, str]]:
    """Set `assignments` on the messages of `message_ids` whose status is in `from_statuses`;
    returns (id, workspace_id) of exactly the rows it changed.

    The guarantee: the check and the write are one statement, and RETURNING names the rows it
    moved, so racing workers each record events only for the messages they moved. The ORM's
    `.filter(...).update(...)` returns a count, not which rows.
    """
    columns, params = [], []
    for name, value in assignments.items():
        model_field = Message._meta.get_field(name)
        columns.append(f"{connection.ops.quote_name(model_field.column)} = %s")
        params.append(model_field.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(Message)} SET {', '.join(columns)} WHERE id = ANY(%s) AND status = ANY(%s) "
            "RETURNING id, workspace_id",
            [*params, list(message_ids), list(from_statuses)],
        )
        return cursor.fetchall()


ROLLUP_KEY = ("workspace_id", "livemode", "bucket", "type", "sender_id", "template_id", "group_id", "bounce_class")


def event_rollup_add(rows: Iterable[tuple]) -> None:
    """Add counts to the hourly event rollup: `rows` are (*ROLLUP_KEY, n), one per distinct key.

    One `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` for all of them. The guarantee:
    two transactions counting into the same hour each add their count, with no lost update and no
    unique-violation retry, because the conflict takes the row lock and adds to the committed value.
    The ORM cannot say this: `bulk_create(update_conflicts=True)` can only overwrite a column with
    the new value (`SET n = EXCLUDED.n`), and `update(F("n") + …)` after a failed insert is two
    statements with a race between them. The rows go in key order, so transactions that share
    buckets lock them in the same order and cannot deadlock each other.
    """
    rows = sorted(rows)
    if not rows:
        return
    table = _table(EventRollup)
    columns = ", ".join(ROLLUP_KEY)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}, n) "
            "SELECT * FROM unnest(%s::text[], %s::bool[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::bigint[]) "
            f"ON CONFLICT ({columns}) DO UPDATE SET n = {table}.n + EXCLUDED.n",
            [list(column) for column in zip(*rows, strict=True)],
        )


def event_rollup_lock() -> None:
    """Hold off every rollup write until the caller's transaction ends (reads go on).

    The guarantee the rebuild needs: while it deletes and recounts a period, a worker recording an
    event blocks at its upsert, and its event is still uncommitted, so the recount does not see it;
    once the rebuild commits, the worker adds its count. Every event is counted exactly once. The
    ORM has no table locks; `SHARE ROW EXCLUSIVE` conflicts with the upsert's `ROW EXCLUSIVE` and
    with another rebuild, and not with `SELECT`.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {_table(EventRollup)} IN SHARE ROW EXCLUSIVE MODE")
