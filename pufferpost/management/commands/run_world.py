import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from pufferpost.localdev.test_ca import TestCA
from pufferpost.localdev.world import World, for_make_up


class Command(BaseCommand):
    help = (
        "Development receiving world on 127.0.20.x: provider-like MX hosts for gmail.test, outlook.test, "
        "yahoo.test… that greylist, throttle and require TLS, so shaping and backoff show in the timeline."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=2525, help="the port every world host listens on")
        parser.add_argument("--ca-dir", default=str(settings.VAR_DIR / "world-ca"), help="where the test CA goes")

    def handle(self, *args, **options):
        ca = TestCA(Path(options["ca_dir"]))
        world = World(for_make_up(), ca=ca, port=options["port"], keep_content=False).start()
        names = ", ".join(f"{p.name} {p.address}" for p in world.providers.values())
        self.stdout.write(f"receiving world listening on port {world.port} ({names}); CA {ca.ca_file}")
        self.stdout.flush()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
        world.stop()
