"""Automatic pause: a sender whose recent bounce, complaint or block rate crosses its workspace's threshold.

Three rates, three thresholds: bounces that say the list is bad (every bounce class but `block`),
complaints, and blocks (policy, reputation and authentication refusals: the receivers distrust the
sender, its recipients are fine). A block pauses on its own threshold because a sender that Gmail
refuses for reputation should stop before it digs deeper, without suppressing anyone.

The window is time-based: the sender's messages created in the last
`PUFFERPOST_REPUTATION_WINDOW_DAYS` days (default 7) that actually left the platform (sent,
delivered, bounced or complained; never-sent suppressed/errored/pending messages say nothing
about the list's quality). A time window forgets an old incident on its own, and a count of "the
last K messages" would make a low-volume sender's rate hinge on mail from months ago.

"Crosses" means strictly above: with the defaults, 5 bounces in 100 messages (exactly 5 %) keep
the sender active and the 6th pauses it. The volume must be at least the workspace's
`reputation_min_volume` (100 means 100 messages is enough). Rates are compared as exact
decimals (`count > threshold × volume`), never as floats.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from messaging.models import Message
from senders.models import Sender, SenderState
from senders.services import IllegalTransition, sender_pause

log = logging.getLogger(__name__)

# Statuses of messages that were handed to a receiving server (the denominator of both rates).
COUNTED_STATUSES = ("sent", "delivered", "bounced", "complained")


@dataclass(frozen=True)
class ReputationStats:
    volume: int
    bounced: int  # bounces that say something about the list (every class but `block`)
    complained: int
    blocked: int = 0  # policy/reputation refusals (class `block`): about the sender, not the list


def _reputation_of(messages) -> ReputationStats:
    """One aggregate query: messages counted, bounced, complained and blocked."""
    # Test messages never left the platform: they say nothing about the list's quality.
    row = messages.filter(livemode=True, status__in=COUNTED_STATUSES).aggregate(
        volume=Count("pk"),
        bounced=Count("pk", filter=Q(status="bounced") & ~Q(bounce_class="block")),
        complained=Count("pk", filter=Q(status="complained")),
        blocked=Count("pk", filter=Q(status="bounced", bounce_class="block")),
    )
    return ReputationStats(**row)


def sender_reputation_stats(*, sender_id: str, since: datetime) -> ReputationStats:
    """The sender's messages created since `since` that left the platform, and their outcomes."""
    return _reputation_of(Message.objects.filter(sender_id=sender_id, created_at__gte=since))


def workspace_reputation_stats(*, workspace_id: str, since: datetime) -> ReputationStats:
    """The same over all of a workspace's senders (the admin shows it beside the thresholds)."""
    return _reputation_of(Message.objects.filter(workspace_id=workspace_id, created_at__gte=since))


def sender_reputation_evaluate(*, sender_id: str, now: datetime | None = None) -> bool:
    """Pause `sender_id` if it is active and its recent rates cross the thresholds; True if paused now.

    Run it after the bounce or complaint that may tip the balance has committed, so two feedback
    reports racing each other both count in the later evaluation.
    """
    sender = Sender.objects.select_related("workspace").filter(pk=sender_id).first()
    if sender is None or sender.state != SenderState.ACTIVE:
        return False
    workspace = sender.workspace
    now = now or timezone.now()
    days = settings.PUFFERPOST_REPUTATION_WINDOW_DAYS
    stats = sender_reputation_stats(sender_id=sender_id, since=now - timedelta(days=days))
    if stats.volume == 0 or stats.volume < workspace.reputation_min_volume:
        return False
    reason = None
    if stats.bounced > workspace.bounce_rate_threshold * stats.volume:
        reason = _reason("bounce", stats.bounced, stats.volume, days, workspace.bounce_rate_threshold)
    elif stats.complained > workspace.complaint_rate_threshold * stats.volume:
        reason = _reason("complaint", stats.complained, stats.volume, days, workspace.complaint_rate_threshold)
    elif stats.blocked > workspace.block_rate_threshold * stats.volume:
        reason = _reason("block", stats.blocked, stats.volume, days, workspace.block_rate_threshold)
    if reason is None:
        return False
    return _sender_pause(sender=sender, reason=reason)


def sender_reputation_summary(*, sender: Sender, now: datetime | None = None) -> str:
    """The three rates against their thresholds, for the admin: "bounce 1.0% (pauses above 5.0%) · …"."""
    workspace = sender.workspace
    days = settings.PUFFERPOST_REPUTATION_WINDOW_DAYS
    stats = sender_reputation_stats(sender_id=sender.pk, since=(now or timezone.now()) - timedelta(days=days))
    if not stats.volume:
        return f"no messages sent in the last {days} days"
    rates = " · ".join(
        f"{kind} {percent(Decimal(count) / stats.volume)} (pauses above {percent(threshold)})"
        for kind, count, threshold in (
            ("bounce", stats.bounced, workspace.bounce_rate_threshold),
            ("complaint", stats.complained, workspace.complaint_rate_threshold),
            ("block", stats.blocked, workspace.block_rate_threshold),
        )
    )
    return f"{rates} over {stats.volume} messages ({days} days; judged from {workspace.reputation_min_volume})"


def _reason(kind: str, count: int, volume: int, days: int, threshold: Decimal) -> str:
    return (
        f"Auto-paused: {kind} rate {percent(Decimal(count) / volume)} over the last {volume} messages "
        f"({days} days) exceeds {percent(threshold)}"
    )


def percent(rate: Decimal) -> str:
    """0.06 → "6.0%", 0.001 → "0.1%", 0.0015 → "0.15%"."""
    text = f"{rate * 100:.2f}".rstrip("0")
    return f"{text}0%" if text.endswith(".") else f"{text}%"


def _sender_pause(*, sender: Sender, reason: str) -> bool:
    """active → paused through the senders state machine (which emits `sender.paused`), actor "system".

    False if the sender is no longer active (e.g. staff paused it between the read and now).
    """
    try:
        sender_pause(sender=sender, reason=reason, actor_label="system")
    except IllegalTransition:
        return False
    log.warning("sender %s paused: %s", sender.pk, reason)
    return True
