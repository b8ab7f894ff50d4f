"""Rate limits per client and scope (partners.ratelimit): the client's own limit from the admin,
else API_RATE_LIMIT_PER_MINUTE. The view reads `limit`, `remaining` and `reset` for the
X-RateLimit-* headers."""

from __future__ import annotations

from django.conf import settings

from partners.ratelimit import PerMinuteThrottle, Quota

from .permissions import required_scope


class ClientScopeThrottle(PerMinuteThrottle):
    def quota(self, request, view) -> Quota | None:
        token = request.auth
        if token is None:
            return None  # unauthenticated requests are refused before they count
        client = view.client
        limit = client.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_MINUTE
        scope = required_scope(view, request.method)
        return Quota(key=f"api:{token.application_id}:{scope}", limit=limit)
