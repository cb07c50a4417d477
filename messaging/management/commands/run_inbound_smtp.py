import asyncio
import logging
import os

from django.core.management.base import BaseCommand
from django.db import connections

from messaging.feedback.smtp import inbound_smtp_serve
from pufferpost import metrics


class Command(BaseCommand):
    help = "Receive bounces (DSN) and complaints (ARF) sent to the platform's return paths, over SMTP."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=2526, help="Port to listen on (default 2526).")

    def handle(self, *args, host, port, **options):
        def ready(bound_host, bound_port):
            self.stdout.write(f"Inbound SMTP server listening on {bound_host}:{bound_port}")
            self.stdout.flush()

        metrics.serve_process_metrics("inbound-smtp")
        try:
            abandoned = asyncio.run(inbound_smtp_serve(host=host, port=port, on_ready=ready))
        finally:
            connections.close_all()
        if abandoned:
            # A recording stuck past the grace period would keep the interpreter waiting for its
            # thread at exit; its sender got no 250 and retries, and recording is idempotent.
            logging.shutdown()
            os._exit(1)
