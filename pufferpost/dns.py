"""Every DNS lookup the platform makes goes through here (and honours PUFFERPOST_DNS_NAMESERVERS).

Answers are classified so callers can tell "the record is not there" (NXDOMAIN / no data),
which may change a verification state, from "we could not ask" (timeout, SERVFAIL, refused),
which must never do so.

Delivery's lookups (a recipient domain's MX, its hosts' addresses, its MTA-STS record) are asked
with `cached=True`: answers are kept in the process for their TTL, capped by
PUFFERPOST_DNS_CACHE_SECONDS (what a caching resolver or Postfix does; a batch to 40 domains asked
about 160 questions before). Absent records are kept for at most a minute, failures never.
Verification's lookups (domains.checks) always ask: a customer who just published a record wants
it seen. (dnspython's own resolver cache keeps raw answers for their full TTL with no ceiling and
no negative caching without an SOA; this one keeps the classified answer, capped.)
"""

import dataclasses
import threading
import time
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
    ttl: int | None = None  # seconds the records may be kept (FOUND)

    @property
    def missing(self) -> bool:
        return self.outcome in (Outcome.NXDOMAIN, Outcome.NODATA)


class _Resolver(dns.resolver.Resolver):
    """A resolver whose lookups together end by `deadline` (time.monotonic), when one is set: each
    lookup gets what is left of it, and once it has passed a lookup times out without asking."""

    deadline: float | None = None

    def resolve(self, *args, **kwargs):
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise dns.exception.Timeout(timeout=0.0)
            kwargs["lifetime"] = min(kwargs.get("lifetime") or self.lifetime, remaining)
        return super().resolve(*args, **kwargs)


def resolver(*, total: float | None = None) -> dns.resolver.Resolver:
    """A resolver for PUFFERPOST_DNS_NAMESERVERS; `total` bounds every lookup made with it
    together (seconds), e.g. the lookups one web request does."""
    servers = settings.PUFFERPOST_DNS_NAMESERVERS
    res = _Resolver(configure=not servers)
    if total is not None:
        res.deadline = time.monotonic() + total
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
    return Answer(Outcome.FOUND, records=list(answer.rrset), alias_of=_alias(name, answer), ttl=answer.rrset.ttl)


def _alias(name: str, result) -> str:
    try:
        canonical = result.canonical_name
    except (TypeError, KeyError, AttributeError):
        return ""
    target = canonical.to_text(omit_final_dot=True)
    return target if target.lower() != name.lower().rstrip(".") else ""


NEGATIVE_CACHE_SECONDS = 60.0
_CACHE_ENTRIES = 20_000
_cache: dict[tuple, tuple[float, Answer]] = {}
_cache_lock = threading.Lock()


def cache_clear() -> None:
    """Forget every cached answer (the local DNS zone of the tests and `make up` calls it on change)."""
    with _cache_lock:
        _cache.clear()


def _cached(kind: str, name: str, lookup) -> Answer:
    """`lookup()`'s answer, from the process cache while it is fresh (a copy: callers may change it)."""
    cap = settings.PUFFERPOST_DNS_CACHE_SECONDS
    if cap <= 0:
        return lookup()
    key = (tuple(settings.PUFFERPOST_DNS_NAMESERVERS or ()), kind, name.lower().rstrip("."))
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return dataclasses.replace(hit[1], records=list(hit[1].records))
    answer = lookup()
    if answer.outcome == Outcome.FOUND:
        keep = min(cap, answer.ttl if answer.ttl is not None else cap)
    elif answer.missing:
        keep = min(cap, NEGATIVE_CACHE_SECONDS)
    else:
        keep = 0.0  # a failure is asked again next time
    if keep > 0:
        with _cache_lock:
            if len(_cache) >= _CACHE_ENTRIES:
                _cache.clear()  # bounded: a full cache starts over rather than grow
            _cache[key] = (now + keep, dataclasses.replace(answer, records=list(answer.records)))
    return answer


def txt(name: str, res: dns.resolver.Resolver | None = None, *, cached: bool = False) -> Answer:
    """TXT records at `name`, each multi-string record joined into one str."""
    if cached:
        return _cached("TXT", name, lambda: txt(name, res))
    answer = _query(name, "TXT", res)
    answer.records = [b"".join(r.strings).decode("utf-8", "replace") for r in answer.records]
    return answer


def mx(name: str, res: dns.resolver.Resolver | None = None, *, cached: bool = False) -> Answer:
    """MX records at `name` as `(preference, host)` sorted by preference; host "." is a null MX."""
    if cached:
        return _cached("MX", name, lambda: mx(name, res))
    answer = _query(name, "MX", res)
    answer.records = sorted((r.preference, r.exchange.to_text(omit_final_dot=True) or ".") for r in answer.records)
    return answer


def addresses(name: str, res: dns.resolver.Resolver | None = None, *, cached: bool = False) -> Answer:
    """A and AAAA addresses of `name` (A first)."""
    if cached:
        return _cached("A+AAAA", name, lambda: addresses(name, res))
    res = res or resolver()
    found, last, ttls = [], None, []
    for rdtype in ("A", "AAAA"):
        answer = _query(name, rdtype, res)
        found.extend(r.to_text() for r in answer.records)
        if answer.ttl is not None:
            ttls.append(answer.ttl)
        last = answer
    if found:
        return Answer(Outcome.FOUND, records=found, ttl=min(ttls) if ttls else None)
    return last
