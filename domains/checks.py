"""What DNS says about one domain: its DKIM key record and its DMARC record.

Pure lookups and parsing, no database: the re-check task runs `inspect` in a thread pool and
the services turn the findings into state. Every lookup goes through `pufferpost.dns`.
"""

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum

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


@dataclass(frozen=True)
class Target:
    """The few columns a check needs, so lookups run without touching the database."""

    id: str
    domain: str
    selector: str
    public_key: str

    @property
    def dkim_host(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dmarc_host(self) -> str:
        return f"_dmarc.{self.domain}"


@dataclass(frozen=True)
class Findings:
    dkim: DkimFinding
    dkim_error: str
    dmarc: DmarcFinding
    dmarc_error: str


class InvalidTagList(ValueError):
    pass


_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_WSP = re.compile(r"[ \t\r\n]+")
_DMARC = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)


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


def inspect_dkim(target: Target, res=None) -> tuple[DkimFinding, str]:
    if not target.public_key:
        return DkimFinding.NO_KEY, "The DKIM signing key has not been issued yet; read the domain again in a moment."
    host = target.dkim_host
    answer = dns.txt(host, res)
    if answer.outcome == dns.Outcome.ERROR:
        return DkimFinding.UNKNOWN, f"Could not look up the TXT record at {host} ({answer.error}); will try again."
    if answer.missing:
        return DkimFinding.MISSING, f"No TXT record at {host}"
    candidates = [text for text in answer.records if _looks_like_dkim(text)]
    if not candidates:
        return DkimFinding.MISSING, f"No DKIM key record among the TXT records at {host}"
    reasons = [judge_dkim_record(text, target.public_key) for text in candidates]
    if "" in reasons:
        return DkimFinding.VALID, ""
    return DkimFinding.WRONG, f"TXT record at {host} {reasons[0]}"


def inspect_dmarc(target: Target, res=None) -> tuple[DmarcFinding, str]:
    host = target.dmarc_host
    answer = dns.txt(host, res)
    if answer.outcome == dns.Outcome.ERROR:
        return DmarcFinding.UNKNOWN, f"Could not look up the TXT record at {host} ({answer.error}); will try again."
    if answer.missing:
        return DmarcFinding.MISSING, f"No TXT record at {host}"
    if any(_DMARC.match(text) for text in answer.records):
        return DmarcFinding.PRESENT, ""
    return DmarcFinding.MISSING, f"No TXT record at {host} starts with v=DMARC1"


def inspect(target: Target, res=None) -> Findings:
    """Look up both records of one domain (thread-safe: one resolver per call, no database).
    `res` may bound the lookups together (`dns.resolver(total=…)`)."""
    res = res or dns.resolver()
    dkim, dkim_error = inspect_dkim(target, res)
    dmarc, dmarc_error = inspect_dmarc(target, res)
    return Findings(dkim=dkim, dkim_error=dkim_error, dmarc=dmarc, dmarc_error=dmarc_error)
