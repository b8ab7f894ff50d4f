"""Rate limits per caller, one mechanism for both partner interfaces: the operator API counts
per client and scope (api.throttling), OCPI per eMSP party (ocpi.throttling). A counter per
caller and clock minute lives in the Redis cache "ratelimit", shared by every web process and
exact under concurrency (Redis INCR). Each interface's throttle only says whom it counts and
that caller's limit (a per-caller value from the admin, else the setting); its exception
handler answers 429 with Retry-After in its own format."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Quota:
    """Whom a request counts against (a cache key part) and how many requests a minute."""

    key: str
    limit: int


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
        window = int(now // WINDOW_SECONDS)
        self.limit = quota.limit
        self.reset = (window + 1) * WINDOW_SECONDS
        self.wait_seconds = self.reset - now
        cache = caches["ratelimit"]
        key = f"throttle:{quota.key}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
        count = cache.incr(key)
        self.remaining = max(0, self.limit - count)
        return count <= self.limit

    def wait(self) -> float:
        return self.wait_seconds


def retry_after(wait: float | None) -> str:
    """The Retry-After value (whole seconds, rounded up) for a throttle's wait."""
    return str(int(wait or 0) + 1)
