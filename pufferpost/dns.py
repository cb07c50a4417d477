"""Every DNS lookup the platform makes goes through here (and honours PUFFERPOST_DNS_NAMESERVERS).

Answers are classified so callers can tell "the record is not there" (NXDOMAIN / no data),
which may change a verification state, from "we could not ask" (timeout, SERVFAIL, refused),
which must never do so.
"""

from dataclasses import dataclass, field
from enum import StrEnum

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
from django.conf import settings


class Outcome(StrEnum):
    FOUND = "found"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    ERROR = "error"  # timeout, SERVFAIL, refused, network error: try again later


class Failure(StrEnum):
    """Why an ERROR answer is one: a person fixes a SERVFAIL differently from a timeout."""

    NONE = ""
    TIMEOUT = "timeout"
    SERVFAIL = "servfail"  # every nameserver answered SERVFAIL/REFUSED (broken delegation, DNSSEC)
    OTHER = "other"


@dataclass
class Answer:
    outcome: Outcome
    records: list = field(default_factory=list)
    error: str = ""
    failure: Failure = Failure.NONE
    # Where a CNAME chain led, when the asked name is an alias ("" when it is not).
    alias_of: str = ""

    @property
    def missing(self) -> bool:
        return self.outcome in (Outcome.NXDOMAIN, Outcome.NODATA)


def resolver() -> dns.resolver.Resolver:
    servers = settings.PUFFERPOST_DNS_NAMESERVERS
    res = dns.resolver.Resolver(configure=not servers)
    if servers:
        res.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    res.timeout = settings.PUFFERPOST_DNS_TIMEOUT
    res.lifetime = settings.PUFFERPOST_DNS_TIMEOUT
    res.cache = None
    return res


def _query(name: str, rdtype: str, res: dns.resolver.Resolver | None = None) -> Answer:
    res = res or resolver()
    try:
        answer = res.resolve(name, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as exc:
        return Answer(Outcome.NXDOMAIN, error=f"{name} does not exist", alias_of=_alias(name, exc))
    except dns.resolver.NoNameservers as exc:
        return Answer(
            Outcome.ERROR,
            error=f"no nameserver answered for {name} ({exc.__class__.__name__})",
            failure=Failure.SERVFAIL,
        )
    except dns.exception.Timeout:
        return Answer(Outcome.ERROR, error=f"timed out looking up {rdtype} {name}", failure=Failure.TIMEOUT)
    except (dns.exception.DNSException, OSError) as exc:
        return Answer(Outcome.ERROR, error=f"lookup of {rdtype} {name} failed: {exc}", failure=Failure.OTHER)
    if answer.rrset is None:
        return Answer(Outcome.NODATA, error=f"no {rdtype} record at {name}", alias_of=_alias(name, answer))
    return Answer(Outcome.FOUND, records=list(answer.rrset), alias_of=_alias(name, answer))


def _alias(name: str, result) -> str:
    try:
        canonical = result.canonical_name
    except (TypeError, KeyError, AttributeError):
        return ""
    target = canonical.to_text(omit_final_dot=True)
    return target if target.lower() != name.lower().rstrip(".") else ""


def txt(name: str, res: dns.resolver.Resolver | None = None) -> Answer:
    """TXT records at `name`, each multi-string record joined into one str."""
    answer = _query(name, "TXT", res)
    answer.records = [b"".join(r.strings).decode("utf-8", "replace") for r in answer.records]
    return answer


def mx(name: str, res: dns.resolver.Resolver | None = None) -> Answer:
    """MX records at `name` as `(preference, host)` sorted by preference; host "." is a null MX."""
    answer = _query(name, "MX", res)
    answer.records = sorted((r.preference, r.exchange.to_text(omit_final_dot=True) or ".") for r in answer.records)
    return answer


def addresses(name: str, res: dns.resolver.Resolver | None = None) -> Answer:
    """A and AAAA addresses of `name` (A first)."""
    res = res or resolver()
    found, last = [], None
    for rdtype in ("A", "AAAA"):
        answer = _query(name, rdtype, res)
        found.extend(r.to_text() for r in answer.records)
        last = answer
    if found:
        return Answer(Outcome.FOUND, records=found)
    return last
