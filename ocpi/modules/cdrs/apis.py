"""CDRs module, Sender interface (CPO): the party's charge detail records, paginated, by
last_updated (when each was issued; a CDR never changes)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from locations.selectors import tariff_list
from ocpi.base import OcpiApi
from ocpi.pagination import PageFilterSerializer, changed_between, paginated_response
from ocpi.schema import AUTH_ERRORS, PAGE_PARAMETERS, envelope_of
from ocpi.selectors import cdrs_of_party

from ..sessions.serializers import session_context
from ..tariffs.serializers import tariff_object
from .serializers import CdrOut, cdr_object


def cdr_objects(party, cdrs) -> list[dict]:
    """These CDRs as the party reads them (the list and the pushes)."""
    context = session_context(party, cdrs)
    ids = {c.tariff_id for c in cdrs if c.tariff_id}
    version = party.booking_module_version
    tariffs = {
        t.ocpi_id: tariff_object(t, booking_module_version=version)
        for t in tariff_list().filter(ocpi_id__in=ids)
    }
    return [cdr_object(c, party=party, context=context, tariffs=tariffs) for c in cdrs]


class CdrListApi(OcpiApi):
    @extend_schema(
        operation_id="cdrs_list",
        parameters=PAGE_PARAMETERS,
        responses={200: envelope_of("CdrList", CdrOut, many=True), **AUTH_ERRORS},
    )
    def get(self, request):
        filters = PageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        party = self.party
        items = changed_between(cdrs_of_party(party), f, "created_at")
        return paginated_response(
            request,
            items,
            lambda page: cdr_objects(party, list(page)),
            offset=f["offset"],
            limit=f.get("limit"),
        )
