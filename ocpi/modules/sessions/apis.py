"""Sessions module, Sender interface (CPO): the party's charging sessions, paginated, by
last_updated, each priced so far."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema

from ocpi.base import OcpiApi
from ocpi.pagination import PageFilterSerializer, changed_between, paginated_response
from ocpi.schema import AUTH_ERRORS, PAGE_PARAMETERS, envelope_of
from ocpi.selectors import sessions_of_party

from .serializers import SessionOut, session_context, session_object


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
            context = session_context(party, page)
            return [session_object(s, party=party, context=context, now=now) for s in page]

        return paginated_response(request, items, render, offset=f["offset"], limit=f.get("limit"))
