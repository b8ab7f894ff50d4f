"""Sessions module, Sender interface (CPO): the party's charging sessions, paginated, by
last_updated, each priced so far."""

from __future__ import annotations

from django.db.models.functions import Upper
from django.utils import timezone
from drf_spectacular.utils import extend_schema

from bookings.models import Booking
from locations.selectors import tariff_catalog
from ocpi.base import OcpiApi
from ocpi.models import Token
from ocpi.pagination import PageFilterSerializer, changed_between, paginated_response
from ocpi.schema import AUTH_ERRORS, PAGE_PARAMETERS, envelope_of
from ocpi.selectors import sessions_of_party

from .serializers import SessionContext, SessionOut, session_object


class SessionListApi(OcpiApi):
    @extend_schema(
        operation_id="sessions_list",
        parameters=PAGE_PARAMETERS,
        responses={200: envelope_of("SessionList", SessionOut, many=True), **AUTH_ERRORS},
    )
    def get(self, request):
        filters = PageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        party = self.party
        items = sessions_of_party(party)
        items = changed_between(items, f, "ocpi_last_updated")
        now = timezone.now()

        def render(page):
            booking_ids = {s.booking_id for s in page if s.booking_id}
            bookings = Booking.objects.filter(pk__in=booking_ids).prefetch_related("tokens")
            # Matched as sessions_of_party matched them: uids are case-insensitive.
            tags = {s.id_tag.upper() for s in page}
            tokens = Token.objects.annotate(key=Upper("uid")).filter(owner=party, key__in=tags)
            catalog = tariff_catalog()
            context = SessionContext(
                bookings={b.pk: b for b in bookings},
                tokens={t.uid.upper(): t for t in tokens},
                tariff_for=lambda s: catalog.for_session(
                    evse_id=s.evse_id, location_id=s.charge_point.location_id, at=s.started_at
                ),
            )
            return [session_object(s, party=party, context=context, now=now) for s in page]

        return paginated_response(request, items, render, offset=f["offset"], limit=f.get("limit"))
