"""The `make up` DNS server: publishes what every sending domain needs, on loopback.

The domains come from the caller (the `run_dev_dns` command in domains/ reads them from the
database), so this module knows nothing of the apps above it. For each domain: its DKIM key at `<selector>._domainkey.<domain>`, a DMARC and an SPF record, and an
MX pointing at the local mail catcher. Any other name asked for MX also gets the catcher, so mail
to any recipient (jane@example.com) stays on this machine; names under `.invalid` (RFC 6761)
stay NXDOMAIN, so a bounce for a non-existent domain can be tried too.
"""

from collections.abc import Iterable

from dnslib import MX, QTYPE, RR

from pufferpost.localdev.dns_server import Zone

CATCHER_HOST = "mail-catcher.localdev"
CATCHER_ADDRESS = "127.0.0.1"


def domain_records(domains: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, object]]:
    """The zone's records for `(domain, dkim selector, dkim public key)` rows, plus the catcher's address."""
    records = [(CATCHER_HOST, "A", CATCHER_ADDRESS)]
    for domain, selector, public_key in domains:
        records.append((domain, "MX", (10, CATCHER_HOST)))
        records.append((domain, "TXT", f"v=spf1 ip4:{CATCHER_ADDRESS} -all"))
        records.append((f"_dmarc.{domain}", "TXT", "v=DMARC1; p=none"))
        if selector and public_key:
            records.append((f"{selector}._domainkey.{domain}", "TXT", f"v=DKIM1; k=rsa; p={public_key}"))
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
