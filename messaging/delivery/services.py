"""Delivery: claim accepted messages, render, build, DKIM-sign and send them, record the outcome.

The entry points tasks call. One task (`deliver_messages` for new mail, `deliver_due_messages`
for retries) goes through four rooms, each a module with one idea:

1. `claim` — take the batch (`accepted → queued`, or a due retry with no attempt in flight)
   under a lease; the claim's token fences off every other worker.
2. `batch` — load everything in a fixed number of queries, re-check suppressions and opt-outs,
   render, build, instrument, DKIM-sign, send through one `Mailer`.
3. `commit_point` — right before the DATA payload, check the claim and record the attempt in
   flight; the exactly-once guarantee is stated there, next to the statement that gives it.
4. `outcomes` — what happened to each message (`Outcome`), recorded in bulk: events, suppressions,
   retries with backoff until the retry window closes.

`sweeper` (`delivery_sweep`, a beat task) re-enqueues due retries and expired claims and settles
attempts a dead worker left in flight.
"""

from messaging.delivery.batch import Batch
from messaging.delivery.claim import messages_claim, messages_claim_due
from messaging.delivery.sweeper import delivery_sweep

__all__ = ["deliver_due_messages", "deliver_messages", "delivery_sweep"]


def deliver_messages(*, message_ids: list[str]) -> None:
    """Claim, render, sign and send each of `message_ids`; messages already past `accepted` are skipped."""
    claimed, token = messages_claim(message_ids=message_ids)
    if claimed:
        Batch(claimed, token).run()


def deliver_due_messages(*, message_ids: list[str]) -> None:
    """A retry: send those of `message_ids` that are due (countdowns and the sweeper both land here)."""
    claimed, token = messages_claim_due(message_ids=message_ids)
    if claimed:
        Batch(claimed, token).run()
