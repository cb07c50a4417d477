import asyncio

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from messaging.submission.smtp import submission_smtp_serve
from pufferpost import metrics


class Command(BaseCommand):
    help = "Accept mail from applications over SMTP (AUTH with an API key as the password) and send it."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=587, help="Submission port, STARTTLS (default 587).")
        parser.add_argument(
            "--tls-port", type=int, default=None, help="Also listen with implicit TLS on this port (e.g. 465)."
        )

    def handle(self, *args, host, port, tls_port, **options):
        def ready(bound_host, bound_port, bound_tls_port):
            line = f"SMTP submission listening on {bound_host}:{bound_port}"
            if bound_tls_port is not None:
                line += f" and {bound_host}:{bound_tls_port} (implicit TLS)"
            self.stdout.write(line)
            self.stdout.flush()

        metrics.serve_process_metrics("submission-smtp")
        try:
            asyncio.run(submission_smtp_serve(host=host, port=port, tls_port=tls_port, on_ready=ready))
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        finally:
            connections.close_all()
