"""Platform events: how a lower app tells the world something without knowing who listens.

`domains` and `senders` sit below `messaging` and may not import it, yet customers' webhooks must
hear that a domain lost its verification or a sender was paused. The lower app calls `publish`
inside the transaction that makes the change; subscribers (registered in an `AppConfig.ready`,
e.g. messaging's) run synchronously, in that same transaction, so whatever they write commits or
rolls back with the change. Subscribers defer their own I/O (enqueues) to `transaction.on_commit`.
"""

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

DOMAIN_VERIFICATION_LOST = "domain.verification_lost"
SENDER_PAUSED = "sender.paused"
DOMAIN_DKIM_ROTATION_STARTED = "domain.dkim_rotation_started"
DOMAIN_DKIM_ROTATION_COMPLETED = "domain.dkim_rotation_completed"

Subscriber = Callable[..., object]

_subscribers: defaultdict[str, list[Subscriber]] = defaultdict(list)


def subscribe(kind: str) -> Callable[[Subscriber], Subscriber]:
    """Decorator: call `fn(kind=, workspace_id=, occurred_at=, subject=)` for every `kind` published.

    Registering the same function twice for one kind keeps one registration.
    """

    def register(fn: Subscriber) -> Subscriber:
        if fn not in _subscribers[kind]:
            _subscribers[kind].append(fn)
        return fn

    return register


def publish(kind: str, *, workspace_id: str, occurred_at: datetime, subject: dict) -> None:
    """Tell every subscriber of `kind`, in order, inside the caller's transaction.

    `subject` is the JSON-ready object the event is about (e.g. the domain's id and name). An
    exception in a subscriber propagates, so the caller's change rolls back with it.
    """
    for fn in tuple(_subscribers[kind]):
        fn(kind=kind, workspace_id=workspace_id, occurred_at=occurred_at, subject=subject)
