"""The admin's read-only page of shaping destinations: limits and current state (`/admin/shaping/`)."""

import json

from django.contrib import admin
from django.http import HttpResponse
from django.utils.html import format_html, format_html_join

from pufferpost.shaping import destinations_state


def shaping_view(request):
    """Each (source, destination): its limits, connection slots in use, and any backoff."""
    rows = destinations_state()
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                r["source"],
                r["destination"],
                r["mx_suffixes"],
                json.dumps(r["limits"]),
                "?" if r["connections_in_use"] is None else r["connections_in_use"],
                json.dumps(r["backoff"]) if r["backoff"] else "—",
            )
            for r in rows
        ),
    )
    page = format_html(
        "<!doctype html><html><head><title>Shaping</title></head><body><h1>Delivery shaping</h1>"
        "<p>Limits come from the presets and PUFFERPOST_SHAPING_FILE; state is live from Redis.</p>"
        "<table border=1 cellpadding=4><tr><th>Source</th><th>Destination</th><th>MX suffixes</th>"
        "<th>Limits</th><th>Connections in use</th><th>Backoff</th></tr>{}</table></body></html>",
        body,
    )
    return HttpResponse(page)


shaping_admin_view = admin.site.admin_view(shaping_view)
