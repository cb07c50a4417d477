"""The Grafana dashboard only charts series the code really exports."""

import json
import re
from pathlib import Path

from pufferpost import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pufferpost.json"
SCRAPE_TIME = {
    "pufferpost_queue_depth",
    "pufferpost_queue_oldest_age_seconds",
    "pufferpost_messages_pending",
    "pufferpost_destination_queue_depth",
    "pufferpost_destination_oldest_age_seconds",
    "pufferpost_scrape_collector_up",
}


def test_every_dashboard_query_names_an_exported_series():
    exported = set(SCRAPE_TIME)
    for value in vars(metrics).values():
        name = getattr(value, "_name", None)
        if isinstance(name, str) and name.startswith("pufferpost_"):
            exported |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        series
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for series in re.findall(r"pufferpost_[a-z_]+", target["expr"])
    }
    assert used and used <= exported, used - exported
    assert {panel["title"] for panel in dashboard["panels"]} >= {"Celery queue depth", "Delivery outcomes"}
