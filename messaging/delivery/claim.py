"""Claiming: which worker may deliver a message now.

One conditional UPDATE … RETURNING moves a batch `accepted → queued` (with the `queued` events)
or, for a retry, takes `queued` messages whose `next_attempt_at` is due and that have no attempt
in flight. Each claim stamps `claimed_at` (the claim's token, checked again at the commit point
and when outcomes are recorded) and sets `next_attempt_at` to the end of a lease
(PUFFERPOST_DELIVERY_LEASE). Anything already claimed, sent or terminal is skipped, so the
sweeper's and a redelivered task's duplicates do nothing.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from messaging.lifecycle import messages_transition_bulk
from messaging.models import AttemptState, DeliveryAttempt, Message, MessageStatus


def lease_end(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.PUFFERPOST_DELIVERY_LEASE)


def messages_claim(*, message_ids: list[str]) -> tuple[list[str], datetime]:
    """`accepted → queued` for those of `message_ids` still accepted; (claimed ids, claim token)."""
    now = timezone.now()
    claimed = messages_transition_bulk(
        message_ids=message_ids, to_status=MessageStatus.QUEUED, claimed_at=now, next_attempt_at=lease_end(now)
    )
    return claimed, now


def messages_claim_due(*, message_ids: list[str]) -> tuple[list[str], datetime]:
    """Re-claim `queued` messages whose retry or lease is due and that have no attempt in flight."""
    now = timezone.now()
    table = connection.ops.quote_name(Message._meta.db_table)
    attempts = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} m SET claimed_at = %s, next_attempt_at = %s
                 WHERE m.id = ANY(%s) AND m.status = %s AND m.next_attempt_at <= %s
                   AND NOT EXISTS (SELECT 1 FROM {attempts} a WHERE a.message_id = m.id AND a.state = %s)
             RETURNING m.id""",
            [now, lease_end(now), list(message_ids), MessageStatus.QUEUED, now, AttemptState.IN_FLIGHT],
        )
        return [row[0] for row in cursor.fetchall()], now
