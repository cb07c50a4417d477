"""The sweeper: what a lost countdown or a dead worker left behind.

`delivery_sweep` (a beat task) picks up `queued` messages whose `next_attempt_at` has passed: a
due retry whose countdown was lost, or a claim whose worker died. Those without an in-flight
attempt are handed to a worker again (re-claimed, so the old claim is fenced off). Those with one
are never sent again: the worker died between the commit point and recording the outcome, so the
server may have the message (see messaging.delivery.commit_point). They become `sent` with
`outcome: unknown`.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging.delivery.outcomes import Outcome
from messaging.delivery.tasks import deliver_due_messages as deliver_due_messages_task
from messaging.lifecycle import messages_transition_bulk
from messaging.models import AttemptState, DeliveryAttempt, Message, MessageStatus

log = logging.getLogger(__name__)

S = MessageStatus
SWEEP_CHUNK = 100


def delivery_sweep(*, limit: int = 10_000) -> dict[str, int]:
    """Queued messages whose `next_attempt_at` has passed (plus PUFFERPOST_DELIVERY_SWEEP_GRACE):

    - with an attempt still `in_flight`: the worker died after the commit point; the message may
      have been delivered, so it is never sent again: `sent` with `outcome: unknown`;
    - the others (a lost countdown, or a worker that died before the commit point) are re-enqueued;
      the task re-claims them, which fences off the old claim.
    """
    now = timezone.now()
    due = now - timedelta(seconds=settings.PUFFERPOST_DELIVERY_SWEEP_GRACE)
    with transaction.atomic():
        stuck = list(
            DeliveryAttempt.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                state=AttemptState.IN_FLIGHT,
                message__status=S.QUEUED,
                message__next_attempt_at__lte=due,
            )
            .values_list("id", "message_id")[:limit]
        )
        if stuck:
            DeliveryAttempt.objects.filter(pk__in=[pk for pk, _ in stuck]).update(
                state=AttemptState.UNKNOWN, finished_at=now, response="worker lost after the commit point"
            )
            Message.objects.filter(pk__in=[m for _, m in stuck]).update(next_attempt_at=None)
            messages_transition_bulk(
                message_ids=[m for _, m in stuck],
                to_status=S.SENT,
                details={
                    m: {
                        "outcome": Outcome.UNKNOWN.value,
                        "note": "the delivering worker stopped after starting to transmit the message; "
                        "it may have been delivered and is not sent again",
                    }
                    for _, m in stuck
                },
            )
    ids = list(
        Message.objects.filter(status=S.QUEUED, next_attempt_at__lte=due)
        .exclude(delivery_attempts__state=AttemptState.IN_FLIGHT)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    for start in range(0, len(ids), SWEEP_CHUNK):
        try:
            deliver_due_messages_task.delay(ids[start : start + SWEEP_CHUNK])
        except Exception:  # broker down: logged, and the next sweep enqueues them again
            log.exception("delivery sweep could not enqueue; next sweep retries")
            break
    if stuck or ids:
        log.warning("delivery sweep: %d unknown outcome(s), %d due message(s) re-enqueued", len(stuck), len(ids))
    return {"unknown": len(stuck), "requeued": len(ids)}
