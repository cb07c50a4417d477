import os

from celery import Celery

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
