import os
import time

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pufferpost.settings")

app = Celery("pufferpost")
app.config_from_object("django.conf:settings", namespace="CELERY")


def _task_packages() -> list[str]:
    """Every installed app's `tasks` module, plus those of the subpackages an app lists in `task_packages`.

    The one way tasks are registered: nothing re-exports or imports a tasks module to register it.
    """
    from django.apps import apps

    return [package for config in apps.get_app_configs() for package in getattr(config, "task_packages", [config.name])]


app.autodiscover_tasks(_task_packages)


@signals.setup_logging.connect
def keep_django_logging(**kwargs):
    """Celery would install its own handlers and format; Django's LOGGING (pufferpost.logs) already
    configured the root logger the same way for every process, so there is nothing to do."""


@signals.before_task_publish.connect
def stamp_published_at(headers=None, **kwargs):
    """The publish time travels with the task, so /metrics can tell the age of a queue's oldest task."""
    if headers is not None:
        headers.setdefault("pp_published_at", time.time())


@signals.worker_ready.connect
def serve_worker_metrics(sender=None, **kwargs):
    """The worker's own series (its prefork children's too) on PUFFERPOST_METRICS_LISTEN, from the
    main process once its pool is up (pufferpost.metrics.serve_process_metrics)."""
    from pufferpost import metrics

    metrics.serve_process_metrics("worker")


@signals.beat_init.connect
def serve_beat_metrics(sender=None, **kwargs):
    from pufferpost import metrics

    metrics.serve_process_metrics("beat")


@signals.worker_process_shutdown.connect
def forget_dead_process_metrics(pid=None, **kwargs):
    """A prefork child going away drops its live-gauge files (prometheus_client multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
