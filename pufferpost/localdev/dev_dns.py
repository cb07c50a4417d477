"""The `make up` DNS server: publishes what every sending domain needs, on loopback.

The records come from the caller (the `run_dev_dns` command in domains/ reads every domain's
`dns_records`, the very list the API gives the customer), so this module knows nothing of the apps
above it and the walk-through shows the values the customer will type. Each sending domain also
gets an MX pointing at the local mail catcher. Any other name asked for MX also gets the catcher, so mail
to any recipient (jane@example.com) stays on this machine; names under `.invalid` (RFC 6761)
stay NXDOMAIN, so a bounce for a non-existent domain can be tried too.
"""

from collections.abc import Iterable

from dnslib import MX, QTYPE, RR

from pufferpost.localdev.dns_server import Zone
from pufferpost.localdev.world import for_make_up, records_for

CATCHER_HOST = "mail-catcher.localdev"
CATCHER_ADDRESS = "127.0.0.1"


def domain_records(
    domains: Iterable[tuple[str, list[dict]]], *, inbound_host: str = ""
) -> list[tuple[str, str, object]]:
    """The zone for `(domain, dns_records)` pairs: the records customers are told to publish (each
    with `type`, `host`, `value` and an MX's `priority`) exactly as given, an MX to the catcher for
    each sending domain (mail to it stays on this machine), and the catcher's address.

    `inbound_host` (the operator's inbound host the return-path MX names) gets the loopback address.
    """
    # The receiving world's provider-like domains (gmail.test, outlook.test, …; `run_world`).
    records = [(CATCHER_HOST, "A", CATCHER_ADDRESS), *records_for(for_make_up())]
    if inbound_host:
        records.append((inbound_host, "A", CATCHER_ADDRESS))
    for domain, published in domains:
        records.append((domain, "MX", (10, CATCHER_HOST)))
        for record in published:
            if record["type"] == "MX":
                records.append((record["host"], "MX", (record["priority"], record["value"])))
            else:
                records.append((record["host"], record["type"], record["value"]))
    return records


class DevZone(Zone):
    """A Zone where every name it does not know exists and has the catcher as its MX."""

    def resolve(self, request, handler):
        qname = str(request.q.qname).lower()
        with self._lock:
            known = any(name == qname for name, _ in self._records) or qname in self._failing
        if known or qname.rstrip(".").endswith(".invalid"):
            return super().resolve(request, handler)
        reply = request.reply()  # NOERROR: the name exists, with no data but its MX
        if QTYPE[request.q.qtype] == "MX":
            reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(CATCHER_HOST, 10), ttl=60))
        return reply
