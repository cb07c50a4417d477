"""What the tracking and unsubscribe endpoints write: opens, clicks and one-click opt-outs.

Each call reads the message (with its workspace switches and group) in one query and records at
most one event through `messaging.lifecycle`, which also hands it to webhooks.
"""

import logging
from dataclasses import dataclass

import redis
from django.db import transaction

from messaging.lifecycle import message_event_record
from messaging.models import EventType, Message, SuppressionReason
from messaging.suppressions import suppression_create, unsubscribe_create
from messaging.tracking.selectors import tracked_message
from pufferpost import redis as pp_redis

logger = logging.getLogger(__name__)

# Mail proxies (Gmail's image proxy, Apple Mail Privacy Protection) and clients re-fetch the pixel
# when a message is reopened or scrolled; one `opened` per message per this many seconds absorbs
# that without hiding a genuine later read.
OPEN_DEDUPE_SECONDS = 60
USER_AGENT_MAX = 512


class UnsubscribeSource:
    ONE_CLICK = "one-click"  # RFC 8058 POST from the mailbox provider
    PAGE = "page"  # the confirmation page's button


@dataclass(frozen=True)
class UnsubscribeOutcome:
    message: Message
    changed: bool


def _user_agent(value: str | None) -> str:
    return (value or "")[:USER_AGENT_MAX]


def _first_open_in_window(message_id: str) -> bool:
    """True for the first fetch of this message's pixel in the window; fails open if Redis is down."""
    try:
        return bool(pp_redis.client().set(pp_redis.key("open", message_id), 1, nx=True, ex=OPEN_DEDUPE_SECONDS))
    except redis.RedisError:
        logger.warning("Open de-duplication unavailable (Redis); recording the open of %s", message_id)
        return True


def message_open_record(*, message_id: str, user_agent: str | None = None) -> bool:
    """Record `opened` if the workspace tracks opens and none was recorded in the last minute."""
    message = tracked_message(message_id=message_id)
    if message is None or not message.workspace.open_tracking:
        return False
    if not _first_open_in_window(message.pk):
        return False
    message_event_record(message=message, type=EventType.OPENED, detail={"user_agent": _user_agent(user_agent)})
    return True


def message_click_record(*, message_id: str, url: str, user_agent: str | None = None) -> bool:
    """Record `clicked` (with the target) if the workspace tracks clicks; every click counts."""
    message = tracked_message(message_id=message_id)
    if message is None or not message.workspace.click_tracking:
        return False
    message_event_record(
        message=message, type=EventType.CLICKED, detail={"url": url, "user_agent": _user_agent(user_agent)}
    )
    return True


def is_cc_of(message: Message, address: str) -> bool:
    """True when `address` is one of the message's cc recipients (and not its `to`)."""
    address = address.lower()
    return address != message.to.lower() and any(address == cc.lower() for cc in message.cc)


@transaction.atomic
def message_unsubscribe(*, message_id: str, source: str, recipient: str | None = None) -> UnsubscribeOutcome | None:
    """Opt the message's recipient out of its unsubscribe group, or suppress them workspace-wide.

    The recipient is the message's `to`, or, for a cc's own token, that cc address (only if it is
    one of the message's cc: the token is signed, this is a second fence).

    A send without a group (or whose group has since been deleted) becomes a workspace suppression
    with reason `unsubscribe`. `unsubscribed` is recorded only when the opt-out row is new, so a
    repeated POST (or a second message's link) changes and records nothing; concurrent POSTs
    race on the rows' unique constraints and exactly one records. None: no such message.
    """
    message = tracked_message(message_id=message_id, related=("workspace", "unsubscribe_group"))
    if message is None or (recipient is not None and not is_cc_of(message, recipient)):
        return None
    email = message.to if recipient is None else next(cc for cc in message.cc if cc.lower() == recipient.lower())
    group = message.unsubscribe_group
    if group is not None:
        _, created = unsubscribe_create(group=group, email=email)
    else:
        _, created = suppression_create(workspace=message.workspace, email=email, reason=SuppressionReason.UNSUBSCRIBE)
    if created:
        message_event_record(
            message=message,
            type=EventType.UNSUBSCRIBED,
            detail={"email": email, "group": group.pk if group else None, "source": source},
        )
    return UnsubscribeOutcome(message=message, changed=created)
