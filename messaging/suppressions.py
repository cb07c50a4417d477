"""Every write to suppression lists and unsubscribe groups: the API's and the unsubscribe links'.

Its own module so the tracking package can write opt-outs without importing the send path.
"""

from messaging.models import Suppression, SuppressionReason, Unsubscribe, UnsubscribeGroup
from pufferpost.models import Workspace


def suppression_create(
    *, workspace: Workspace, email: str, reason: str = SuppressionReason.MANUAL
) -> tuple[Suppression, bool]:
    """Add `email` to the workspace's suppression list; an existing entry is returned unchanged."""
    return Suppression.objects.get_or_create(workspace=workspace, email=email, defaults={"reason": reason})


def suppression_delete(*, workspace: Workspace, email: str) -> bool:
    deleted, _ = Suppression.objects.filter(workspace=workspace, email=email).delete()
    return bool(deleted)


def unsubscribe_group_create(*, workspace: Workspace, name: str, description: str = "") -> UnsubscribeGroup:
    return UnsubscribeGroup.objects.create(workspace=workspace, name=name, description=description)


def unsubscribe_create(*, group: UnsubscribeGroup, email: str) -> tuple[Unsubscribe, bool]:
    """Opt `email` out of `group`; an existing opt-out is returned unchanged."""
    return Unsubscribe.objects.get_or_create(group=group, email=email)


def unsubscribe_delete(*, group: UnsubscribeGroup, email: str) -> bool:
    deleted, _ = Unsubscribe.objects.filter(group=group, email=email).delete()
    return bool(deleted)
