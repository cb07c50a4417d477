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
from django.utils import timezone

from messaging.lifecycle import messages_transition_bulk
from messaging.models import MessageStatus
from messaging.queries import messages_claim_due_returning


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
    return messages_claim_due_returning(message_ids=message_ids, now=now, until=lease_end(now)), now
