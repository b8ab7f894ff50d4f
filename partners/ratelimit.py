"""Rate limits per caller, one mechanism for both partner interfaces: the operator API counts
per client and scope (api.throttling), OCPI per eMSP party (ocpi.throttling). A counter per
caller and clock minute lives in Redis (keys `RATELIMIT_KEY_PREFIX:...`), shared by every web
process and exact under concurrency: INCR and EXPIRE in one round trip. Each interface's
throttle only says whom it counts and that caller's limit (a per-caller value from the admin,
else the setting); its exception handler answers 429 with Retry-After in its own format."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from rest_framework.throttling import BaseThrottle

WINDOW_SECONDS = 60
REDIS_TIMEOUT_SECONDS = 1.0  # a Redis that does not answer costs a request at most this

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    """Whom a request counts against (a cache key part) and how many requests a minute."""

    key: str
    limit: int


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )


def count_request(key: str, *, now: float) -> int:
    """Count one request against `key` in the minute of `now` (epoch seconds); returns the
    minute's count so far."""
    window = int(now // WINDOW_SECONDS)
    name = f"{settings.RATELIMIT_KEY_PREFIX}:{key}:{window}"
    pipe = _client(settings.REDIS_URL).pipeline(transaction=False)
    pipe.incr(name)
    pipe.expire(name, WINDOW_SECONDS * 2)
    count, _ = pipe.execute()
    return int(count)


class PerMinuteThrottle(BaseThrottle):
    """A DRF throttle with a fixed window of one minute per caller. After allow_request,
    `limit`, `remaining` and `reset` (epoch seconds) describe the caller's window."""

    def __init__(self) -> None:
        self.limit = self.remaining = self.reset = 0
        self.wait_seconds = 0.0

    def quota(self, request, view) -> Quota | None:
        """The caller's quota, or None for a request that is not counted."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        quota = self.quota(request, view)
        if quota is None:
            return True
        now = time.time()
        self.limit = quota.limit
        self.reset = (int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS
        self.wait_seconds = self.reset - now
        try:
            count = count_request(quota.key, now=now)
        except redis.RedisError as error:
            # A limit protects the service; it must not take it down with Redis (issue 18,
            # finding 6: OCPI answers during a Redis outage). Uncounted, the request goes on.
            logger.warning("Rate limit not counted for %s: %s", quota.key, error)
            self.remaining = self.limit
            return True
        self.remaining = max(0, self.limit - count)
        return count <= self.limit

    def wait(self) -> float:
        return self.wait_seconds


def retry_after(wait: float | None) -> str:
    """The Retry-After value (whole seconds, rounded up) for a throttle's wait."""
    return str(int(wait or 0) + 1)
