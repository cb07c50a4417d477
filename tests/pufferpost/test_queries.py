"""pufferpost/queries.py's SQL returns exactly what its ORM reading returns."""

import time

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections
from django.utils import timezone

from pufferpost.models import ApiKey
from pufferpost.queries import api_key_with_workspace, database_answers
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
