"""A message's timeline, a page at a time (GET /v1/messages/{id}/events)."""

from datetime import datetime

from django.core import signing
from django.db.models import F

# Django's own row-value lookups, as pufferpost.pagination uses them.
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from rest_framework.exceptions import ErrorDetail, ValidationError

from messaging.models import MessageEvent
from pufferpost.pagination import parse_limit

EVENTS_PAGE_DEFAULT = 100  # without `limit`, a whole ordinary timeline is one page, as the guide shows it
_EVENTS_SALT = "pufferpost.events-cursor"


def message_events_page(*, message_id: str, params) -> tuple[list[MessageEvent], str | None]:
    """One page of a message's timeline, oldest first by (occurred_at, recorded_at, id).

    `limit` (1..100, default 100) and `cursor` (the previous page's `next_cursor`, signed and bound to
    this message) are optional: a client that sends neither gets the first 100 events, the shape
    the guide shows plus `next_cursor`.
    """
    limit = parse_limit(params.get("limit")) if params.get("limit") not in (None, "") else EVENTS_PAGE_DEFAULT
    events = MessageEvent.objects.filter(message_id=message_id).order_by("occurred_at", "recorded_at", "id")
    raw = params.get("cursor")
    if raw:
        try:
            occurred_at, recorded_at, pk, scope = signing.loads(raw, salt=_EVENTS_SALT)
            if scope != message_id:
                raise ValueError("cursor of another message")
            after = (datetime.fromisoformat(occurred_at), datetime.fromisoformat(recorded_at), pk)
        except (signing.BadSignature, ValueError, TypeError) as exc:
            raise ValidationError(
                {"cursor": [ErrorDetail("The cursor is not valid for this list.", code="invalid_cursor")]}
            ) from exc
        events = events.filter(TupleGreaterThan(Tuple(F("occurred_at"), F("recorded_at"), F("pk")), after))
    rows = list(events[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = signing.dumps(
            [last.occurred_at.isoformat(), last.recorded_at.isoformat(), last.pk, message_id],
            salt=_EVENTS_SALT,
            compress=True,
        )
    return rows[:limit], next_cursor
