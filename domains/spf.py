"""A real SPF evaluation (RFC 7208) of the return-path host, through the platform's resolver.

pyspf does the evaluation (mechanisms, macros, the 10-lookup and void-lookup limits). It has no
resolver parameter: it calls its module-level `DNSLookup`, which we point at `pufferpost.dns` so
its queries honour PUFFERPOST_DNS_NAMESERVERS and the platform's timeout like every other lookup.
"""

import dns.exception
import dns.resolver
import spf
from django.conf import settings

from pufferpost import dns as pdns


def _lookup(name, qtype, strict=True, timeout=None):
    """pyspf's DNSLookup contract: [((name, qtype), value), …]; TempError when DNS cannot answer."""
    res = pdns.resolver()
    try:
        answer = res.resolve(name, qtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    except (dns.exception.DNSException, OSError) as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    found = []
    for rdata in answer.rrset or ():
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


spf.DNSLookup = _lookup


def evaluate(*, ip: str, mail_from: str, helo: str) -> tuple[str, str]:
    """(result, explanation) for a MAIL FROM of `mail_from` from `ip`: pass, fail, softfail, neutral,
    none, permerror or temperror, as a receiver computes it."""
    budget = max(settings.PUFFERPOST_DNS_TIMEOUT * 4, 1.0)
    return spf.check2(i=ip, s=mail_from, h=helo, timeout=settings.PUFFERPOST_DNS_TIMEOUT, querytime=budget)


def too_many_lookups(explanation: str) -> bool:
    text = explanation.lower()
    return "too many dns lookups" in text or ("more than" in text and "lookups" in text)
