"""Rate limits per eMSP party over all of OCPI (partners.ratelimit): the party's own limit from
the admin, else OCPI_RATE_LIMIT_PER_MINUTE."""

from __future__ import annotations

from django.conf import settings

from partners.ratelimit import PerMinuteThrottle, Quota

from .models import Party


class PartyThrottle(PerMinuteThrottle):
    def quota(self, request, view) -> Quota | None:
        party = request.user
        if not isinstance(party, Party):
            return None  # unauthenticated requests are refused before they count
        limit = party.rate_limit_per_minute or settings.OCPI_RATE_LIMIT_PER_MINUTE
        return Quota(key=f"ocpi:{party.pk}", limit=limit)
