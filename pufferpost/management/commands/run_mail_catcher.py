import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from pufferpost.localdev.mail_catcher import mail_catcher


class Command(BaseCommand):
    help = (
        "Development SMTP server: stores every message as an .eml file (envelope in a .json sidecar); "
        "refuses bounce…@ recipients (550) and defers defer…@ (451). Never relays anything."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=2525, help="0 picks a free port")
        parser.add_argument("--dir", default=str(settings.VAR_DIR / "mail"), help="where .eml files go")

    def handle(self, *args, **options):
        directory = Path(options["dir"]).resolve()
        server = mail_catcher(directory, host=options["host"], port=options["port"])
        server.start()
        self.stdout.write(f"mail catcher listening on {options['host']}:{server.port}, writing to {directory}")
        self.stdout.flush()
        _wait_for_signal()
        server.stop()


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
