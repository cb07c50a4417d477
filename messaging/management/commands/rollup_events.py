"""`manage.py rollup_events [--since ISO]`: recount the hourly stats rollup from the events table."""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from messaging.rollup import event_rollup_rebuild
from pufferpost.formats import utc_timestamp


class Command(BaseCommand):
    help = (
        "Recount the hourly event rollup behind GET /v1/stats and the admin charts from the events, "
        "from --since (default: the earliest event). Safe while mail flows, and safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO 8601 time; the hour it falls in is the first recounted.")

    def handle(self, *args, since=None, **options):
        start = None
        if since:
            try:
                start = datetime.fromisoformat(since)
            except ValueError as exc:
                raise CommandError(f"--since: use an ISO 8601 time such as 2026-11-01T00:00:00+00:00 ({exc}).") from exc
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
        first, written = event_rollup_rebuild(since=start)
        self.stdout.write(json.dumps({"since": utc_timestamp(first), "rows": written}))
