"""What DNS says about one domain, record by record: the DNS doctor.

Pure lookups and parsing, no database: the re-check task runs `inspect` in a thread pool and the
services turn the findings into state. Every lookup goes through `pufferpost.dns` (and the SPF
evaluation through `domains.spf`, which uses the same resolver).

Each published record gets a `Verdict` a person can act on: what is wrong (missing; a wrong value,
with what was expected and what was found; published as a CNAME or at the wrong host, such as the
classic double suffix `mlr1._domainkey.acme.com.acme.com`; a DKIM key that does not match, is
truncated, is split wrongly, is in testing mode or revoked; two SPF records; an SPF record over the
10-lookup limit), and a lookup that could not be answered (timeout, SERVFAIL) is never reported as
"missing". Values in verdicts name only the customer's domain and the operator's hosts.
"""

import base64
import binascii
import ipaddress
import itertools
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from django.conf import settings

from domains import records, spf
from domains.models import RETURN_PATH_LABEL, return_path_host_of
from pufferpost import dns


class DkimFinding(StrEnum):
    VALID = "valid"  # a record carries our key with acceptable tags
    WRONG = "wrong"  # a record is there but does not carry our key, or its tags exclude it
    MISSING = "missing"  # no record at the host (NXDOMAIN / no TXT / no DKIM-looking TXT)
    UNKNOWN = "unknown"  # the resolver could not answer: says nothing about the record
    NO_KEY = "no_key"  # no key issued yet, nothing to look for


class DmarcFinding(StrEnum):
    PRESENT = "present"
    MISSING = "missing"
    UNKNOWN = "unknown"


class ReturnPathFinding(StrEnum):
    VALID = "valid"  # MX names the inbound host and SPF passes for every sending address
    WRONG = "wrong"
    MISSING = "missing"
    UNKNOWN = "unknown"
    NOT_OFFERED = "not_offered"  # this installation configures no inbound host or sending source


class Status(StrEnum):
    """A verdict's status: `ok` and `warning` work; `missing` and `wrong` do not; `unreachable`
    means DNS did not answer, which says nothing about the record."""

    OK = "ok"
    WARNING = "warning"
    MISSING = "missing"
    WRONG = "wrong"
    UNREACHABLE = "unreachable"
    PENDING = "pending"


@dataclass(frozen=True)
class Verdict:
    purpose: str
    type: str
    host: str
    status: str
    problem: str = ""  # a stable code: nxdomain, no_record, cname, wrong_host, key_mismatch, …
    message: str = ""
    expected: str = ""
    found: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        data = asdict(self)
        data["found"] = list(self.found)
        return data


@dataclass(frozen=True)
class Target:
    """The few columns a check needs, so lookups run without touching the database."""

    id: str
    domain: str
    selector: str
    public_key: str
    next_selector: str = ""  # a rotation's new key, pending until its record verifies
    next_public_key: str = ""

    @property
    def dkim_host(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dmarc_host(self) -> str:
        return f"_dmarc.{self.domain}"

    @property
    def return_path_host(self) -> str:
        return return_path_host_of(self.domain)


@dataclass(frozen=True)
class Findings:
    dkim: DkimFinding
    dkim_error: str
    dmarc: DmarcFinding
    dmarc_error: str
    return_path: ReturnPathFinding = ReturnPathFinding.NOT_OFFERED
    return_path_error: str = ""
    verdicts: tuple[Verdict, ...] = ()
    dmarc_policy: dict = field(default_factory=dict)
    next_dkim: DkimFinding | None = None  # the rotation's new key, when one is pending
    next_public_key: str = ""


class InvalidTagList(ValueError):
    pass


_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_WSP = re.compile(r"[ \t\r\n]+")
_DMARC = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)
_SPF = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
# An address that no sane SPF record authorises (RFC 5737 documentation range): evaluating for it
# walks the whole record, which is what the 10-lookup limit is about. Only DNS is asked, never it.
_UNMATCHED_IP = "192.0.2.1"


def parse_tag_list(text: str) -> dict[str, str]:
    """RFC 6376 §3.2 `tag=value;` list: whitespace around names, `=` and values is ignored.

    Tag names are case-sensitive; a duplicated tag or a malformed spec makes the whole list
    invalid, as the RFC requires. A trailing `;` is allowed.
    """
    tags: dict[str, str] = {}
    specs = text.split(";")
    if specs and not specs[-1].strip():
        specs = specs[:-1]
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or not _TAG_NAME.match(name):
            raise InvalidTagList(f"malformed tag {spec.strip()!r}")
        if name in tags:
            raise InvalidTagList(f"tag {name}= appears twice")
        tags[name] = value.strip()
    return tags


def _key_bytes(value: str) -> bytes:
    return base64.b64decode(_WSP.sub("", value), validate=True)


def judge_dkim_record(text: str, public_key: str) -> str:
    """Why one TXT string is not an acceptable key record for `public_key`; "" when it is."""
    try:
        tags = parse_tag_list(text)
    except InvalidTagList as exc:
        return f"is not a valid DKIM key record ({exc})"
    if "v" in tags and tags["v"] != "DKIM1":
        return f"has v={tags['v']}, which must be DKIM1"
    if "p" not in tags:
        return "has no p= tag"
    if "k" in tags and tags["k"].lower() != "rsa":
        return f"has k={tags['k']}, but the key is rsa"
    if "h" in tags and "sha256" not in {h.strip().lower() for h in tags["h"].split(":")}:
        return f"has h={tags['h']}, which must include sha256"
    if "s" in tags and not {s.strip() for s in tags["s"].split(":")} & {"*", "email"}:
        return f"has s={tags['s']}, which must include email"
    if not _WSP.sub("", tags["p"]):
        return "has an empty p= (a revoked key)"
    try:
        published = _key_bytes(tags["p"])
    except (binascii.Error, ValueError):
        return "has a p= value that is not valid base64"
    if published != _key_bytes(public_key):
        return "has a different public key"
    return ""


def _looks_like_dkim(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith("v=DKIM1") or bool(re.search(r"(^|;)\s*p\s*=", text))


# --- verdict helpers ----------------------------------------------------------------------------


def _unreachable(base: dict, answer: dns.Answer, rdtype: str) -> Verdict:
    host = base["host"]
    if answer.failure == dns.Failure.TIMEOUT:
        problem = "dns_timeout"
        message = (
            f"The {rdtype} lookup of {host} timed out. This says nothing about the record (it is not "
            "reported missing); if it keeps happening, your DNS provider's servers are slow or unreachable."
        )
    elif answer.failure == dns.Failure.SERVFAIL:
        problem = "dns_servfail"
        message = (
            f"The DNS servers answered SERVFAIL for {host}: the zone is misconfigured at your DNS provider "
            "(a broken delegation, or a DNSSEC signature failure). Receivers cannot read the record either."
        )
    else:
        problem = "dns_error"
        message = f"Could not look up {rdtype} {host} ({answer.error})."
    return Verdict(**base, status=Status.UNREACHABLE, problem=problem, message=message + " Will try again.")


def _suffixes(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)][:3]


def _missing(base: dict, answer: dns.Answer, rdtype: str, domain: str, res, lookup, *, thorough=True) -> Verdict:
    """Why a record is not at its host: a CNAME there, the double suffix, or simply not published.

    The double-suffix probes cost a lookup per suffix, so the bulk drift re-check skips them
    (`thorough=False`) and a refresh, which a person asked for, makes them.
    """
    host = base["host"]
    if answer.alias_of:
        target = answer.alias_of
        return Verdict(
            **base,
            status=Status.WRONG,
            problem="cname",
            message=(
                f"{host} is a CNAME (to {target}), so it cannot hold the {rdtype} record and {target} does not "
                f"have it. Delete the CNAME at {host} and publish the {rdtype} record there instead."
            ),
            found=(f"CNAME {target}",),
        )
    for suffix in _suffixes(domain) if thorough else ():
        doubled = f"{host}.{suffix}"
        there = lookup(doubled, res)
        if there.outcome == dns.Outcome.FOUND and there.records:
            relative = host[: -len(suffix) - 1]
            return Verdict(
                **base,
                status=Status.WRONG,
                problem="wrong_host",
                message=(
                    f"The record is published at {doubled}, not at {host}: your DNS provider added {suffix} "
                    f"to the host you typed. Enter the host as {relative} (the provider adds .{suffix}), "
                    f"and delete the record at {doubled}."
                ),
                found=tuple(f"{doubled} {_shown(r)}" for r in there.records),
            )
    if answer.outcome == dns.Outcome.NXDOMAIN:
        return Verdict(
            **base,
            status=Status.MISSING,
            problem="nxdomain",
            message=f"{host} does not exist in DNS (NXDOMAIN): no record has been published there yet.",
        )
    return Verdict(
        **base,
        status=Status.MISSING,
        problem="no_record",
        message=f"{host} exists but has no {rdtype} record; publish the record below.",
    )


def _shown(record) -> str:
    if isinstance(record, tuple):
        return f"{record[0]} {record[1]}"
    return str(record)


# --- DKIM ---------------------------------------------------------------------------------------


def _key_of(text: str) -> str:
    try:
        return _WSP.sub("", parse_tag_list(text).get("p", ""))
    except InvalidTagList:
        match = re.search(r"(?:^|;)\s*p\s*=([^;]*)", text)
        return _WSP.sub("", match.group(1)) if match else ""


def _dkim_problem(texts: list[str], candidate: str, reason: str, public_key: str) -> tuple[str, str]:
    """The doctor's (problem, message) for a key record that does not verify."""
    if len(texts) > 1:
        for order in itertools.permutations(texts[:4]):
            if not judge_dkim_record("".join(order), public_key):
                return (
                    "split_wrongly",
                    f"The key record is split over {len(texts)} separate TXT records. It must be one TXT record: "
                    "delete them and publish the value as one record (several quoted strings inside one "
                    "record are fine; most DNS providers split a long value that way for you).",
                )
    if '"' in candidate and not judge_dkim_record(candidate.replace('"', ""), public_key):
        return (
            "split_wrongly",
            "The value contains quote characters: it was split into quoted strings in a field that stores "
            "them literally. Paste the value without quotes, or let your DNS provider split it.",
        )
    published = _key_of(candidate)
    if published and public_key.startswith(published) and len(published) < len(public_key):
        return (
            "key_truncated",
            f"The key stops after {len(published)} of its {len(public_key)} characters: the value was cut "
            "(often at 255 characters, the limit of one TXT string). Publish the whole value.",
        )
    if reason == "has an empty p= (a revoked key)":
        return "revoked", "The record has an empty p=, which revokes the key. Publish the value below."
    if reason == "has a different public key":
        return (
            "key_mismatch",
            "The record carries a different public key (from another provider, or an older key). "
            "Replace its value with the one below.",
        )
    return "wrong_value", f"The record {reason}. Replace its value with the one below."


def check_dkim(target: Target, res=None, *, thorough=True) -> tuple[DkimFinding, str, Verdict]:
    host = target.dkim_host if target.selector else ""
    base = {"purpose": "DKIM", "type": "TXT", "host": host}
    if not target.public_key:
        message = "The DKIM signing key has not been issued yet; read the domain again in a moment."
        return DkimFinding.NO_KEY, message, Verdict(**base, status=Status.PENDING, problem="no_key", message=message)
    base["expected"] = records.dkim_value(target.public_key)
    answer = dns.txt(host, res)
    if answer.outcome == dns.Outcome.ERROR:
        error = f"Could not look up the TXT record at {host} ({answer.error}); will try again."
        return DkimFinding.UNKNOWN, error, _unreachable(base, answer, "TXT")
    if answer.missing:
        verdict = _missing(base, answer, "TXT", target.domain, res, dns.txt, thorough=thorough)
        return DkimFinding.MISSING, f"No TXT record at {host}", verdict
    candidates = [text for text in answer.records if _looks_like_dkim(text)]
    if not candidates:
        verdict = Verdict(
            **base,
            status=Status.MISSING,
            problem="no_record",
            message=f"{host} has TXT records, but none is a DKIM key record. Publish the record below.",
            found=tuple(answer.records),
        )
        return DkimFinding.MISSING, f"No DKIM key record among the TXT records at {host}", verdict
    reasons = [judge_dkim_record(text, target.public_key) for text in candidates]
    if "" in reasons:
        valid = candidates[reasons.index("")]
        flags = {f.strip() for f in parse_tag_list(valid).get("t", "").split(":")}
        if "y" in flags:
            verdict = Verdict(
                **base,
                status=Status.WARNING,
                problem="testing_mode",
                message=(
                    "The record has t=y (testing mode): receivers may treat signed mail as unsigned. "
                    "Remove t=y once mail verifies."
                ),
                found=(valid,),
            )
        elif len(candidates) > 1:
            verdict = Verdict(
                **base,
                status=Status.WARNING,
                problem="several_records",
                message=f"{host} has {len(candidates)} DKIM key records; receivers may pick any. Delete the others.",
                found=tuple(candidates),
            )
        else:
            verdict = Verdict(**base, status=Status.OK)
        return DkimFinding.VALID, "", verdict
    problem, message = _dkim_problem(answer.records, candidates[0], reasons[0], target.public_key)
    verdict = Verdict(**base, status=Status.WRONG, problem=problem, message=message, found=tuple(answer.records))
    return DkimFinding.WRONG, f"TXT record at {host} {reasons[0]}", verdict


def inspect_dkim(target: Target, res=None) -> tuple[DkimFinding, str]:
    finding, error, _ = check_dkim(target, res)
    return finding, error


# --- DMARC --------------------------------------------------------------------------------------

_POLICIES = {"none", "quarantine", "reject"}


def parse_dmarc(text: str) -> dict:
    """The tags that matter of one DMARC record, with RFC 7489's defaults; raises InvalidTagList."""
    tags = parse_tag_list(text)
    p = tags.get("p", "").lower()
    sp = tags.get("sp", "").lower() or p
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return {
        "p": p,
        "sp": sp,
        "pct": pct,
        "rua": [u.strip() for u in tags.get("rua", "").split(",") if u.strip()],
        "adkim": "s" if tags.get("adkim", "r").lower() == "s" else "r",
        "aspf": "s" if tags.get("aspf", "r").lower() == "s" else "r",
    }


def organizational_domain(domain: str) -> str:
    """The registrable domain, approximately: the last two labels, or three under a two-letter
    country code whose second level is a generic one (`acme.co.uk`). No public-suffix list is
    shipped; the approximation is only used to find an inherited DMARC policy and for alignment."""
    labels = domain.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in {"co", "com", "org", "net", "ac", "gov", "edu"}:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _inherited_policy(domain: str, res) -> dict:
    """A subdomain without its own record falls under its organizational domain's (RFC 7489 §6.6.3),
    with that record's sp= as its policy."""
    org = organizational_domain(domain)
    if org == domain:
        return {}
    answer = dns.txt(f"_dmarc.{org}", res)
    found = [text for text in answer.records if _DMARC.match(text)] if answer.outcome == dns.Outcome.FOUND else []
    if len(found) != 1:
        return {}
    try:
        policy = parse_dmarc(found[0])
    except InvalidTagList:
        return {}
    return {**policy, "p": policy["sp"], "inherited_from": f"_dmarc.{org}"}


def check_dmarc(target: Target, res=None, *, thorough=True) -> tuple[DmarcFinding, str, Verdict, dict]:
    host = target.dmarc_host
    base = {"purpose": "DMARC", "type": "TXT", "host": host, "expected": records.DMARC_STARTER}
    answer = dns.txt(host, res)
    if answer.outcome == dns.Outcome.ERROR:
        error = f"Could not look up the TXT record at {host} ({answer.error}); will try again."
        return DmarcFinding.UNKNOWN, error, _unreachable(base, answer, "TXT"), {}
    if answer.missing:
        verdict = _missing(base, answer, "TXT", target.domain, res, dns.txt, thorough=thorough)
        return DmarcFinding.MISSING, f"No TXT record at {host}", verdict, _inherited_policy(target.domain, res)
    found = [text for text in answer.records if _DMARC.match(text)]
    if not found:
        verdict = Verdict(
            **base,
            status=Status.MISSING,
            problem="no_record",
            message=f"{host} has TXT records, but none starts with v=DMARC1. Publish the record below.",
            found=tuple(answer.records),
        )
        return DmarcFinding.MISSING, f"No TXT record at {host} starts with v=DMARC1", verdict, {}
    if len(found) > 1:
        message = (
            f"{host} has {len(found)} DMARC records; receivers then apply none of them (RFC 7489 §6.6.3). "
            "Keep exactly one."
        )
        verdict = Verdict(**base, status=Status.WRONG, problem="duplicate_dmarc", message=message, found=tuple(found))
        return DmarcFinding.MISSING, message, verdict, {}
    try:
        policy = parse_dmarc(found[0])
    except InvalidTagList as exc:
        message = f"The DMARC record is not a valid tag list ({exc}); receivers ignore it."
        verdict = Verdict(**base, status=Status.WRONG, problem="invalid_dmarc", message=message, found=tuple(found))
        return DmarcFinding.PRESENT, "", verdict, {}
    if policy["p"] not in _POLICIES:
        message = f"The DMARC record's p= is {policy['p'] or 'missing'}; it must be none, quarantine or reject."
        verdict = Verdict(**base, status=Status.WRONG, problem="invalid_dmarc", message=message, found=tuple(found))
        return DmarcFinding.PRESENT, "", verdict, policy
    return DmarcFinding.PRESENT, "", Verdict(**base, status=Status.OK, found=tuple(found)), policy


def inspect_dmarc(target: Target, res=None) -> tuple[DmarcFinding, str]:
    finding, error, _, _ = check_dmarc(target, res)
    return finding, error


# --- the return path (custom MAIL FROM): its MX and its SPF ---------------------------------------


def check_return_path_mx(target: Target, res=None, *, thorough=True, answer: dns.Answer | None = None) -> Verdict:
    host = target.return_path_host
    expected = settings.PUFFERPOST_INBOUND_MX_HOST
    base = {"purpose": "RETURN_PATH", "type": "MX", "host": host, "expected": f"{records.MX_PREFERENCE} {expected}"}
    answer = answer or dns.mx(host, res)
    if answer.outcome == dns.Outcome.ERROR:
        return _unreachable(base, answer, "MX")
    if answer.missing:
        return _missing(base, answer, "MX", target.domain, res, dns.mx, thorough=thorough)
    found = tuple(f"{pref} {exchange}" for pref, exchange in answer.records)
    hosts = {exchange.lower().rstrip(".") for _, exchange in answer.records}
    best = min(pref for pref, _ in answer.records)
    best_hosts = {exchange.lower().rstrip(".") for pref, exchange in answer.records if pref == best}
    if expected in best_hosts and len(hosts) == 1:
        return Verdict(**base, status=Status.OK, found=found)
    if expected in best_hosts:
        message = (
            f"{host} has other MX hosts beside {expected}; bounces sent to them never come back here. "
            "Delete the others."
        )
        return Verdict(**base, status=Status.WARNING, problem="other_mx", message=message, found=found)
    if hosts == {"."} or hosts == {""}:
        message = f"{host} publishes a null MX (it refuses all mail), so bounces cannot reach it."
        return Verdict(**base, status=Status.WRONG, problem="null_mx", message=message, found=found)
    message = (
        f"The MX record of {host} does not point at {expected}"
        + (" with the best preference" if expected in hosts else "")
        + ", so bounces go elsewhere. Set it to the value below."
    )
    return Verdict(**base, status=Status.WRONG, problem="wrong_value", message=message, found=found)


def _sample_addresses() -> list[str]:
    return [str(ipaddress.ip_network(n, strict=False).network_address) for n in settings.PUFFERPOST_SPF_ADDRESSES]


def check_return_path_spf(target: Target, res=None, *, thorough=True, answer: dns.Answer | None = None) -> Verdict:
    host = target.return_path_host
    base = {"purpose": "SPF", "type": "TXT", "host": host, "expected": records.spf_value()}
    answer = answer or dns.txt(host, res)
    if answer.outcome == dns.Outcome.ERROR:
        return _unreachable(base, answer, "TXT")
    if answer.missing:
        return _missing(base, answer, "TXT", target.domain, res, dns.txt, thorough=thorough)
    published = [text for text in answer.records if _SPF.match(text.strip())]
    if not published:
        message = f"{host} has TXT records, but none is an SPF record (v=spf1 …). Publish the record below."
        return Verdict(**base, status=Status.MISSING, problem="no_record", message=message, found=tuple(answer.records))
    found = tuple(published)
    if len(published) > 1:
        message = (
            f"{host} has {len(published)} SPF records. A name may have only one: receivers treat two as a "
            "permanent error (RFC 7208 §4.5) and SPF fails for all mail using it. Merge them into one record."
        )
        return Verdict(**base, status=Status.WRONG, problem="duplicate_spf", message=message, found=found)
    mail_from = f"{RETURN_PATH_LABEL}@{host}"
    # First the whole record (an address it cannot match walks every term), then each sending address.
    for ip in [_UNMATCHED_IP, *_sample_addresses()]:
        result, explanation = spf.evaluate(ip=ip, mail_from=mail_from, helo=host)
        if result == "temperror":
            message = (
                f"A lookup made while evaluating the SPF record of {host} could not be answered ({explanation}). "
                "This says nothing about the record. Will try again."
            )
            return Verdict(**base, status=Status.UNREACHABLE, problem="dns_error", message=message, found=found)
        if result == "permerror":
            if spf.too_many_lookups(explanation):
                message = (
                    f"The SPF record of {host} needs more than 10 DNS lookups (include:, a, mx, ptr, exists, "
                    "redirect=), so receivers stop with a permanent error (RFC 7208 §4.6.4). Publish the record below."
                )
                return Verdict(**base, status=Status.WRONG, problem="too_many_lookups", message=message, found=found)
            message = f"The SPF record of {host} is invalid ({explanation}); receivers treat it as a permanent error."
            return Verdict(**base, status=Status.WRONG, problem="invalid_spf", message=message, found=found)
        if ip != _UNMATCHED_IP and result != "pass":
            message = (
                f"The SPF record of {host} does not authorise the sending address {ip} (a receiver's result: "
                f"{result}). Replace it with the record below."
            )
            return Verdict(**base, status=Status.WRONG, problem="wrong_value", message=message, found=found)
    include = settings.PUFFERPOST_SPF_INCLUDE
    if include and f"include:{include}" not in published[0].lower().split():
        message = f"The SPF record of {host} does not include {include}. Replace it with the record below."
        return Verdict(**base, status=Status.WRONG, problem="wrong_value", message=message, found=found)
    return Verdict(**base, status=Status.OK, found=found)


_BROKEN = (Status.MISSING, Status.WRONG)


def check_return_path(target: Target, res=None, *, thorough=True) -> tuple[ReturnPathFinding, str, tuple[Verdict, ...]]:
    if not records.return_path_offered():
        message = (
            "This installation offers no return path for your domain (no inbound mail host or sending "
            "source is configured)."
        )
        return ReturnPathFinding.NOT_OFFERED, message, ()
    if not target.return_path_host:
        message = (
            f"{RETURN_PATH_LABEL}.{target.domain} would be longer than 253 characters: no return path is possible."
        )
        return ReturnPathFinding.NOT_OFFERED, message, ()
    txt = dns.txt(target.return_path_host, res)
    # A name that does not exist has no MX either: one lookup fewer for every domain not set up yet.
    mx = dns.Answer(dns.Outcome.NXDOMAIN, alias_of=txt.alias_of) if txt.outcome == dns.Outcome.NXDOMAIN else None
    verdicts = (
        check_return_path_spf(target, res, thorough=thorough, answer=txt),
        check_return_path_mx(target, res, thorough=thorough, answer=mx),
    )
    broken = [v for v in verdicts if v.status in _BROKEN]
    if broken:
        wrong = any(v.status == Status.WRONG for v in broken)
        return (ReturnPathFinding.WRONG if wrong else ReturnPathFinding.MISSING), broken[0].message, verdicts
    unreachable = [v for v in verdicts if v.status == Status.UNREACHABLE]
    if unreachable:
        return ReturnPathFinding.UNKNOWN, unreachable[0].message, verdicts
    return ReturnPathFinding.VALID, "", verdicts


def inspect(target: Target, res=None, *, thorough: bool = True) -> Findings:
    """Look up every record of one domain (thread-safe: one resolver per call, no database).

    `thorough=False` (the bulk drift re-check) skips the double-suffix probes of missing records;
    `res` may bound all the lookups together (`dns.resolver(total=…)`).
    """
    res = res or dns.resolver()
    dkim, dkim_error, dkim_verdict = check_dkim(target, res, thorough=thorough)
    dmarc, dmarc_error, dmarc_verdict, policy = check_dmarc(target, res, thorough=thorough)
    return_path, return_path_error, return_path_verdicts = check_return_path(target, res, thorough=thorough)
    next_dkim, next_verdicts = None, ()
    if target.next_public_key:
        pending = Target(target.id, target.domain, target.next_selector, target.next_public_key)
        next_dkim, _, next_verdict = check_dkim(pending, res, thorough=thorough)
        next_verdicts = (next_verdict,)
    spf_verdicts = [v for v in return_path_verdicts if v.purpose == "SPF"]
    mx_verdicts = [v for v in return_path_verdicts if v.purpose == "RETURN_PATH"]
    return Findings(
        dkim=dkim,
        dkim_error=dkim_error,
        dmarc=dmarc,
        dmarc_error=dmarc_error,
        return_path=return_path,
        return_path_error=return_path_error,
        # The order of `dns_records`: DKIM, SPF, DMARC, the return-path MX.
        verdicts=(dkim_verdict, *next_verdicts, *spf_verdicts, dmarc_verdict, *mx_verdicts),
        dmarc_policy=policy,
        next_dkim=next_dkim,
        next_public_key=target.next_public_key,
    )
