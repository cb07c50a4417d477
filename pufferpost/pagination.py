"""Keyset (cursor) pagination on `(created_at, id)`, newest first.

The cursor is signed, so a tampered or foreign cursor is a 422 `invalid_cursor` instead of a
500 or a silent skip; a page stays as fast 5,000 pages deep as on the first page.
"""

from datetime import datetime

from django.core import signing
from django.db.models import F

# Django's own row-value lookups (behind composite primary keys since 5.2); pinned Django version.
from django.db.models.fields.tuple_lookups import Tuple, TupleLessThan
from rest_framework.exceptions import ErrorDetail, ValidationError

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_SALT = "pufferpost.cursor"


def parse_limit(raw) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError(
            {"limit": [ErrorDetail(f"limit must be an integer from 1 to {MAX_LIMIT}.", code="out_of_range")]}
        )
    return value


def encode_cursor(row, scope: str) -> str:
    return signing.dumps([row.created_at.isoformat(), row.pk, scope], salt=_SALT, compress=True)


def decode_cursor(raw: str, scope: str):
    try:
        created_at, pk, cursor_scope = signing.loads(raw, salt=_SALT)
        if cursor_scope != scope:
            raise ValueError("cursor of another list")
        return datetime.fromisoformat(created_at), pk
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise ValidationError(
            {"cursor": [ErrorDetail("The cursor is not valid for this list.", code="invalid_cursor")]}
        ) from exc


def paginate(queryset, params, *, scope: str):
    """Return (rows, next_cursor) for a newest-first page of `queryset`.

    `scope` binds a cursor to one list (e.g. the workspace id plus the filters), so a cursor
    cannot be replayed against another list.
    """
    limit = parse_limit(params.get("limit"))
    queryset = queryset.order_by("-created_at", "-pk")
    raw_cursor = params.get("cursor")
    if raw_cursor:
        created_at, pk = decode_cursor(raw_cursor, scope)
        # A row-value comparison, `(created_at, id) < (%s, %s)`, is what lets PostgreSQL start the
        # index scan at the cursor; the equivalent OR of two conditions makes it walk every row above.
        queryset = queryset.filter(TupleLessThan(Tuple(F("created_at"), F("pk")), (created_at, pk)))
    rows = list(queryset[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1], scope) if len(rows) > limit else None
    return rows[:limit], next_cursor


def paginate_opt_in(queryset, params, *, scope: str):
    """Pagination for the lists the guides show as a plain `{"data": [...]}` (domains, senders).

    Without `limit` or `cursor` the answer is the first MAX_LIMIT rows, newest first: the guide's
    "every domain" for any list up to that size. With either, it is a page like every other
    list (of MAX_LIMIT rows unless `limit` says otherwise). Returns (rows, next_cursor, paginated): the view adds `next_cursor` to the body when the
    client paginates or when more rows exist, so small unpaginated lists keep the guide's shape.
    """
    paginated = bool(params.get("limit") or params.get("cursor"))
    rows, next_cursor = paginate(
        queryset, {"limit": params.get("limit") or MAX_LIMIT, "cursor": params.get("cursor")}, scope=scope
    )
    return rows, next_cursor, paginated


def page_response_parts(request, data: list, next_cursor: str | None, paginated: bool) -> tuple[dict, dict]:
    """(body, headers) of an opt-in page: `next_cursor` as above, and an RFC 8288 `Link: <…>;
    rel="next"` header whenever there is a next page (what a client that never heard of cursors
    can follow)."""
    body = {"data": data}
    if paginated or next_cursor is not None:
        body["next_cursor"] = next_cursor
    headers = {}
    if next_cursor is not None:
        query = request.query_params.copy()
        query["cursor"] = next_cursor
        query.setdefault("limit", str(MAX_LIMIT))
        headers["Link"] = f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'
    return body, headers
