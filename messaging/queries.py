"""messaging's hand-written SQL, each statement with the guarantee or measured win it carries.

The ORM is the default; what is here either states something the ORM cannot (a conditional
UPDATE … RETURNING, the commit point's one-statement UPDATE + INSERT, a table lock, a setting
local to the transaction) or is a win bench/profile_send.py measured (stated beside it).
tests/messaging/test_queries.py proves each does what its ORM reading does.
"""

import json
from collections import namedtuple
from collections.abc import Iterable
from datetime import datetime

from django.db import connection

from domains.models import DkimStatus, Domain
from messaging.models import (
    AttemptState,
    DeliveryAttempt,
    EventRollup,
    Message,
    MessageContent,
    MessageEvent,
    MessageStatus,
    Suppression,
    Unsubscribe,
    UnsubscribeGroup,
)
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
    sent as text, parsing and planning the five branches took 0.37 ms of PostgreSQL CPU per send,
    about as much as the send's inserts and commit together (bench/README.md, send path).
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


def _event_rollup_add_sql() -> str:
    table = _table(EventRollup)
    columns = ", ".join(ROLLUP_KEY)
    return (
        f"INSERT INTO {table} ({columns}, n) SELECT * FROM jsonb_to_recordset(%(rows)s) AS r("
        "workspace_id text, livemode boolean, bucket timestamptz, type text, sender_id text, template_id text, "
        "group_id text, bounce_class text, n bigint) "
        f"ON CONFLICT ({columns}) DO UPDATE SET n = {table}.n + EXCLUDED.n"
    )


def event_rollup_add(rows: Iterable[tuple]) -> None:
    """Add counts to the hourly event rollup: `rows` are (*ROLLUP_KEY, n), one per distinct key.

    One `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` for all of them. The guarantee:
    two transactions counting into the same hour each add their count, with no lost update and no
    unique-violation retry, because the conflict takes the row lock and adds to the committed value.
    The ORM cannot say this: `bulk_create(update_conflicts=True)` can only overwrite a column with
    the new value (`SET n = EXCLUDED.n`), and `update(F("n") + …)` after a failed insert is two
    statements with a race between them. The rows go in key order, so transactions that share
    buckets lock them in the same order and cannot deadlock each other.

    It runs in every send's transaction, so it is prepared and takes its rows as one JSON array:
    0.16 ms of PostgreSQL CPU and 0.11 ms here per single-row add, commit included, where nine
    arrays sent as text took 0.24 ms and 0.20 ms (bench/README.md, send path).
    """
    rows = sorted(rows)
    if not rows:
        return
    payload = [dict(zip((*ROLLUP_KEY, "n"), row, strict=True)) for row in rows]
    with connection.cursor() as cursor:
        execute_prepared(
            cursor,
            name="pp_event_rollup_add",
            sql=_event_rollup_add_sql(),
            types={"rows": "jsonb"},
            params={"rows": json.dumps(payload, default=datetime.isoformat)},
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


def messages_claim_due_returning(*, message_ids: list[str], now: datetime, until: datetime) -> list[str]:
    """Of `message_ids`, claim the `queued` messages whose `next_attempt_at` is due and that have
    no attempt in flight: stamp `claimed_at = now` and `next_attempt_at = until`; returns their ids.

    The guarantee (messaging/delivery/claim.py): the check and the claim are one statement and
    RETURNING names the rows it claimed, so the sweeper and a redelivered task racing on one
    message claim it once; the loser sees the winner's `next_attempt_at` and gets nothing. The
    ORM's `.filter(...).update(...)` returns a count, not which rows.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table(Message)} m SET claimed_at = %s, next_attempt_at = %s
                 WHERE m.id = ANY(%s) AND m.status = %s AND m.next_attempt_at <= %s
                   AND NOT EXISTS (SELECT 1 FROM {_table(DeliveryAttempt)} a
                                    WHERE a.message_id = m.id AND a.state = %s)
             RETURNING m.id""",
            [now, until, list(message_ids), MessageStatus.QUEUED, now, AttemptState.IN_FLIGHT],
        )
        return [message_id for (message_id,) in cursor.fetchall()]


def attempt_commit_in_flight(
    *, message_id: str, token: datetime, subject: str, now: datetime, until: datetime, recipients: list[str]
) -> int | None:
    """The commit point (messaging/delivery/commit_point.py): if the message is still `queued`
    with `claimed_at = token`, renew its lease to `until`, record `subject`, and insert an
    `in_flight` DeliveryAttempt for `recipients`; returns the attempt's id, or None when the claim
    was lost (nothing written).

    The guarantee: one statement, so in autocommit mode it commits on its own, both rows or
    neither, in one round trip just before the payload is sent; the ORM reading (a conditional
    `update()` then `create()`) needs a transaction around two statements to say the same.

    Prepared once per connection: it runs once per message, and PostgreSQL planning it (the UPDATE
    over every monthly partition, then the INSERT) took about as long as running it.
    """
    with connection.cursor() as cursor:
        execute_prepared(
            cursor,
            name="pp_commit_point",
            sql=f"""WITH fenced AS (
                    UPDATE {_table(Message)} SET next_attempt_at = %(until)s, subject = %(subject)s,
                           updated_at = %(now)s
                     WHERE id = %(message_id)s AND status = %(queued)s AND claimed_at = %(token)s
                 RETURNING id)
                INSERT INTO {_table(DeliveryAttempt)} (message_id, state, started_at, mx_host, response, recipients)
                SELECT id, %(state)s, %(now)s, '', '', %(recipients)s FROM fenced RETURNING id""",
            types={
                "until": "timestamptz",
                "subject": "text",
                "now": "timestamptz",
                "message_id": "text",
                "queued": "text",
                "token": "timestamptz",
                "state": "text",
                "recipients": "jsonb",
            },
            params={
                "until": until,
                "subject": subject,
                "now": now,
                "message_id": message_id,
                "queued": MessageStatus.QUEUED,
                "token": token,
                "state": AttemptState.IN_FLIGHT,
                "recipients": json.dumps({r: {"outcome": AttemptState.IN_FLIGHT.value} for r in recipients}),
            },
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def attempts_finish(attempts: list[DeliveryAttempt]) -> None:
    """`DeliveryAttempt.objects.bulk_update(attempts, ["state", "finished_at", "mx_host",
    "response", "recipients"])` as one `UPDATE … FROM jsonb_to_recordset(…)`.

    The measured win: with this and `messages_bookkeep` instead of `bulk_update`'s CASE per row
    and column, the worker's CPU per delivered message went from 3.6 ms to 2.6 ms (whole
    `deliver_messages`, bench/README.md, "What changed, and what each change measured").

    The rows go as one JSON array, not text arrays (which psycopg escapes element by element in
    Python, a callback per quote of every recipients document; see `message_contents_upsert`).
    """
    rows = [
        {
            "id": a.pk,
            "state": a.state,
            "finished_at": a.finished_at.isoformat() if a.finished_at else None,
            "mx_host": a.mx_host,
            "response": a.response,
            "recipients": a.recipients,
        }
        for a in attempts
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table(DeliveryAttempt)} a
                   SET state = v.state, finished_at = v.finished_at, mx_host = v.mx_host,
                       response = v.response, recipients = v.recipients
                  FROM jsonb_to_recordset(%s::jsonb)
                       AS v(id bigint, state text, finished_at timestamptz, mx_host text, response text, recipients jsonb)
                 WHERE a.id = v.id""",
            [json.dumps(rows)],
        )


# The bookkeeping a delivery flush writes to each message it touched, shared by the two
# statements below: the record each row of the JSON array becomes, and the columns it sets.
_BOOKKEEPING_RECORD = "v(id text, attempts integer, next_attempt_at timestamptz, subject text, last_response text)"
_BOOKKEEPING_SET = (
    "attempts = v.attempts, next_attempt_at = v.next_attempt_at, subject = v.subject, last_response = v.last_response"
)


def _bookkeeping_rows(messages: list[Message]) -> str:
    # One JSON array, not text arrays: psycopg escapes text arrays element by element in Python
    # (a callback per quote in every subject and response), JSON it escapes in C.
    return json.dumps(
        [
            {
                "id": m.pk,
                "attempts": m.attempts,
                "next_attempt_at": m.next_attempt_at,
                "subject": m.subject,
                "last_response": m.last_response,
            }
            for m in messages
        ],
        default=datetime.isoformat,
    )


def messages_bookkeep(messages: list[Message], *, token: datetime) -> None:
    """`Message.objects.filter(claimed_at=token).bulk_update(messages, ["attempts",
    "next_attempt_at", "subject", "last_response"])` as one `UPDATE … FROM jsonb_to_recordset(…)`:
    rows claimed since by another worker (another token) are left alone.

    The measured win: see `attempts_finish` (3.6 → 2.6 ms of worker CPU per message, both together;
    measured with the rows as text arrays, which now go as the JSON array the transition sends).
    """
    if not messages:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table(Message)} m SET {_BOOKKEEPING_SET}
                  FROM jsonb_to_recordset(%s::jsonb) AS {_BOOKKEEPING_RECORD}
                 WHERE m.id = v.id AND m.claimed_at = %s""",
            [_bookkeeping_rows(messages), token],
        )


def messages_bookkeep_transition_returning(
    messages: list[Message], *, token: datetime, from_statuses: Iterable[str], to_status: str, now: datetime
) -> list[tuple[str, str]]:
    """`messages_bookkeep` and `messages_update_returning` (to `to_status`, `updated_at = now`) in
    one statement, for the rows still at one of `from_statuses` under this claim (`claimed_at =
    token`); returns (id, workspace_id) of exactly the rows it changed, the others untouched.

    The guarantee is theirs (the claim's fence, a status that never moves backwards, RETURNING
    naming the rows moved); the measured win is one rewrite of each delivered message's row where
    the bookkeeping and the `sent` and `delivered` transitions were three, each a non-HOT update
    across messaging_message's indexes (bench/README.md, "Delivery loop (#9)").
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {_table(Message)} m SET status = %s, updated_at = %s, {_BOOKKEEPING_SET}
                  FROM jsonb_to_recordset(%s::jsonb) AS {_BOOKKEEPING_RECORD}
                 WHERE m.id = v.id AND m.claimed_at = %s AND m.status = ANY(%s)
             RETURNING m.id, m.workspace_id""",
            [to_status, now, _bookkeeping_rows(messages), token, list(from_statuses)],
        )
        return cursor.fetchall()


def message_events_insert(events: list[MessageEvent]) -> list[MessageEvent]:
    """`MessageEvent.objects.bulk_create(events)` with the rows as one JSON array: ids from the
    instances, `recorded_at` stamped as `auto_now_add` stamps it; returns the events, saved.

    The measured win is `message_contents_upsert`'s (text arrays escaped in Python): 100 events
    (a flush's `sent` and `delivered`) cost 4.2–4.4 ms of worker CPU as `bulk_create`, 1.7 ms this
    way, building the instances included (bench/README.md, "Delivery loop (#9)"). Only the
    lifecycle calls it, right before it tells the rollup and the listeners (`_notify`): an event
    inserted any other way would bypass them.
    """
    if not events:
        return events
    recorded_at = MessageEvent._meta.get_field("recorded_at")
    rows = []
    for event in events:
        recorded_at.pre_save(event, add=True)
        rows.append(
            {
                "id": event.pk,
                "message_id": event.message_id,
                "workspace_id": event.workspace_id,
                "type": event.type,
                "occurred_at": event.occurred_at.isoformat(),
                "recorded_at": event.recorded_at.isoformat(),
                "detail": event.detail,
            }
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {_table(MessageEvent)} (id, message_id, workspace_id, type, occurred_at, recorded_at, detail)
                SELECT id, message_id, workspace_id, type, occurred_at, recorded_at, detail
                  FROM jsonb_to_recordset(%s::jsonb) AS r(id text, message_id text, workspace_id text, type text,
                       occurred_at timestamptz, recorded_at timestamptz, detail jsonb)""",
            [json.dumps(rows)],
        )
    for event in events:
        event._state.adding, event._state.db = False, connection.alias
    return events


def message_contents_upsert(contents: list[MessageContent]) -> None:
    """`MessageContent.objects.bulk_create(contents, update_conflicts=True, unique_fields=["message"],
    update_fields=["subject", "text", "html", "built_at"])` with the rows as one JSON array.

    The measured win: Django sends a bulk insert as text arrays (`UNNEST`), which psycopg escapes
    element by element in Python, a regular-expression callback for every quote in the HTML; one
    JSON document is escaped in C. 50 contents of ~5 KB: 7.6–8.1 ms of worker CPU as
    `bulk_create`, 1.9 ms as this (bench/README.md, "Delivery loop (#9)")."""
    if not contents:
        return
    rows = [
        {"message_id": c.message_id, "subject": c.subject, "text": c.text, "html": c.html, "built_at": c.built_at}
        for c in contents
    ]
    table = _table(MessageContent)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (message_id, subject, text, html, built_at)
                SELECT message_id, subject, text, html, built_at FROM jsonb_to_recordset(%s::jsonb)
                    AS r(message_id text, subject text, text text, html text, built_at timestamptz)
                ON CONFLICT (message_id) DO UPDATE
                   SET subject = EXCLUDED.subject, text = EXCLUDED.text, html = EXCLUDED.html,
                       built_at = EXCLUDED.built_at""",
            [json.dumps(rows, default=datetime.isoformat)],
        )


def statement_timeout_local(*, milliseconds: int) -> None:
    """Cap every statement until the end of the caller's transaction at `milliseconds`.

    The guarantee (a metrics scrape never waits long on a busy database) is a session setting:
    the ORM has no way to set one. `SET LOCAL` ends with the transaction, so it must run inside one.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(milliseconds)}ms"])


def default_partition_rows_delete(*, partition: str, key: str, at_least: str, below: str) -> int:
    """Delete the rows of `partition` (a partitioned table's default partition, by name) whose
    `key` is in [at_least, below); the number deleted (messaging.partitions' late rows).

    The ORM reading is `Model.objects.filter(<key>__gte=at_least, <key>__lt=below).delete()` on
    the parent, and it equals this while every row of that range is in the default partition.
    The guarantee is that this can only ever touch rows already in the default partition: the
    parent's DELETE would reach every partition the range covers, so a wrong bound would delete
    a kept month's rows. The ORM has no model for a partition.
    """
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {quote(partition)} WHERE {quote(key)} >= %s AND {quote(key)} < %s", [at_least, below]
        )
        return cursor.rowcount
