"""Every write to a sender. State changes go through `sender_transition` alone."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from pufferpost import events
from pufferpost.errors import Conflict
from pufferpost.formats import normalise_address, utc_timestamp
from pufferpost.models import Workspace
from pufferpost.services import workspace_capacity_check
from senders.models import Sender, SenderState, SenderStateChange

UNIQUE_CONSTRAINT = "sender_unique_per_workspace"

# (from, to) → the verb staff, the command and the auto-pause use for it. Nothing else is legal.
TRANSITIONS = {
    (SenderState.UNDER_REVIEW, SenderState.ACTIVE): "approve",
    (SenderState.ACTIVE, SenderState.PAUSED): "pause",
    (SenderState.PAUSED, SenderState.ACTIVE): "resume",
}
VERB_TARGETS = {verb: to_state for (_, to_state), verb in TRANSITIONS.items()}


class IllegalTransition(Exception):
    """The sender is not in a state the requested change can start from."""

    def __init__(self, sender: Sender, to_state: str):
        self.sender = sender
        self.to_state = to_state
        super().__init__(f"Sender {sender.pk} cannot move from {sender.state} to {to_state}.")


def sender_create(*, workspace: Workspace, from_address: str, display_name: str | None = None) -> Sender:
    """Register a sender in `under_review`; a second one for the same address is a 409.

    The unique constraint, not a prior SELECT, decides: two concurrent creates make one row.
    """
    from_address = normalise_address(from_address)
    if Sender.objects.filter(workspace=workspace, from_address=from_address).exists():
        raise _sender_exists(from_address)
    try:
        with transaction.atomic():
            workspace_capacity_check(
                workspace=workspace,
                rows=Sender.objects.filter(workspace=workspace),
                limit_field="max_senders",
                code="sender_limit_reached",
                noun="senders",
            )
            return Sender.objects.create(workspace=workspace, from_address=from_address, display_name=display_name)
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != UNIQUE_CONSTRAINT:
            raise
        raise _sender_exists(from_address) from exc


def _sender_exists(from_address: str) -> Conflict:
    return Conflict("sender_exists", f'A sender for "{from_address}" already exists.')


@transaction.atomic
def sender_transition(*, sender: Sender, to_state: str, reason: str = "", actor=None, actor_label: str = "") -> Sender:
    """Move one sender to `to_state` under a row lock and record who, when and why.

    `actor` is the staff user (or None); `actor_label` defaults to their username, else 'system'.
    Raises IllegalTransition unless (current state, to_state) is in TRANSITIONS. The caller's
    instance is refreshed with the new state.
    """
    locked = Sender.objects.select_for_update().get(pk=sender.pk)
    if (locked.state, to_state) not in TRANSITIONS:
        raise IllegalTransition(locked, to_state)
    reason = reason.strip()
    from_state = locked.state
    locked.state, locked.state_reason, locked.updated_at = to_state, reason, timezone.now()
    locked.save(update_fields=["state", "state_reason", "updated_at"])
    SenderStateChange.objects.create(
        sender=locked,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor is not None else "system"),
    )
    sender.state, sender.state_reason, sender.updated_at = locked.state, locked.state_reason, locked.updated_at
    if to_state == SenderState.PAUSED:
        # Staff and automatic pauses alike: customers learn their sender stopped sending.
        events.publish(
            events.SENDER_PAUSED,
            workspace_id=locked.workspace_id,
            occurred_at=locked.updated_at,
            subject={
                "id": locked.pk,
                "from_address": locked.from_address,
                "state": locked.state,
                "state_reason": locked.state_reason,
                "updated_at": utc_timestamp(locked.updated_at),
            },
        )
    return sender


def sender_pause(*, sender: Sender, reason: str = "", actor=None, actor_label: str = "") -> Sender:
    return sender_review(sender=sender, verb="pause", reason=reason, actor=actor, actor_label=actor_label)


def sender_review(*, sender: Sender, verb: str, reason: str = "", actor=None, actor_label: str = "") -> Sender:
    """Apply a review verb ('approve', 'pause', 'resume'): the one entry point for staff and the command.

    The verb must also match the sender's current state, so 'resume' never approves a sender
    still under review even though both lead to `active`.
    """
    to_state = VERB_TARGETS[verb]
    with transaction.atomic():
        current = Sender.objects.select_for_update().get(pk=sender.pk)
        if TRANSITIONS.get((current.state, to_state)) != verb:
            raise IllegalTransition(current, to_state)
        return sender_transition(sender=sender, to_state=to_state, reason=reason, actor=actor, actor_label=actor_label)


def senders_review(*, senders, verb: str, reason: str, actor=None, actor_label: str = "") -> tuple[int, int]:
    """Apply a review verb to many senders, one row lock at a time in pk order.

    Returns (changed, skipped): senders whose state does not allow the verb are skipped, not failed.
    """
    changed = skipped = 0
    for sender in sorted(senders, key=lambda s: s.pk):
        try:
            sender_review(sender=sender, verb=verb, reason=reason, actor=actor, actor_label=actor_label)
        except IllegalTransition:
            skipped += 1
        else:
            changed += 1
    return changed, skipped
