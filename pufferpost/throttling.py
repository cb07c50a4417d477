"""The rate limit of writes other than sends, per API key.

Sends have their own per-workspace limiter and quota (`messaging.limits`); every other write
(creating domains, senders, templates, versions, suppressions, webhooks; deletes; refreshes)
is limited here to PUFFERPOST_WRITE_RATE_LIMIT_PER_MINUTE per key, in a fixed 60-second window
counted in Redis (`INCR` + `EXPIRE`, one round trip), so every web process sees the same count.
Reads are not limited. A refused write is the envelope's 429 `rate_limited` with Retry-After.
"""

import logging
import time

import redis
from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle

from pufferpost import redis as pp_redis

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60

_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class WriteRateThrottle(BaseThrottle):
    """Views whose actions have a limiter of their own list them in `own_rate_limit_actions`."""

    def allow_request(self, request, view):
        self.retry_after = None
        key = getattr(request, "auth", None)
        if request.method in SAFE_METHODS or key is None or not hasattr(key, "pk"):
            return True
        if getattr(view, "action", None) in getattr(view, "own_rate_limit_actions", ()):
            return True
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        counter = pp_redis.key("wrl", str(key.pk), str(window))
        try:
            count = pp_redis.client().eval(_COUNT, 1, counter, WINDOW_SECONDS + 1)
        except redis.RedisError:
            # The limit protects the service; losing Redis must not also stop customers' writes.
            logger.warning("write rate limit unavailable (Redis); allowing the request", exc_info=True)
            return True
        if count <= settings.PUFFERPOST_WRITE_RATE_LIMIT_PER_MINUTE:
            return True
        self.retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        return False

    def wait(self):
        return self.retry_after
