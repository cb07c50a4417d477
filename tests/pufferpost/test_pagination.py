import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import ValidationError

from pufferpost.models import Workspace
from pufferpost.pagination import paginate
from tests.factories import WorkspaceFactory


@pytest.mark.django_db
def test_keyset_pages_walk_every_row_once_newest_first():
    made = [WorkspaceFactory() for _ in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        rows, cursor = paginate(Workspace.objects.all(), params, scope="all")
        seen.extend(rows)
        if cursor is None:
            break
    assert [w.pk for w in seen] == [w.pk for w in sorted(made, key=lambda w: (w.created_at, w.pk), reverse=True)]


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1"])
def test_limit_out_of_range_is_a_validation_error(limit):
    with pytest.raises(ValidationError) as info:
        paginate(Workspace.objects.all(), {"limit": limit}, scope="all")
    assert "limit" in info.value.detail


@pytest.mark.django_db
def test_tampered_or_foreign_cursor_is_a_validation_error():
    WorkspaceFactory.create_batch(3)
    _, cursor = paginate(Workspace.objects.all(), {"limit": "1"}, scope="a")
    for bad in (cursor + "x", "garbage", cursor[:-3]):
        with pytest.raises(ValidationError):
            paginate(Workspace.objects.all(), {"cursor": bad}, scope="a")
    with pytest.raises(ValidationError):
        paginate(Workspace.objects.all(), {"cursor": cursor}, scope="b")


@pytest.mark.django_db
def test_a_cursor_is_one_row_value_comparison_so_the_index_scan_starts_at_it():
    """`(created_at, id) < (…)` lets PostgreSQL seek; an OR of two conditions scans every row above."""
    WorkspaceFactory.create_batch(2)
    _, cursor = paginate(Workspace.objects.all(), {"limit": "1"}, scope="all")
    with CaptureQueriesContext(connection) as captured:
        paginate(Workspace.objects.all(), {"cursor": cursor}, scope="all")
    sql = captured.captured_queries[0]["sql"]
    assert '("pufferpost_workspace"."created_at", "pufferpost_workspace"."id") < (' in sql
    assert " OR " not in sql
