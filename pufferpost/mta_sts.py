"""MTA-STS (RFC 8461): a recipient domain's published rule that its mail arrives only over verified TLS.

Discovery: the `_mta-sts.<domain>` TXT record (through `pufferpost.dns`) carries the policy's `id`;
the policy itself is fetched from `https://mta-sts.<domain>/.well-known/mta-sts.txt` through
`pufferpost.http` (the platform's address policy: private and loopback addresses only where
PUFFERPOST_SMTP_ALLOW_PRIVATE allows them for MX hosts too; no redirects; at most 64 KiB; the
whole fetch bounded by PUFFERPOST_MTA_STS_TIMEOUT). The certificate must verify for the policy
host against the system store (plus PUFFERPOST_TLS_CA_FILE, a test or dev CA).

Caching (§5.1, §10.2): a policy is kept in Redis for its `max_age`, keyed by domain, with its id.
A TXT record whose id differs from the cached one means a new policy: it is fetched, and if the
fetch fails, or returns something invalid, the cached policy stays in force. With no TXT record,
a cached policy is still used until it expires (an attacker who strips DNS cannot downgrade).
With no cached policy, a failed fetch or an invalid policy means no policy (the mail goes as
without MTA-STS) and the reason is recorded.

What delivery does with it (`pufferpost.smtp`): `enforce` delivers only to MX hosts matching the
policy's `mx` patterns, over TLS whose certificate verifies for the MX host name; otherwise it
defers, never falling back to plaintext. `testing` delivers as usual and records what failed.
`none` is no policy.
"""

import json
import logging
import re
from dataclasses import dataclass

import redis
from django.conf import settings

from pufferpost import dns, http
from pufferpost import redis as pp_redis

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 §3.2: at most one year
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class PolicyError(ValueError):
    """A policy (or TXT record) that does not follow RFC 8461; the text says what is wrong."""


@dataclass(frozen=True)
class Policy:
    mode: str  # enforce | testing | none
    mx: tuple[str, ...]
    max_age: int
    id: str = ""

    def matches(self, host: str) -> bool:
        """Does the MX host name match one of the policy's patterns (§4.1: `*.` stands for exactly one label)?"""
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, _, rest = host.partition(".")
                if label and rest == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False

    def as_dict(self) -> dict:
        return {"mode": self.mode, "mx": list(self.mx), "max_age": self.max_age, "id": self.id}


@dataclass(frozen=True)
class Lookup:
    """The policy in force for a domain (None: no policy) and what happened finding it (for the timeline)."""

    policy: Policy | None = None
    source: str = ""  # "fetched", "cache", "" (none)
    error: str = ""  # why there is no (new) policy: a bad TXT record, a failed fetch, an invalid policy

    @property
    def enforced(self) -> bool:
        return self.policy is not None and self.policy.mode == "enforce"

    @property
    def testing(self) -> bool:
        return self.policy is not None and self.policy.mode == "testing"

    def record(self) -> dict | None:
        """What the `sent` event (or a deferral) says about the domain's MTA-STS; None when it has none at all."""
        if self.policy is None:
            return {"mode": "none", "error": self.error} if self.error else None
        out = {"mode": self.policy.mode, "id": self.policy.id, "source": self.source}
        if self.error:
            out["refresh_error"] = self.error
        return out


def txt_id(domain: str) -> tuple[str | None, str]:
    """(the id of the domain's `_mta-sts` TXT record or None, an error when it is there but unusable)."""
    answer = dns.txt(f"_mta-sts.{domain}", cached=True)
    if answer.outcome != dns.Outcome.FOUND:
        if answer.outcome == dns.Outcome.ERROR:
            return None, f"_mta-sts.{domain} TXT lookup failed: {answer.error}"
        return None, ""
    records = [r for r in answer.records if r.startswith("v=STSv1")]
    if not records:
        return None, ""
    if len(records) > 1:
        return None, f"_mta-sts.{domain} has {len(records)} STSv1 TXT records (exactly one is allowed)"
    fields = {}
    for part in records[0].split(";"):
        part = part.strip(" \t")
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            return None, f"_mta-sts.{domain} TXT record is malformed: {records[0]!r}"
        fields.setdefault(key, value)
    if fields.get("v") != "STSv1" or not _ID.match(fields.get("id", "")):
        return None, f"_mta-sts.{domain} TXT record has no valid v=STSv1 and id: {records[0]!r}"
    return fields["id"], ""


def policy_parse(text: str) -> Policy:
    """A policy body, strictly (§3.2): `version: STSv1`, `mode` enforce|testing|none, `max_age`
    0..31557600, `mx` patterns (at least one unless the mode is none); unknown keys are ignored."""
    if "\x00" in text:
        raise PolicyError("the policy contains a NUL byte")
    lines = [line for line in re.split(r"\r?\n", text) if line.strip(" \t")]
    fields: dict[str, str] = {}
    mx: list[str] = []
    for number, line in enumerate(lines, start=1):
        key, colon, value = line.partition(":")
        if not colon or not _KEY.match(key):
            raise PolicyError(f"line {number} is not `key: value`: {line[:80]!r}")
        value = value.strip(" \t")
        if key == "mx":
            mx.append(_mx_pattern(value))
        elif key in ("version", "mode", "max_age"):
            if key in fields:
                raise PolicyError(f"`{key}` appears twice")
            fields[key] = value
    if fields.get("version") != "STSv1":
        raise PolicyError(f"version must be STSv1, not {fields.get('version')!r}")
    mode = fields.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"mode must be enforce, testing or none, not {mode!r}")
    raw_age = fields.get("max_age", "")
    if not re.fullmatch(r"\d{1,10}", raw_age) or int(raw_age) > MAX_AGE_LIMIT:
        raise PolicyError(f"max_age must be a whole number of seconds up to {MAX_AGE_LIMIT}, not {raw_age!r}")
    if mode != "none" and not mx:
        raise PolicyError(f"a policy in mode {mode} needs at least one mx pattern")
    return Policy(mode=mode, mx=tuple(mx), max_age=int(raw_age))


def _mx_pattern(value: str) -> str:
    pattern = value.lower().rstrip(".")
    labels = pattern[2:].split(".") if pattern.startswith("*.") else pattern.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise PolicyError(f"mx pattern {value!r} is not a host name (or `*.` and a host name)")
    return pattern


def policy_fetch(domain: str) -> Policy:
    """Fetch and parse the domain's policy; raises PolicyError (or http.OutboundError) on any failure."""
    url = f"https://mta-sts.{domain}:{settings.PUFFERPOST_MTA_STS_PORT}/.well-known/mta-sts.txt"
    if settings.PUFFERPOST_MTA_STS_PORT == 443:
        url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
    response = http.get(
        url,
        timeout=settings.PUFFERPOST_MTA_STS_TIMEOUT,
        allow_private=settings.PUFFERPOST_SMTP_ALLOW_PRIVATE,
        max_body=MAX_BODY,
    )
    if response.status != 200:
        # A 3xx included: redirects are never followed (§3.3).
        raise PolicyError(f"the policy host answered HTTP {response.status} {response.reason}".strip())
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "text/plain":
        raise PolicyError(f"the policy is served as {media or 'no media type'!r}, not text/plain")
    if response.truncated:
        raise PolicyError(f"the policy is larger than {MAX_BODY // 1024} KiB")
    try:
        text = response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("the policy is not UTF-8") from None
    return policy_parse(text)


def _cache_key(domain: str) -> str:
    return pp_redis.key("sts", domain)


def _cached(domain: str) -> Policy | None:
    try:
        raw = pp_redis.client().get(_cache_key(domain))
    except redis.RedisError:
        return None
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Policy(mode=data["mode"], mx=tuple(data["mx"]), max_age=int(data["max_age"]), id=data["id"])
    except (ValueError, KeyError, TypeError):
        return None


def _store(domain: str, policy: Policy) -> None:
    if policy.max_age <= 0:
        return
    try:
        pp_redis.client().set(_cache_key(domain), json.dumps(policy.as_dict()), ex=policy.max_age)
    except redis.RedisError:
        log.warning("could not cache the MTA-STS policy of %s", domain)


def lookup(domain: str) -> Lookup:
    """The MTA-STS policy in force for mail to `domain` (§5.1), fetching a new one when the TXT id changed."""
    domain = domain.lower().rstrip(".")
    cached = _cached(domain)
    current_id, txt_error = txt_id(domain)
    if current_id is None:
        if cached is not None:
            return Lookup(cached, "cache", txt_error)
        return Lookup(None, "", txt_error)
    if cached is not None and cached.id == current_id:
        return Lookup(cached, "cache")
    try:
        fetched = policy_fetch(domain)
    except (PolicyError, http.OutboundError) as exc:
        error = f"MTA-STS policy of {domain} (id {current_id}) not usable: {exc}"
        log.warning("%s", error)
        if cached is not None:
            return Lookup(cached, "cache", error)  # §10.2: keep the policy we had
        return Lookup(None, "", error)
    fetched = Policy(fetched.mode, fetched.mx, fetched.max_age, current_id)
    _store(domain, fetched)
    return Lookup(fetched, "fetched")
