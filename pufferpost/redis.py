"""The one Redis client the web and worker processes share (rate limits, quota counters, locks)."""

from functools import cache

import redis
from django.conf import settings


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )


def key(*parts: str) -> str:
    """A Redis key under this installation's prefix: `key("rl", wsp_id)` → `pp:rl:wsp_…`."""
    return settings.REDIS_KEY_PREFIX + ":".join(parts)
