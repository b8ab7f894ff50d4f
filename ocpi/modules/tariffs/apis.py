"""Tariffs module, Sender interface (CPO): every tariff, paginated, by last_updated."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from locations.selectors import tariff_list
from ocpi.base import OcpiApi
from ocpi.pagination import PageFilterSerializer, changed_between, paginated_response
from ocpi.schema import AUTH_ERRORS, PAGE_PARAMETERS, envelope_of

from .serializers import TariffOut, tariff_object


class TariffListApi(OcpiApi):
    @extend_schema(
        operation_id="tariffs_list",
        parameters=PAGE_PARAMETERS,
        responses={200: envelope_of("TariffList", TariffOut, many=True), **AUTH_ERRORS},
    )
    def get(self, request):
        filters = PageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        items = tariff_list()
        items = changed_between(items, f)
        version = self.party.booking_module_version
        return paginated_response(
            request,
            items,
            lambda page: [tariff_object(t, booking_module_version=version) for t in page],
            offset=f["offset"],
            limit=f.get("limit"),
        )
