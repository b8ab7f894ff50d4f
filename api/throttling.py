"""Rate limits per client and scope: a counter per client, scope and minute in the Redis cache
("api"), shared by every web process and exact under concurrency (Redis INCR). The view reads
`limit`, `remaining` and `reset` for the X-RateLimit-* headers."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

from .permissions import required_scope

WINDOW_SECONDS = 60


class ClientScopeThrottle(BaseThrottle):
    def __init__(self):
        self.limit = self.remaining = self.reset = 0
        self.wait_seconds = 0.0

    def allow_request(self, request, view) -> bool:
        token = request.auth
        if token is None:
            return True  # unauthenticated requests are refused before they count
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        self.limit = settings.API_RATE_LIMIT_PER_MINUTE
        self.reset = (window + 1) * WINDOW_SECONDS
        self.wait_seconds = self.reset - now
        cache = caches["api"]
        key = f"throttle:{token.application_id}:{required_scope(view, request.method)}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
        count = cache.incr(key)
        self.remaining = max(0, self.limit - count)
        return count <= self.limit

    def wait(self) -> float:
        return self.wait_seconds
