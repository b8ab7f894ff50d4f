"""Rate limits per client and scope, counted in the Redis cache ("api") so that every web
process shares them. The view reads `limit`, `remaining` and `reset` for the X-RateLimit-*
headers."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

from .permissions import required_scope


class ClientScopeThrottle(SimpleRateThrottle):
    scope = "api"

    def __init__(self):
        # The cache is resolved per instance: settings are read at run time, never at import.
        self.cache = caches["api"]
        self.limit = 0
        self.remaining = 0
        self.reset = 0
        super().__init__()

    def get_rate(self) -> str:
        return f"{settings.API_RATE_LIMIT_PER_MINUTE}/min"

    def get_cache_key(self, request, view) -> str | None:
        token = request.auth
        if token is None:
            return None
        scope = required_scope(view, request.method)
        return self.cache_format % {"scope": scope, "ident": token.application_id}

    def allow_request(self, request, view) -> bool:
        allowed = super().allow_request(request, view)
        history = getattr(self, "history", [])
        self.limit = self.num_requests
        self.remaining = max(0, self.num_requests - len(history))
        oldest = history[-1] if history else time.time()
        self.reset = int(oldest + self.duration)
        return allowed
