"""Reads of the tracking endpoints: the one message a token names, with what the page needs."""

from messaging.models import Message


def tracked_message(*, message_id: str, related: tuple[str, ...] = ("workspace",)) -> Message | None:
    """The message (joined with `related` in the same query), or None if it no longer exists."""
    return Message.objects.select_related(*related).filter(pk=message_id).first()


def unsubscribe_page_message(*, message_id: str) -> Message | None:
    """What the confirmation page shows: the from address and the group's name."""
    return tracked_message(message_id=message_id, related=("unsubscribe_group",))
