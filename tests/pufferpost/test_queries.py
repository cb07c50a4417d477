"""pufferpost/queries.py's SQL returns exactly what its ORM reading returns, and a prepared
statement what its text returns."""

import threading
import time

import pytest
from django.db import (
    DEFAULT_DB_ALIAS,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    connection,
    connections,
    transaction,
)
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pufferpost.models import ApiKey
from pufferpost.queries import api_key_with_workspace, database_answers, execute_prepared
from pufferpost.services import api_key_create
from tests.factories import WorkspaceFactory


def _values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_the_api_key_lookup_equals_its_orm_reading(db):
    workspace, other = WorkspaceFactory(), WorkspaceFactory(sending_paused=True)
    live, _ = api_key_create(workspace=workspace, name="live", scopes=["messages:send"])
    revoked, _ = api_key_create(workspace=workspace, name="revoked", scopes=["messages:read"])
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    elsewhere, _ = api_key_create(workspace=other, name="other", scopes=["workspace:read"])

    for key_hash in (live.key_hash, revoked.key_hash, elsewhere.key_hash, "0" * 64):
        orm = ApiKey.objects.select_related("workspace").filter(key_hash=key_hash, revoked_at__isnull=True).first()
        sql = api_key_with_workspace(key_hash=key_hash)
        if orm is None:
            assert sql is None
            continue
        assert (_values(sql), _values(sql.workspace)) == (_values(orm), _values(orm.workspace))
    assert api_key_with_workspace(key_hash=live.key_hash) is not None
    assert api_key_with_workspace(key_hash=revoked.key_hash) is None


def test_the_database_probe_answers_exactly_when_django_finds_the_connection_usable(db):
    """Its ORM-side reading is Django's own `is_usable()`: both say yes on a live connection, and
    both say no once the server ended it (the probe with the driver's error, for the report)."""
    probed = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        database_answers(probed)
        assert probed.is_usable()
        with probed.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(100):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.05)
        assert not probed.is_usable()
        with pytest.raises(OperationalError):
            database_answers(probed)
    finally:
        probed.close()


SUM = "SELECT %(a)s + %(b)s, %(a)s * 2, %(label)s"
SUM_TYPES = {"a": "integer", "b": "integer", "label": "text"}


def _prepared(cursor) -> set[str]:
    cursor.execute("SELECT name FROM pg_prepared_statements")
    return {name for (name,) in cursor.fetchall()}


def test_a_prepared_statement_answers_what_its_text_answers_and_is_prepared_once_per_connection(db):
    with connection.cursor() as cursor:
        cursor.execute(SUM, {"a": 2, "b": 3, "label": "it's"})
        as_text = cursor.fetchall()
        assert "pp_test_sum" not in _prepared(cursor)
        for _ in range(3):  # a second PREPARE of the name would fail: it is sent once
            execute_prepared(
                cursor, name="pp_test_sum", sql=SUM, types=SUM_TYPES, params={"a": 2, "b": 3, "label": "it's"}
            )
            assert cursor.fetchall() == as_text == [(5, 4, "it's")]
        assert "pp_test_sum" in _prepared(cursor)


def test_a_statement_prepared_in_a_rolled_back_transaction_stays_prepared(db):
    with pytest.raises(RuntimeError), transaction.atomic(), connection.cursor() as cursor:
        execute_prepared(
            cursor, name="pp_test_rollback", sql=SUM, types=SUM_TYPES, params={"a": 1, "b": 1, "label": ""}
        )
        raise RuntimeError("the request failed")
    with connection.cursor() as cursor:
        execute_prepared(
            cursor, name="pp_test_rollback", sql=SUM, types=SUM_TYPES, params={"a": 4, "b": 1, "label": "x"}
        )
        assert cursor.fetchall() == [(5, 8, "x")]


def test_every_connection_prepares_for_itself_and_a_request_logs_only_the_execute(db):
    workspace = WorkspaceFactory()
    key, _ = api_key_create(workspace=workspace, name="live", scopes=["messages:send"])
    found = []

    def elsewhere():  # a thread has a database connection of its own, which has prepared nothing
        try:
            with CaptureQueriesContext(connection) as captured:
                found.append(api_key_with_workspace(key_hash="0" * 64))
            found.append([query["sql"].split("(")[0] for query in captured.captured_queries])
        finally:
            connection.close()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(timeout=30)
    assert found == [None, ["EXECUTE pp_api_key"]]
    with CaptureQueriesContext(connection) as captured:
        assert api_key_with_workspace(key_hash=key.key_hash).pk == key.pk
    assert [query["sql"].split("(")[0] for query in captured.captured_queries] == ["EXECUTE pp_api_key"]


def test_a_prepared_statement_the_schema_outgrew_retires_its_connection(db):
    """A migration that changes a returned column's type makes PostgreSQL refuse the prepared
    statement; the connection is then closed at the end of the request, and the next prepares afresh."""
    kept, connection.close_at = connection.close_at, None  # a connection without an age limit
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE pp_test_outgrown (name varchar(10))")
        cursor.execute("INSERT INTO pp_test_outgrown VALUES ('jane')")
        read = {
            "name": "pp_test_outgrown",
            "sql": "SELECT name FROM pp_test_outgrown WHERE %(x)s",
            "types": {"x": "boolean"},
        }
        execute_prepared(cursor, **read, params={"x": True})
        assert cursor.fetchall() == [("jane",)]
        cursor.execute("ALTER TABLE pp_test_outgrown ALTER COLUMN name TYPE text")
        with pytest.raises(NotSupportedError, match="cached plan must not change result type"), transaction.atomic():
            execute_prepared(cursor, **read, params={"x": True})
        assert connection.close_at <= time.monotonic()
    connection.close_at = kept  # the test's transaction goes on; a request would end here


def test_a_prepare_that_fails_raises_djangos_error_and_is_prepared_next_time(db):
    with connection.cursor() as cursor:
        # Django's class, as the error envelope and the tasks' database-blip retries expect.
        with pytest.raises(ProgrammingError) as raised, transaction.atomic():
            execute_prepared(cursor, name="pp_test_bad", sql="SELEC %(n)s", types={"n": "integer"}, params={"n": 1})
        assert type(raised.value).__module__ == "django.db.utils"
        # Not remembered as prepared: the next call prepares it and answers.
        execute_prepared(cursor, name="pp_test_bad", sql="SELECT %(n)s", types={"n": "integer"}, params={"n": 7})
        assert cursor.fetchall() == [(7,)]
