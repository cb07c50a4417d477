# Celery autodiscovers `<app>.tasks`; delivery tasks live in the delivery package.
from messaging.delivery.tasks import deliver_messages

__all__ = ["deliver_messages"]
