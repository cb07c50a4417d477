"""pufferpost/queries.py's SQL returns exactly what its ORM reading returns."""

from django.utils import timezone

from pufferpost.models import ApiKey
from pufferpost.queries import api_key_with_workspace
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
