"""Per-destination traffic shaping, shared by every worker through Redis (used by `pufferpost.smtp.Mailer`).

A destination is an MX rollup: a rule matches the recipient domain's MX host names by suffix
(every Google Workspace domain's MX ends in `google.com`, so they share one budget); domains no
rule matches are a destination of their own, named after their MX hosts, under the `default`
limits. Limits apply per (egress source address, destination):

- `connections` open at once, `per_connection` messages before the connection is closed,
- `per_minute` and `per_hour` messages (paced evenly, GCRA, with a `burst`; a sliding minute never holds more),
- `tls: required`: never plaintext to that destination (defer instead).

Presets (the published starting points) are below; PUFFERPOST_SHAPING_FILE (YAML or JSON) overrides
or adds destinations, throttle patterns and the backoff without code; it is re-read when it changes.

Counters live in Redis, changed by Lua scripts (one round trip per message): connection slots are
leases with a TTL (PUFFERPOST_SHAPING_LEASE), renewed with every message, so a dead worker's slot
frees itself. Fail safe, never open: when Redis cannot be reached, nothing is sent (the message
waits); when its state was lost (a flush, a failover to an empty replica), every destination runs
on one connection and a quarter of its rate for PUFFERPOST_SHAPING_RECOVERY seconds, long enough
for live workers to re-register the connections they hold.

Backoff: a deferral whose text matches a throttle pattern (provider codes and "try again later",
"too many", "rate limit" …; mailbox-level replies, enhanced status x.2.x / x.1.x, are about one
recipient and never count) pauses that (source, destination): no new connection and no message
for `pause_seconds` (doubling with each repeat, up to `max_pause_seconds`), then one connection and
`per_minute` messages until `recovery_successes` deliveries in a row bring it a level back.

Pacing books slots: a message the rate turns away is given the destination's next free slot in
Redis (one schedule for every worker) and is due exactly then, so a paced backlog is claimed once
per message at its slot instead of coming back every second to be turned away again; workers
probe the budget before rendering and signing, so mail that has to wait costs one round trip.
A booked message admitted up to PUFFERPOST_SHAPING_BOOKING_LATE after its slot keeps it (later,
it asks again), so a worker that is busy when a slot comes does not push its mail to the back of
the schedule. The pacing lets `burst` messages go back to back (one second's worth by default).
Neither late mail nor a burst can break the cap: every admission is logged for a minute, and no
sliding minute ever holds more than `per_minute` of them.
Greylisting replies are not throttles: the message is retried after the greylist delay. A host
that refuses connections or times out is skipped for PUFFERPOST_SHAPING_HOST_SKIP seconds.
"""

import contextlib
import ipaddress
import json
import logging
import os
import random
import re
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from pufferpost import redis as pp_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    connections: int = 10
    per_connection: int = 100
    per_minute: int | None = None
    per_hour: int | None = None
    tls_required: bool = False
    burst: int | None = None  # messages let through back to back; None: one second's worth

    def burst_size(self) -> int:
        if self.burst is not None:
            return max(1, self.burst)
        return max(1, (self.per_minute or 0) // 60)

    def as_dict(self) -> dict:
        return {
            "connections": self.connections,
            "per_connection": self.per_connection,
            "per_minute": self.per_minute,
            "per_hour": self.per_hour,
            "burst": self.burst_size() if self.per_minute or self.per_hour else None,
            "tls": "required" if self.tls_required else "opportunistic",
        }


@dataclass(frozen=True)
class Rule:
    name: str
    mx_suffixes: tuple[str, ...]
    limits: Limits

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == s or host.endswith("." + s) for s in self.mx_suffixes)


@dataclass(frozen=True)
class Backoff:
    pause_seconds: float = 60.0
    max_pause_seconds: float = 3600.0
    connections: int = 1
    per_minute: int = 6
    recovery_successes: int = 20


PRESETS: tuple[Rule, ...] = (
    Rule("google", ("google.com", "googlemail.com"), Limits(5, 50, tls_required=True)),
    Rule("microsoft", ("protection.outlook.com", "outlook.com", "hotmail.com"), Limits(5, 50)),
    Rule("yahoo", ("yahoodns.net", "yahoo.com", "aol.com"), Limits(10, 20)),
    Rule("apple", ("icloud.com", "me.com", "apple.com"), Limits(10, 5)),
)
DEFAULT_LIMITS = Limits(10, 100)

# Replies that mean "you are sending too fast": the destination backs off. Case-insensitive.
THROTTLE_PATTERNS: tuple[str, ...] = (
    r"4\.7\.28",  # Gmail: unusual rate of unsolicited mail
    r"4\.7\.65[01]",  # Microsoft: rate limited for IP reputation
    r"\bRP-00[123]\b",  # Microsoft: connection and rate limits
    r"\[TSS0\d\]",  # Yahoo: temporarily deferred
    r"try again later",
    r"too many",
    r"rate limit",
    r"throttl",
    r"temporarily deferred",
)
GREYLIST_PATTERNS: tuple[str, ...] = (r"greylist", r"graylist", r"4\.7\.1 .*try again in")
_RETRY_IN = re.compile(r"(?:try again|retry) in (\d+(?:\.\d+)?) ?(s|sec|seconds|m|min|minutes)?", re.IGNORECASE)
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Egress:
    """One source address of a pool and the name it greets with (its PTR name, ideally)."""

    address: str
    helo: str = ""


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = PRESETS
    default: Limits = DEFAULT_LIMITS
    throttle: tuple[str, ...] = THROTTLE_PATTERNS
    greylist: tuple[str, ...] = GREYLIST_PATTERNS
    backoff: Backoff = field(default_factory=Backoff)
    # Egress pools: name → addresses; workspace id → pool name; the pool of everyone else.
    pools: dict = field(default_factory=dict)
    workspaces: dict = field(default_factory=dict)
    default_pool: str = ""

    def pool_for(self, workspace_id: str) -> str:
        return self.workspaces.get(workspace_id, self.default_pool)

    def egress(self, pool: str) -> Egress | None:
        """An address of `pool` (spread at random over its addresses), None for the host's default."""
        addresses = self.pools.get(pool) or ()
        return random.choice(addresses) if addresses else None

    def destination(self, hosts) -> tuple[str, Limits]:
        hosts = [h.lower().rstrip(".") for h in hosts]
        for rule in self.rules:
            if any(rule.matches(h) for h in hosts):
                return rule.name, rule.limits
        return "mx/" + ",".join(sorted(set(hosts))), self.default

    def reaction(self, code: int | None, text: str) -> tuple[str, str, float | None] | None:
        """("greylist", pattern, retry after seconds) or ("throttle", pattern, None) for a deferral, else None."""
        if code is not None and not 400 <= code < 500:
            return None
        for pattern in self.greylist:
            if re.search(pattern, text, re.IGNORECASE):
                match = _RETRY_IN.search(text)
                seconds = None
                if match:
                    seconds = float(match.group(1)) * (60 if (match.group(2) or "s").startswith("m") else 1)
                return "greylist", pattern, seconds
        enhanced = _ENHANCED.search(text)
        if enhanced and enhanced.group(2) in ("1", "2"):
            return None  # about the mailbox or the address, not about the sender's pace
        for pattern in self.throttle:
            if re.search(pattern, text, re.IGNORECASE):
                return "throttle", pattern, None
        return None


def _limits(raw: dict, base: Limits) -> Limits:
    tls = raw.get("tls")
    return replace(
        base,
        connections=int(raw.get("connections", base.connections)),
        per_connection=int(raw.get("per_connection", base.per_connection)),
        per_minute=raw.get("per_minute", base.per_minute),
        per_hour=raw.get("per_hour", base.per_hour),
        burst=raw.get("burst", base.burst),
        tls_required=base.tls_required if tls is None else tls == "required",
    )


def policy_parse(data: dict) -> Policy:
    """The policy from a settings-file mapping: `destinations`, `throttle_patterns`, `backoff`."""
    rules = {r.name: r for r in PRESETS}
    default = DEFAULT_LIMITS
    for name, raw in (data.get("destinations") or {}).items():
        if name == "default":
            default = _limits(raw, default)
            continue
        known = rules.get(name)
        suffixes = tuple(raw.get("mx_suffixes") or (known.mx_suffixes if known else ()))
        if not suffixes:
            raise ImproperlyConfigured(f"shaping destination {name!r} needs mx_suffixes")
        rules[name] = Rule(
            name, tuple(s.lower().lstrip(".") for s in suffixes), _limits(raw, known.limits if known else default)
        )
    throttle = THROTTLE_PATTERNS + tuple(data.get("throttle_patterns") or ())
    greylist = GREYLIST_PATTERNS + tuple(data.get("greylist_patterns") or ())
    for pattern in throttle + greylist:
        re.compile(pattern)
    backoff = Backoff(**(data.get("backoff") or {}))
    pools = {}
    for name, addresses in (data.get("pools") or {}).items():
        entries = []
        for entry in addresses:
            entry = {"address": entry} if isinstance(entry, str) else entry
            ipaddress.ip_address(entry["address"])  # a malformed address is a loud error
            entries.append(Egress(entry["address"], entry.get("helo", "")))
        pools[name] = tuple(entries)
    workspaces = dict(data.get("workspaces") or {})
    default_pool = data.get("default_pool", "")
    for pool in [*workspaces.values(), default_pool]:
        if pool and pool not in pools:
            raise ImproperlyConfigured(f"shaping file: unknown egress pool {pool!r}")
    return Policy(tuple(rules.values()), default, throttle, greylist, backoff, pools, workspaces, default_pool)


_cache: dict[str, tuple[float, Policy]] = {}
_cache_lock = threading.Lock()


def policy() -> Policy:
    """The operator's policy (PUFFERPOST_SHAPING_FILE over the presets), re-read when the file changes."""
    path = settings.PUFFERPOST_SHAPING_FILE
    if not path:
        return Policy()
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise ImproperlyConfigured(f"PUFFERPOST_SHAPING_FILE {path}: {exc}") from exc
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text or "{}")
    parsed = policy_parse(data)
    with _cache_lock:
        _cache[path] = (mtime, parsed)
    return parsed


# KEYS: leases (zset), minute TAT, hour TAT, backoff (hash), state sentinel, bookings (hash),
#       the last minute's admissions (zset: the exact sliding-minute cap).
# ARGV: lease, need connection (1/0), connections, per minute (0 = none), per hour (0 = none),
#       lease ttl ms, recovery ms, backoff connections, backoff per minute, ticket ('' = none),
#       booking lateness ms, probe (1/0), burst (messages the pacing lets through back to back).
# Returns {ok (1 admitted, 2 probe: would be, 0 no), wait ms, reason}.
#
# Pacing is a GCRA per minute (and per hour) with a burst tolerance: messages are spread at the
# rate, `burst` of them may go back to back. Over it, a message with a ticket (its id) is given
# the next free slot (the TAT moves on by one interval for it), so every worker's turned-away mail
# lines up behind one schedule instead of all coming back at once; when it comes back at its slot
# (up to `lateness` after) it is admitted without asking the rate again. Whatever the pacing and
# however late booked mail comes back, no sliding minute ever holds more than `per_minute`
# admissions: every admission is logged for a minute and the log is the cap. A probe asks without
# taking a connection slot or a rate slot (it does book a turned-away ticket).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local conns, per_min, per_hour = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local ticket, late, probe = ARGV[10], tonumber(ARGV[11]), ARGV[12] == '1'
local burst = math.max(1, tonumber(ARGV[13]))
local reason = 'ok'
local sentinel = redis.call('GET', KEYS[5])
if not sentinel then
  sentinel = now + tonumber(ARGV[7])
  redis.call('SET', KEYS[5], sentinel)
end
if now < tonumber(sentinel) then
  conns = 1
  if per_min > 0 then per_min = math.max(1, math.floor(per_min / 4)) end
  if per_hour > 0 then per_hour = math.max(1, math.floor(per_hour / 4)) end
  burst = 1
  reason = 'recovering'
end
local b = redis.call('HMGET', KEYS[4], 'paused_until', 'level')
if b[1] then
  if now < tonumber(b[1]) then return {0, tonumber(b[1]) - now, 'backoff'} end
  conns = math.min(conns, tonumber(ARGV[8]))
  local bpm = tonumber(ARGV[9])
  if per_min == 0 or per_min > bpm then per_min = bpm end
  burst = 1
  reason = 'backoff_recovery'
end
if not probe then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not held and redis.call('ZCARD', KEYS[1]) >= conns then
    if ARGV[2] == '1' then return {0, 1000, 'connections'} end
    return {0, 0, 'lease_lost'}
  end
end
-- The exact cap: ms until the last minute holds fewer than per_min admissions (0: room now).
local function window_wait()
  if per_min == 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[7]) < per_min then return 0 end
  local oldest = redis.call('ZRANGE', KEYS[7], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + 60000 - now)
end
local function take()
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]) * 2)
  if per_min > 0 then
    local n = redis.call('INCR', KEYS[7] .. ':n')
    redis.call('PEXPIRE', KEYS[7] .. ':n', 120000)
    redis.call('ZADD', KEYS[7], now, n)
    redis.call('PEXPIRE', KEYS[7], 120000)
  end
end
if ticket ~= '' then
  local raw = redis.call('HGET', KEYS[6], ticket)
  if raw then
    local slot = tonumber(raw)
    if now < slot then return {0, slot - now, 'booked'} end
    if now <= slot + late then
      local full = window_wait()
      if full > 0 then return {0, full, 'per_minute'} end  -- keeps its booking
      if probe then return {2, 0, 'booked'} end
      redis.call('HDEL', KEYS[6], ticket)
      take()
      return {1, 0, 'booked'}
    end
    redis.call('HDEL', KEYS[6], ticket)  -- came back too late: its slot is gone, ask again
  end
end
local tat_m, tat_h = 0, 0
if per_min > 0 then tat_m = tonumber(redis.call('GET', KEYS[2]) or '0') end
if per_hour > 0 then tat_h = tonumber(redis.call('GET', KEYS[3]) or '0') end
local slot_m, slot_h = 0, 0
if per_min > 0 then slot_m = tat_m - (burst - 1) * 60000 / per_min end
if per_hour > 0 then slot_h = tat_h - (math.min(burst, per_hour) - 1) * 3600000 / per_hour end
local slot = math.max(now, slot_m, slot_h)
local function advance(at)
  if per_min > 0 then
    local next_m = math.max(tat_m, at) + 60000 / per_min
    redis.call('SET', KEYS[2], next_m, 'PX', math.floor(next_m - now) + 120000)
  end
  if per_hour > 0 then
    local next_h = math.max(tat_h, at) + 3600000 / per_hour
    redis.call('SET', KEYS[3], next_h, 'PX', math.floor(next_h - now) + 7200000)
  end
end
if slot > now then
  local why = slot_h > slot_m and 'per_hour' or 'per_minute'
  if ticket ~= '' then
    advance(slot)
    redis.call('HSET', KEYS[6], ticket, slot)
    redis.call('PEXPIRE', KEYS[6], math.floor(slot - now) + late + 600000)
  end
  return {0, slot - now, why}
end
local full = window_wait()
if full > 0 then return {0, full, 'per_minute'} end
if probe then return {2, 0, reason} end
advance(now)
take()
return {1, 0, reason}
"""

# KEYS: backoff hash. ARGV: 'throttle' | 'success', pause ms, max pause ms, recovery successes.
# Returns the pause in ms (throttle) or the level left (success).
_BACKOFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'throttle' then
  local level = redis.call('HINCRBY', KEYS[1], 'level', 1)
  local pause = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (level - 1))
  redis.call('HSET', KEYS[1], 'paused_until', now + pause, 'successes', 0)
  redis.call('PEXPIRE', KEYS[1], math.floor(pause) + 3600000)
  return math.floor(pause)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local until_ = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or '0')
if now < until_ then return -1 end
local successes = redis.call('HINCRBY', KEYS[1], 'successes', 1)
if successes >= tonumber(ARGV[4]) then
  local level = redis.call('HINCRBY', KEYS[1], 'level', -1)
  if level <= 0 then redis.call('DEL', KEYS[1]) return 0 end
  redis.call('HSET', KEYS[1], 'successes', 0)
  return level
end
return tonumber(redis.call('HGET', KEYS[1], 'level'))
"""


@dataclass(frozen=True)
class Admission:
    ok: bool
    wait: float = 0.0  # seconds
    reason: str = ""


def _key(*parts: str) -> str:
    return pp_redis.key("shp", *parts)


class Shaper:
    """The budget of one egress source (an address; "" = the host's default) for every destination."""

    def __init__(self, source: str = ""):
        self.source = source or "default"
        self.policy = policy()
        self.client = pp_redis.client()
        self._admit = self.client.register_script(_ADMIT)
        self._backoff = self.client.register_script(_BACKOFF)

    def destination(self, hosts) -> tuple[str, Limits]:
        return self.policy.destination(hosts)

    def new_lease(self) -> str:
        return uuid.uuid4().hex

    def _keys(self, destination: str) -> list[str]:
        base = (self.source, destination)
        return [
            _key("conn", *base),
            _key("min", *base),
            _key("hour", *base),
            _key("backoff", *base),
            _key("state"),
            _key("book", *base),
            _key("window", *base),
        ]

    def admit(
        self, destination: str, limits: Limits, lease: str, *, new_connection: bool, ticket: str = ""
    ) -> Admission:
        """May one more message go to `destination` (on a new connection, or the one `lease` holds)?

        With a `ticket` (the message's id), a message the rate turns away is booked the next free
        slot (`wait` says when) and admitted when it comes back then."""
        return self._ask(destination, limits, lease, new_connection=new_connection, ticket=ticket, probe=False)

    def probe(self, destination: str, limits: Limits, ticket: str) -> Admission:
        """Would `ticket` be admitted now? Takes nothing (a turned-away ticket is booked its slot), so
        a worker learns before rendering and signing a message that it has to wait."""
        return self._ask(destination, limits, "", new_connection=False, ticket=ticket, probe=True)

    def _ask(self, destination, limits, lease, *, new_connection, ticket, probe) -> Admission:
        b = self.policy.backoff
        try:
            ok, wait, reason = self._admit(
                keys=self._keys(destination),
                args=[
                    lease,
                    1 if new_connection else 0,
                    limits.connections,
                    limits.per_minute or 0,
                    limits.per_hour or 0,
                    int(settings.PUFFERPOST_SHAPING_LEASE * 1000),
                    int(settings.PUFFERPOST_SHAPING_RECOVERY * 1000),
                    b.connections,
                    b.per_minute,
                    ticket,
                    int(settings.PUFFERPOST_SHAPING_BOOKING_LATE * 1000),
                    1 if probe else 0,
                    limits.burst_size(),
                ],
            )
        except redis.RedisError as exc:
            log.warning("shaping state unavailable (%s): holding mail for %s", exc, destination)
            return Admission(False, settings.PUFFERPOST_SHAPING_UNAVAILABLE_WAIT, "shaping_unavailable")
        reason = reason.decode() if isinstance(reason, bytes) else reason
        return Admission(bool(ok), wait / 1000.0, reason)

    def release(self, destination: str, lease: str) -> None:
        try:
            self.client.zrem(self._keys(destination)[0], lease)
        except redis.RedisError:
            log.warning("could not release a shaping lease for %s; it expires by itself", destination)

    def throttled(self, destination: str) -> float:
        """Start (or deepen) the destination's backoff; the pause in seconds."""
        b = self.policy.backoff
        try:
            pause = self._backoff(
                keys=[self._keys(destination)[3]],
                args=["throttle", int(b.pause_seconds * 1000), int(b.max_pause_seconds * 1000), b.recovery_successes],
            )
        except redis.RedisError:
            return b.pause_seconds
        return pause / 1000.0

    def delivered(self, destination: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self._backoff(
                keys=[self._keys(destination)[3]], args=["success", 0, 0, self.policy.backoff.recovery_successes]
            )

    def host_skipped(self, host: str) -> bool:
        try:
            return bool(self.client.exists(_key("down", host)))
        except redis.RedisError:
            return False

    def host_failed(self, host: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.set(_key("down", host), 1, px=int(settings.PUFFERPOST_SHAPING_HOST_SKIP * 1000))


def destinations_state(source: str = "") -> list[dict]:
    """Every configured destination's limits and current state for one source (the admin's view)."""
    shaper_policy = policy()
    client = pp_redis.client()
    rows = []
    sources = {source or "default"}
    try:
        for key in client.scan_iter(match=_key("conn", "*"), count=500):
            parts = key.decode().split(":")
            if len(parts) >= 2:
                sources.add(parts[-2])
    except redis.RedisError:
        pass
    names = [(r.name, r.limits, ",".join(r.mx_suffixes)) for r in shaper_policy.rules]
    for src in sorted(sources):
        seen = set()
        try:
            dynamic = [k.decode().rsplit(":", 1)[-1] for k in client.scan_iter(match=_key("conn", src, "*"), count=500)]
        except redis.RedisError:
            dynamic = []
        for name, limits, suffixes in names + [(d, shaper_policy.default, "") for d in dynamic]:
            if name in seen:
                continue
            seen.add(name)
            base = (src, name)
            try:
                in_use = client.zcount(_key("conn", *base), "(0", "+inf")
                backoff = {k.decode(): v.decode() for k, v in client.hgetall(_key("backoff", *base)).items()}
                if "paused_until" in backoff:
                    until = datetime.fromtimestamp(int(backoff["paused_until"]) / 1000, UTC)
                    backoff["paused_until"] = until.isoformat(timespec="seconds")
            except redis.RedisError:
                in_use, backoff = None, {"error": "Redis unavailable"}
            rows.append(
                {
                    "source": src,
                    "destination": name,
                    "mx_suffixes": suffixes,
                    "limits": limits.as_dict(),
                    "connections_in_use": in_use,
                    "backoff": backoff,
                }
            )
    return rows
