"""The DNS records a customer publishes for one domain, and the values a check expects to find.

One source for both: `dns_records` in the API, the DNS doctor in `domains.checks` and the `make up`
dev DNS all read these functions, so what a customer is told to type is exactly what is checked
and what the dev DNS serves. White-label: every host is under the customer's domain, and every
value names only the customer's domain or the operator's own hosts (from settings).
"""

import ipaddress
from datetime import UTC, datetime

from django.conf import settings

# The recommended starter policy: observe first (DMARC is advisory here, never a gate).
DMARC_STARTER = "v=DMARC1; p=none;"
MX_PREFERENCE = 10


def dkim_value(public_key: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_key}"


def spf_terms() -> list[str]:
    """The mechanisms that authorise the sending source: ip4:/ip6: per egress network, the include."""
    terms = []
    for network in settings.PUFFERPOST_SPF_ADDRESSES:
        net = ipaddress.ip_network(network, strict=False)
        text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        terms.append(f"ip{net.version}:{text}")
    if settings.PUFFERPOST_SPF_INCLUDE:
        terms.append(f"include:{settings.PUFFERPOST_SPF_INCLUDE}")
    return terms


def spf_value() -> str:
    """`v=spf1 ip4:192.0.2.10 include:spf.operator.example ~all`; "" when nothing is configured."""
    terms = spf_terms()
    # ~all, not -all: a receiver still accepts (and DKIM still aligns) during an egress address change.
    return f"v=spf1 {' '.join(terms)} ~all" if terms else ""


def return_path_offered() -> bool:
    """A return path needs both an inbound host for its MX and a sending source for its SPF."""
    return bool(settings.PUFFERPOST_INBOUND_MX_HOST and spf_value())


def records_of(
    *,
    domain: str,
    dkim_host: str,
    public_key: str,
    return_path_host: str,
    next_dkim_host: str = "",
    next_public_key: str = "",
    retired_dkim_host: str = "",
    retired_public_key: str = "",
    retired_keep_until: datetime | None = None,
) -> list[dict]:
    """The to-do list for the customer's DNS provider, in the guide's shape (purpose, type, host, value).

    DKIM (once a key is issued), SPF at the return-path host, DMARC, then the return-path MX. When
    this installation offers no return path (no inbound host or no sending source configured),
    the SPF and MX records are left out rather than listing values that cannot work.
    """
    records = []
    if public_key:
        active = {"purpose": "DKIM", "type": "TXT", "host": dkim_host, "value": dkim_value(public_key)}
        records.append(active)
        # A rotation lists the new key (pending until it verifies) and, after it, the old one for
        # the grace period; `state` tells the three apart only while there is more than one.
        if next_public_key:
            active["state"] = "active"
            records.append(
                {
                    "purpose": "DKIM",
                    "type": "TXT",
                    "host": next_dkim_host,
                    "value": dkim_value(next_public_key),
                    "state": "pending",
                }
            )
        if retired_public_key and retired_keep_until and retired_keep_until > datetime.now(UTC):
            active["state"] = "active"
            records.append(
                {
                    "purpose": "DKIM",
                    "type": "TXT",
                    "host": retired_dkim_host,
                    "value": dkim_value(retired_public_key),
                    "state": "retiring",
                    "keep_until": retired_keep_until.astimezone(UTC).isoformat(timespec="seconds"),
                }
            )
    offered = return_path_offered() and return_path_host
    if offered:
        records.append({"purpose": "SPF", "type": "TXT", "host": return_path_host, "value": spf_value()})
    records.append({"purpose": "DMARC", "type": "TXT", "host": f"_dmarc.{domain}", "value": DMARC_STARTER})
    if offered:
        records.append(
            {
                "purpose": "RETURN_PATH",
                "type": "MX",
                "host": return_path_host,
                "value": settings.PUFFERPOST_INBOUND_MX_HOST,
                "priority": MX_PREFERENCE,
            }
        )
    return records
