import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from domains.models import Domain
from domains.serializers import dns_records_of
from pufferpost.localdev.dev_dns import DevZone, domain_records
from pufferpost.localdev.dns_server import LoopbackDnsServer
from pufferpost.management.commands.run_mail_catcher import _wait_for_signal


class Command(BaseCommand):
    help = (
        "Development DNS server: every domain's dns_records exactly as the API lists them "
        "(re-read every few seconds), and the local mail catcher as the MX of every other name."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=5353, help="0 picks a free port")
        parser.add_argument("--interval", type=float, default=3.0, help="seconds between database re-reads")

    def handle(self, *args, **options):
        zone = DevZone()
        zone.replace_all(domain_records(_domains(), inbound_host=settings.PUFFERPOST_INBOUND_MX_HOST))
        close_old_connections()
        server = LoopbackDnsServer(zone, host=options["host"], port=options["port"]).start()
        stop = threading.Event()
        refresher = threading.Thread(target=self._refresh, args=(zone, options["interval"], stop), daemon=True)
        refresher.start()
        self.stdout.write(f"dev DNS listening on {server.address} (udp+tcp)")
        self.stdout.flush()
        _wait_for_signal()
        stop.set()
        server.stop()

    def _refresh(self, zone, interval, stop):
        while not stop.wait(interval):
            try:
                zone.replace_all(domain_records(_domains(), inbound_host=settings.PUFFERPOST_INBOUND_MX_HOST))
            except Exception as exc:  # the database restarting must not kill the dev server
                self.stderr.write(f"dev DNS: could not re-read domains: {exc}")
                time.sleep(interval)
            finally:
                close_old_connections()


def _domains():
    """Every domain with its `dns_records`, as the API lists them to the customer."""
    return [(domain.domain, dns_records_of(domain)) for domain in Domain.objects.defer("dkim_private_key")]
