"""What the pipeline tells operators: a log line and the metrics for each delivery outcome and
webhook attempt, and the live queue series read at scrape time.

Called once per recorded batch (delivery) or attempt (webhooks), after the facts are written, so a
log line never claims an outcome the database does not hold.
"""

import json
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, Count, F, Func, Min, Value, When
from django.db.models.functions import Lower
from django.utils import timezone
from prometheus_client.metrics_core import GaugeMetricFamily

from messaging.models import Message, MessageStatus
from messaging.queries import statement_timeout_local
from pufferpost import celery_app, metrics, redis
from pufferpost.logs import fields

delivery_log = logging.getLogger("pufferpost.delivery")
webhook_log = logging.getLogger("pufferpost.webhooks")

# kombu's Redis transport keeps one list per priority step; step 0 is the bare queue name.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)
# `waiting` (held back by shaping, nothing sent) is counted but logged only at DEBUG: at volume it
# would be a line per message per budget tick.
_LEVELS = {"delivered": logging.INFO, "deferred": logging.WARNING, "unknown": logging.WARNING, "waiting": logging.DEBUG}


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def bounce_class_of(detail: dict) -> str:
    """The classifier's verdict where the outcome carries one (`bounce_class`), else `unclassified`."""
    return str(detail.get("bounce_class") or detail.get("class") or "unclassified")


def delivery_outcomes_observe(results) -> None:
    """One log line and the counters per outcome of a recorded batch (after it commits)."""
    rows = [
        (
            r.message.pk,
            r.message.workspace_id,
            r.message.to,
            str(r.outcome),
            dict(r.detail),
            r.mx_host,
            (r.finished_at - r.started_at).total_seconds() if r.started_at and r.finished_at else None,
        )
        for r in results
    ]
    transaction.on_commit(lambda: _delivery_emit(rows))


def _delivery_emit(rows) -> None:
    for message_id, workspace_id, to, outcome, detail, mx_host, seconds in rows:
        destination = _domain(to)
        klass = bounce_class_of(detail) if outcome in ("bounced", "deferred", "errored") else "none"
        metrics.DELIVERY_OUTCOMES.labels(outcome, klass, metrics.destination_label(destination)).inc()
        if seconds is not None:
            metrics.DELIVERY_SECONDS.labels(outcome).observe(seconds)
        delivery_log.log(
            _LEVELS.get(outcome, logging.WARNING if outcome in ("bounced", "errored") else logging.INFO),
            "delivery %s",
            outcome,
            extra=fields(
                message=message_id,
                workspace=workspace_id,
                destination=destination,
                mx=mx_host or None,
                code=detail.get("code"),
                bounce_class=klass if klass != "none" else None,
                response=(detail.get("response") or detail.get("message") or "")[:300] or None,
                attempt=detail.get("attempt"),
                ms=round(seconds * 1000) if seconds is not None else None,
            ),
        )


def webhook_attempt_observe(*, delivery, outcome: str, status, error: str, duration_ms: int) -> None:
    label = "retrying" if outcome == "pending" else outcome
    metrics.WEBHOOK_ATTEMPTS.labels(label).inc()
    webhook_log.log(
        logging.INFO if outcome == "succeeded" else logging.WARNING,
        "webhook attempt %s",
        label,
        extra=fields(
            delivery=delivery.pk,
            endpoint=delivery.endpoint_id,
            workspace=getattr(delivery.endpoint, "workspace_id", None),
            event=getattr(delivery, "event_id", None),
            attempt=delivery.attempts + 1,
            status=status,
            error=error or None,
            ms=duration_ms,
        ),
    )


@metrics.scrape_collector
def celery_queues():
    """Depth and age of the oldest waiting task per Celery queue: a few Redis reads per queue."""
    depth = GaugeMetricFamily("pufferpost_queue_depth", "Tasks waiting in a Celery queue.", labels=["queue"])
    age = GaugeMetricFamily(
        "pufferpost_queue_oldest_age_seconds", "Age of the oldest task waiting in a Celery queue.", labels=["queue"]
    )
    client = redis.client()
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    prefix = celery_app.conf.broker_transport_options.get("global_keyprefix", "")
    pipe = client.pipeline(transaction=False)
    for name in names:
        for step in _PRIORITY_STEPS:
            key = prefix + name + (f"{_PRIORITY_SEPARATOR}{step}" if step else "")
            pipe.llen(key)
            pipe.lindex(key, -1)  # kombu pushes on the left and pops on the right: -1 is the oldest
    replies = pipe.execute()
    now = time.time()
    for index, name in enumerate(names):
        chunk = replies[index * 2 * len(_PRIORITY_STEPS) : (index + 1) * 2 * len(_PRIORITY_STEPS)]
        depth.add_metric([name], sum(chunk[0::2]))
        published = [_published_at(raw) for raw in chunk[1::2] if raw]
        published = [value for value in published if value]
        age.add_metric([name], max(0.0, now - min(published)) if published else 0.0)
    return [depth, age]


def _published_at(raw: bytes) -> float | None:
    try:
        return float(json.loads(raw)["headers"]["pp_published_at"])
    except (ValueError, KeyError, TypeError):
        return None


@metrics.scrape_collector
def pending_messages():
    """Messages not yet finished (accepted or queued) by status and destination, with the oldest one's
    age: one grouped query over the partial index of unfinished messages, bounded by a timeout."""
    by_status = GaugeMetricFamily("pufferpost_messages_pending", "Messages accepted or queued.", labels=["status"])
    depth = GaugeMetricFamily(
        "pufferpost_destination_queue_depth", "Messages waiting for delivery, by destination.", labels=["destination"]
    )
    age = GaugeMetricFamily(
        "pufferpost_destination_oldest_age_seconds",
        "Age of the oldest message waiting for delivery, by destination.",
        labels=["destination"],
    )
    domain = Lower(Func(F("to"), Value("@"), Value(2), function="split_part", output_field=CharField()))
    destination = Case(
        When(domain__in=sorted(settings.PUFFERPOST_METRICS_DESTINATIONS), then=F("domain")),
        default=Value("other"),
        output_field=CharField(),
    )
    with transaction.atomic():
        # A scrape never waits long on a busy database: the timeout lasts to the end of this transaction.
        statement_timeout_local(milliseconds=2000)
        groups = (
            Message.objects.filter(status__in=[MessageStatus.ACCEPTED, MessageStatus.QUEUED])
            .annotate(domain=domain)
            .annotate(destination=destination)
            .values("status", "destination")
            .annotate(count=Count("id"), oldest=Min("created_at"))
            .order_by()
        )
        now = timezone.now()
        rows = [
            (g["status"], g["destination"], g["count"], max(0.0, (now - g["oldest"]).total_seconds())) for g in groups
        ]
    statuses = {MessageStatus.ACCEPTED: 0, MessageStatus.QUEUED: 0}
    destinations: dict[str, list[float]] = {}
    for status, domain, count, oldest in rows:
        statuses[status] += count
        slot = destinations.setdefault(domain, [0, 0.0])
        slot[0] += count
        slot[1] = max(slot[1], float(oldest or 0))
    for status, count in statuses.items():
        by_status.add_metric([str(status)], count)
    for destination, (count, oldest) in sorted(destinations.items()):
        depth.add_metric([destination], count)
        age.add_metric([destination], oldest)
    return [by_status, depth, age]
