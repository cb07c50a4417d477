"""Per-workspace rate limit and monthly quota, in one Redis round trip per send request.

The rate limit is a fixed 60-second window: one counter per workspace and window, `INCR` plus
`EXPIRE`, atomic inside a Lua script so every web process sees the same count. A batch counts
as one request.

The monthly quota counts messages. The same script reserves as many units of this month's
counter as the request may use (1 for a send, the item count for a batch) but never past the
quota, so accepted messages can never overshoot it. Units a request does not end up using (a
rejected item, a rolled-back insert) are handed back afterwards. When Redis has lost the
month's counter, it is re-seeded from the database, which is the source of truth.
"""

import calendar
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

import redis

from messaging.models import Message
from pufferpost import redis as pp_redis

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60

# KEYS: rate window, quota month. ARGV: limit, window ttl, wanted, quota, quota expire-at,
# seed (-1 = unknown), count the request (1/0). Returns {requests in window, granted};
# granted is -1 when rate limited and -2 when the quota counter must be seeded first.
_ADMIT = """
local count = 0
if ARGV[7] == '1' then
  count = redis.call('INCR', KEYS[1])
  if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
  if count > tonumber(ARGV[1]) then return {count, -1} end
end
local wanted = tonumber(ARGV[3])
if wanted == 0 then return {count, 0} end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local seed = tonumber(ARGV[6])
  if seed < 0 then return {count, -2} end
  redis.call('SET', KEYS[2], seed, 'NX', 'EXAT', ARGV[5])
end
local after = redis.call('INCRBY', KEYS[2], wanted)
local granted = math.max(0, math.min(wanted, tonumber(ARGV[4]) - (after - wanted)))
if granted < wanted then redis.call('DECRBY', KEYS[2], wanted - granted) end
return {count, granted}
"""


def month_key(workspace_id: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return pp_redis.key("quota", workspace_id, now.strftime("%Y-%m"))


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _month_expire_at(now: datetime) -> int:
    """A week past the end of the month, so the counter outlives every request of its month."""
    last_day = calendar.monthrange(now.year, now.month)[1]
    end = now.replace(day=last_day, hour=23, minute=59, second=59, microsecond=0)
    return int(end.timestamp()) + 7 * 86400


@dataclass
class Admission:
    """What the limiter decided for one request, and the quota units reserved for it."""

    workspace_id: str
    limit: int
    remaining: int
    reset: int
    limited: bool = False
    granted: int = 0
    used: int = 0
    quota_key: str | None = field(default=None, repr=False)
    # False for test keys: their messages never count toward the monthly quota.
    metered: bool = True

    @property
    def retry_after(self) -> int:
        return max(1, self.reset - int(time.time()))

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }

    def take(self) -> bool:
        """Use one reserved quota unit for a message about to be accepted; False when none is left."""
        if not self.metered:
            return True
        if self.used >= self.granted:
            return False
        self.used += 1
        return True

    def give_back(self, count: int) -> None:
        """Return units taken for messages that were not stored after all."""
        self.used = max(0, self.used - count)

    def release_unused(self) -> None:
        """Hand back reserved units no message used (call once, when the request is done)."""
        unused = self.granted - self.used
        self.granted = self.used
        if unused > 0 and self.quota_key:
            try:
                pp_redis.client().decrby(self.quota_key, unused)
            except redis.RedisError:
                logger.warning("Could not release %s quota units for %s", unused, self.workspace_id)


def admit(*, workspace, messages: int, livemode: bool = True) -> Admission:
    """Count one request against the workspace's rate limit and reserve up to `messages` quota units.

    Test keys (`livemode=False`) have a rate window of their own, with the same limit, so a CI run
    can never throttle production sends, and reserve no quota.

    Redis being unreachable fails open: the request goes on without a limit and without quota
    accounting (logged), because refusing every send is worse than a brief lapse in metering.
    """
    now = datetime.now(UTC)
    window = int(now.timestamp()) // WINDOW_SECONDS
    limit = workspace.rate_limit_per_minute
    admission = Admission(
        workspace.id,
        limit,
        limit,
        (window + 1) * WINDOW_SECONDS,
        quota_key=month_key(workspace.id, now) if livemode else None,
        metered=livemode,
    )
    if not livemode:
        messages = 0
    rate_key = pp_redis.key("rl" if livemode else "rl-test", workspace.id, str(window))
    try:
        count, granted = _run(workspace, now, messages, rate_key=rate_key)
    except redis.RedisError:
        logger.exception("Rate limiter unavailable; admitting %s without limits", workspace.id)
        admission.quota_key = None
        admission.granted = messages
        return admission
    admission.remaining = max(0, limit - count)
    if granted == -1:
        admission.limited = True
    else:
        admission.granted = granted
    return admission


def reserve(*, workspace, admission: Admission, messages: int) -> int:
    """Reserve `messages` more quota units for an admitted request (a batch, once it knows its size)."""
    if messages <= 0 or not admission.metered:
        return 0
    if admission.quota_key is None:
        admission.granted += messages
        return messages
    try:
        _, granted = _run(workspace, datetime.now(UTC), messages, rate_key=None)
    except redis.RedisError:
        logger.exception("Quota counter unavailable; admitting %s messages for %s", messages, workspace.id)
        granted = messages
    admission.granted += granted
    return granted


def _run(workspace, now: datetime, messages: int, *, rate_key: str | None) -> tuple[int, int]:
    quota_key = month_key(workspace.id, now)
    keys = [rate_key or quota_key, quota_key]
    args = [workspace.rate_limit_per_minute, WINDOW_SECONDS + 5, messages, workspace.monthly_quota]
    args += [_month_expire_at(now), -1, 1 if rate_key else 0]
    script = _script()
    count, granted = script(keys=keys, args=args)
    if granted == -2:
        args[5] = monthly_quota_used_from_db(workspace_id=workspace.id, now=now)
        args[6] = 0
        _, granted = script(keys=keys, args=args)
    return count, granted


@cache
def _script():
    """The admission script, registered once per process (sent by SHA, loaded on first NOSCRIPT)."""
    return pp_redis.client().register_script(_ADMIT)


def monthly_quota_used_from_db(*, workspace_id: str, now: datetime | None = None) -> int:
    """The month's count from the source of truth, which re-seeds a counter Redis lost."""
    # Test messages never count toward the quota.
    return Message.objects.filter(workspace_id=workspace_id, livemode=True, created_at__gte=month_start(now)).count()


def quota_used(*, workspace_id: str) -> int | None:
    """This month's counter from Redis, or None when Redis does not have it (or is down)."""
    try:
        value = pp_redis.client().get(month_key(workspace_id))
    except redis.RedisError:
        return None
    return None if value is None else int(value)
