"""Reads of the tracking endpoints: the one message a token names, with only what they use."""

from messaging.models import Message

_FIELDS = ("id", "workspace_id", "to", "cc", "from_address", "unsubscribe_group_id")
# What each endpoint reads of the joined rows (the message's data and metadata are never loaded).
_RELATED_FIELDS = {
    "workspace": ("workspace__id", "workspace__open_tracking", "workspace__click_tracking"),
    "unsubscribe_group": ("unsubscribe_group__id", "unsubscribe_group__name"),
}


def tracked_message(*, message_id: str, related: tuple[str, ...] = ("workspace",)) -> Message | None:
    """The message (joined with `related` in the same query), or None if it no longer exists."""
    fields = _FIELDS + tuple(field for name in related for field in _RELATED_FIELDS[name])
    return Message.objects.select_related(*related).only(*fields).filter(pk=message_id).first()


def unsubscribe_page_message(*, message_id: str) -> Message | None:
    """What the confirmation page shows: the from address and the group's name."""
    return tracked_message(message_id=message_id, related=("unsubscribe_group",))
