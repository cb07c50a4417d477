"""The `make up` DNS server: publishes what every sending domain in the database needs, on loopback.

For each Domain: its DKIM key at `<selector>._domainkey.<domain>`, a DMARC and an SPF record, and an
MX pointing at the local mail catcher. Any other name asked for MX also gets the catcher, so mail
to any recipient (jane@example.com) stays on this machine; names under `.invalid` (RFC 6761)
stay NXDOMAIN, so a bounce for a non-existent domain can be tried too.
"""

from dnslib import MX, QTYPE, RR

from pufferpost.localdev.dns_server import Zone

CATCHER_HOST = "mail-catcher.localdev"
CATCHER_ADDRESS = "127.0.0.1"


def domain_records() -> list[tuple[str, str, object]]:
    from domains.models import Domain

    records = [(CATCHER_HOST, "A", CATCHER_ADDRESS)]
    for domain, selector, public_key in Domain.objects.values_list("domain", "selector", "dkim_public_key"):
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
