"""gunicorn reads this file from the working directory: the project's log format, and metrics
hygiene for prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR)."""

import os

from pufferpost.logs import logging_config

logconfig_dict = logging_config(
    level=os.environ.get("PUFFERPOST_LOG_LEVEL", "INFO"), fmt=os.environ.get("PUFFERPOST_LOG_FORMAT", "text").lower()
)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
