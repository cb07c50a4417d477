"""The commit point: the one moment that decides whether a message may ever be sent again.

When the server has answered 354 to DATA and before the payload is sent, one statement
(autocommit) checks that the claim is still ours (`claimed_at` unchanged, still `queued`), renews
the lease and inserts a `DeliveryAttempt` in state `in_flight`. If the claim was lost (the lease
ran out and the sweeper gave the message to another worker), the connection is closed without
the final dot and the server discards the message.

The guarantee, precisely. Per message (and per SMTP transaction for a message with several
recipients: each recipient's copy is a transaction of its own): it is never handed to a receiving
server twice (no at-least-once
anywhere: a retry happens only when no attempt passed the commit point, or the server answered
the DATA payload with an explicit 4xx). It may be lost (at-most-once) only if the worker dies,
or the connection breaks, between committing the in-flight attempt and reading the server's
reply to the payload — a window of one network round trip plus the server's processing. Such a
message ends `sent` with `outcome: unknown` rather than being retried. A crash anywhere before
the commit point (claim, render, connect, MAIL, RCPT, even the DATA command) is retried by the
sweeper after the lease. Each recipient of one message (`to`, every cc) is a separate SMTP
transaction with a copy of its own (#15 item 12), `to` first; the first copy to pass the commit
point inserts the attempt and the later ones join it. Once any of them passed the commit point,
the others are not retried after a crash; after a clean try, only recipients that neither
accepted nor refused it are sent it again (and only while `to` has not settled).
"""

from datetime import datetime

from django.utils import timezone

from messaging.delivery.claim import lease_end
from messaging.queries import attempt_commit_in_flight


class CommitPoint:
    """`before_data` for one message: fence on the claim, renew the lease, insert the in-flight attempt."""

    def __init__(self, message_id: str, token: datetime, subject: str):
        self.message_id, self.token, self.subject = message_id, token, subject
        self.attempt_id: int | None = None
        self.lost = False
        # Recipients whose transaction passed the commit point (their outcome may be unknowable).
        self.committed: set[str] = set()

    def __call__(self, recipients: list[str]) -> bool:
        if self.attempt_id is not None:
            # A second destination of the same message: the attempt is already in flight.
            self.committed.update(r.lower() for r in recipients)
            return True
        now = timezone.now()
        # One statement, so it commits on its own in autocommit mode: both rows or neither.
        attempt_id = attempt_commit_in_flight(
            message_id=self.message_id,
            token=self.token,
            subject=self.subject,
            now=now,
            until=lease_end(now),
            recipients=recipients,
        )
        if attempt_id is None:
            self.lost = True
            return False
        self.attempt_id = attempt_id
        self.committed.update(r.lower() for r in recipients)
        return True
