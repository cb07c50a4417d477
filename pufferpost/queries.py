"""pufferpost's hand-written SQL, each statement with the guarantee or measured win beside it,
and the prepared-statement runner the apps' per-request statements share.

tests/pufferpost/test_queries.py proves each returns what its ORM reading returns, and that a
prepared statement returns what its text returns.
"""

import re
import time
import weakref
from functools import cache

from django.db import DatabaseError, connection
from django.db.backends.base.base import BaseDatabaseWrapper

from pufferpost.models import ApiKey, Workspace

# The statements each open database connection (psycopg's, so a reconnect starts empty) has prepared.
_prepared_on: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def execute_prepared(cursor, *, name: str, sql: str, types: dict[str, str], params: dict) -> None:
    """Run `sql` (with `%(param)s` placeholders, one per key of `types`, which maps each to its SQL
    type) as a statement PREPAREd once per database connection, then EXECUTEd with `params`.

    For the statements every request runs: PostgreSQL parses and plans a statement sent as text
    each time, and planning the send-context read alone cost more than everything else the send
    asks of the server (bench/README.md, send path). Once prepared, PostgreSQL plans it at most a
    few times per connection. The PREPARE is connection setup, like the time zone Django sets on
    connect: it goes on the raw connection, so a request's query log (and its query budget) holds
    only the EXECUTE. A PREPARE survives the rollback of the transaction it ran in. It needs a
    server session per connection: behind a pooler in transaction mode, point DATABASE_URL at
    PostgreSQL itself.
    """
    raw = cursor.db.connection
    prepared = _prepared_on.setdefault(raw, set())
    order = list(types)
    if name not in prepared:
        text = re.sub(r"%\((\w+)\)s", lambda m: f"${order.index(m.group(1)) + 1}", sql)
        # Django's error classes, as for every other statement (a timeout is an OperationalError).
        with cursor.db.wrap_database_errors:
            raw.execute(f"PREPARE {name}({', '.join(types.values())}) AS {text}")
        prepared.add(name)
    try:
        cursor.execute(f"EXECUTE {name}({', '.join(['%s'] * len(order))})", [params[key] for key in order])
    except DatabaseError as exc:
        # A migration changed a column the statement returns (PostgreSQL then refuses the prepared
        # statement: 0A000), or the session lost it (26000): retire the connection at the end of
        # this request or task, so the next one prepares afresh.
        if getattr(exc.__cause__, "sqlstate", None) in ("0A000", "26000"):
            cursor.db.close_at = time.monotonic()
        raise


@cache
def _api_key_sql() -> tuple[str, list[str], list[str]]:
    # Built once per process from the models' own field lists, so a new column is read too.
    quote = connection.ops.quote_name
    key_fields = [f.attname for f in ApiKey._meta.concrete_fields]
    workspace_fields = [f.attname for f in Workspace._meta.concrete_fields]
    columns = [f"k.{quote(ApiKey._meta.get_field(name).column)}" for name in key_fields] + [
        f"w.{quote(Workspace._meta.get_field(name).column)}" for name in workspace_fields
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(ApiKey._meta.db_table)} k "
        f"JOIN {quote(Workspace._meta.db_table)} w ON w.{quote('id')} = k.{quote('workspace_id')} "
        f"WHERE k.{quote('key_hash')} = %(key_hash)s AND k.{quote('revoked_at')} IS NULL"
    )
    return sql, key_fields, workspace_fields


def api_key_with_workspace(*, key_hash: str) -> ApiKey | None:
    """`ApiKey.objects.select_related("workspace").filter(key_hash=…, revoked_at=None).first()`.

    Hand-written because it runs on every request: compiling that ORM query cost 0.47 ms of CPU
    a request, this 0.09 ms (bench/profile_send.py, 2026-11-24), out of a ~1 ms send budget;
    prepared, PostgreSQL no longer plans it per request either.
    """
    sql, key_fields, workspace_fields = _api_key_sql()
    with connection.cursor() as cursor:
        execute_prepared(cursor, name="pp_api_key", sql=sql, types={"key_hash": "text"}, params={"key_hash": key_hash})
        row = cursor.fetchone()
    if row is None:
        return None
    key = ApiKey.from_db(connection.alias, key_fields, row[: len(key_fields)])
    key.workspace = Workspace.from_db(connection.alias, workspace_fields, row[len(key_fields) :])
    return key


def database_answers(db: BaseDatabaseWrapper) -> None:
    """Send `SELECT 1` over `db` (e.g. `connections["default"]`) and read the answer, or raise
    the driver's error.

    The readiness probe's guarantee (pufferpost/health.py): the server answers a statement on
    this process's connection, whatever tables exist, so an unmigrated database is reported by
    the migrations check and not as a broken database. The ORM sends no statement without a
    model; Django's own `connection.is_usable()` sends the same `SELECT 1` but swallows the error
    the probe reports.
    """
    with db.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
