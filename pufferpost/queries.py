"""pufferpost's hand-written SQL, each statement with the guarantee or measured win beside it.

tests/pufferpost/test_queries.py proves each returns what its ORM reading returns.
"""

from functools import cache

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from pufferpost.models import ApiKey, Workspace


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
        f"WHERE k.{quote('key_hash')} = %s AND k.{quote('revoked_at')} IS NULL"
    )
    return sql, key_fields, workspace_fields


def api_key_with_workspace(*, key_hash: str) -> ApiKey | None:
    """`ApiKey.objects.select_related("workspace").filter(key_hash=…, revoked_at=None).first()`.

    Hand-written because it runs on every request: compiling that ORM query cost 0.47 ms of CPU
    a request, this 0.09 ms (bench/profile_send.py, 2026-11-24), out of a ~1 ms send budget.
    """
    sql, key_fields, workspace_fields = _api_key_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
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
