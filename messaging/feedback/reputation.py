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

The block rate is also judged for the workspace as a whole (every sender's messages in the
window, against the same `block_rate_threshold` and `reputation_min_volume`): blocks are about the
sending domain's and addresses' reputation, which a workspace's senders share, and spreading bad
mail over many low-volume senders must not dodge the pause. Above it, the workspace's sending is
paused (`sending_paused`, with the reason), as staff would pause it; staff resume it in the admin.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from messaging.models import Message
from pufferpost.models import Workspace
from pufferpost.services import workspace_set_sending_paused
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


def _counts(prefix: str, scope: Q) -> dict:
    return {
        f"{prefix}volume": Count("pk", filter=scope),
        f"{prefix}bounced": Count("pk", filter=scope & Q(status="bounced") & ~Q(bounce_class="block")),
        f"{prefix}complained": Count("pk", filter=scope & Q(status="complained")),
        f"{prefix}blocked": Count("pk", filter=scope & Q(status="bounced", bounce_class="block")),
    }


def workspace_reputation_stats(*, workspace_id: str, since: datetime) -> ReputationStats:
    """The same aggregate over every sender of the workspace (one query)."""
    return _both_stats(workspace_id=workspace_id, sender_id=None, since=since)[0]


def _both_stats(*, workspace_id: str, sender_id: str | None, since: datetime):
    """(the workspace's stats, the sender's stats or None) in one aggregate query."""
    fields = _counts("w_", Q(pk__isnull=False)) | (_counts("s_", Q(sender_id=sender_id)) if sender_id else {})
    row = Message.objects.filter(
        workspace_id=workspace_id, livemode=True, created_at__gte=since, status__in=COUNTED_STATUSES
    ).aggregate(**fields)
    workspace = ReputationStats(**{k[2:]: v for k, v in row.items() if k.startswith("w_")})
    sender = ReputationStats(**{k[2:]: v for k, v in row.items() if k.startswith("s_")}) if sender_id else None
    return workspace, sender


def workspace_block_rate_evaluate(
    *, workspace: Workspace, now: datetime | None = None, stats: ReputationStats | None = None
) -> bool:
    """Pause the workspace's sending if its block rate over the window crosses `block_rate_threshold`
    (with at least `reputation_min_volume` messages); True if paused now. `stats`: already counted."""
    if workspace.sending_paused:
        return False
    days = settings.PUFFERPOST_REPUTATION_WINDOW_DAYS
    if stats is None:
        since = (now or timezone.now()) - timedelta(days=days)
        stats = workspace_reputation_stats(workspace_id=workspace.pk, since=since)
    if stats.volume == 0 or stats.volume < workspace.reputation_min_volume:
        return False
    if not stats.blocked > workspace.block_rate_threshold * stats.volume:
        return False
    reason = _reason("block", stats.blocked, stats.volume, days, workspace.block_rate_threshold).replace(
        "over the last", "across the workspace's senders over the last"
    )
    if not workspace_set_sending_paused(workspace=workspace, paused=True, reason=reason):
        return False
    log.warning("workspace %s paused: %s", workspace.pk, reason)
    return True


def workspace_reputation_summary(*, workspace: Workspace, now: datetime | None = None) -> str:
    """The workspace's three rates (all senders) against its thresholds, for the admin."""
    days = settings.PUFFERPOST_REPUTATION_WINDOW_DAYS
    stats = workspace_reputation_stats(workspace_id=workspace.pk, since=(now or timezone.now()) - timedelta(days=days))
    return _summary(stats, workspace, days, pausing="block")


def sender_reputation_stats(*, sender_id: str, since: datetime) -> ReputationStats:
    """The sender's messages created since `since` that left the platform, and their outcomes."""
    return _reputation_of(Message.objects.filter(sender_id=sender_id, created_at__gte=since))


def sender_reputation_evaluate(*, sender_id: str, now: datetime | None = None) -> bool:
    """Pause `sender_id` if it is active and its recent rates cross the thresholds; True if paused now.

    The workspace's own block rate is judged too (`workspace_block_rate_evaluate`). Run it after
    the bounce or complaint that may tip the balance has committed, so two feedback reports racing
    each other both count in the later evaluation.
    """
    sender = Sender.objects.select_related("workspace").filter(pk=sender_id).first()
    if sender is None:
        return False
    workspace = sender.workspace
    now = now or timezone.now()
    days = settings.PUFFERPOST_REPUTATION_WINDOW_DAYS
    # One aggregate for both: the workspace's totals and this sender's share of them.
    workspace_stats, stats = _both_stats(
        workspace_id=workspace.pk, sender_id=sender_id, since=now - timedelta(days=days)
    )
    workspace_block_rate_evaluate(workspace=workspace, now=now, stats=workspace_stats)
    if sender.state != SenderState.ACTIVE:
        return False
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
    return _summary(stats, workspace, days, pausing="bounce complaint block")


def _summary(stats: ReputationStats, workspace: Workspace, days: int, *, pausing: str) -> str:
    """ "bounce 1.0% (pauses above 5.0%) · …"; a rate that pauses nothing at this level shows its
    threshold as "(threshold 5.0%)"."""
    if not stats.volume:
        return f"no messages sent in the last {days} days"
    rates = " · ".join(
        f"{kind} {percent(Decimal(count) / stats.volume)} "
        f"({'pauses above' if kind in pausing.split() else 'threshold'} {percent(threshold)})"
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
