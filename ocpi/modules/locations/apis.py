"""Locations module, Sender interface (CPO): published locations, their EVSEs and connectors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from locations.models import Location
from locations.selectors import tariff_ids_for
from ocpi import responses as r
from ocpi.base import OcpiApi
from ocpi.exceptions import OcpiError
from ocpi.pagination import PageFilterSerializer, changed_between, paginated_response
from ocpi.schema import AUTH_ERRORS, PAGE_PARAMETERS, envelope_of
from ocpi.selectors import published_location_get, published_locations

from .serializers import (
    ConnectorOut,
    EVSEOut,
    LocationOut,
    connector_object,
    evse_object,
    location_evses,
    location_object,
)


def _location(location_id: str) -> Location:
    try:
        return published_location_get(location_id=location_id)
    except Location.DoesNotExist:
        raise OcpiError(
            r.UNKNOWN_LOCATION, f"No location {location_id!r}.", http_status=404
        ) from None


def _evse(location: Location, evse_uid: str):
    for evse in location_evses(location):
        if evse.uid.lower() == evse_uid.lower():
            return evse
    raise OcpiError(r.CLIENT_ERROR, f"No EVSE {evse_uid!r} at this location.", http_status=404)


class LocationListApi(OcpiApi):
    @extend_schema(
        operation_id="locations_list",
        parameters=PAGE_PARAMETERS,
        responses={200: envelope_of("LocationList", LocationOut, many=True), **AUTH_ERRORS},
    )
    def get(self, request):
        filters = PageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        items = published_locations()
        items = changed_between(items, f, "ocpi_last_updated")
        return paginated_response(
            request, items, lambda page: [location_object(x) for x in page],
            offset=f["offset"], limit=f.get("limit"),
        )  # fmt: skip


class LocationDetailApi(OcpiApi):
    @extend_schema(
        operation_id="location_get",
        responses={200: envelope_of("LocationDetail", LocationOut), **AUTH_ERRORS},
    )
    def get(self, request, location_id: str):
        return r.ocpi_response(location_object(_location(location_id)))


class EVSEDetailApi(OcpiApi):
    @extend_schema(
        operation_id="evse_get", responses={200: envelope_of("EVSEDetail", EVSEOut), **AUTH_ERRORS}
    )
    def get(self, request, location_id: str, evse_uid: str):
        return r.ocpi_response(evse_object(_evse(_location(location_id), evse_uid)))


class ConnectorDetailApi(OcpiApi):
    @extend_schema(
        operation_id="connector_get",
        responses={200: envelope_of("ConnectorDetail", ConnectorOut), **AUTH_ERRORS},
    )
    def get(self, request, location_id: str, evse_uid: str, connector_id: str):
        evse = _evse(_location(location_id), evse_uid)
        for connector in evse.connectors.all():
            if connector.connector_id == connector_id:
                tariffs = tariff_ids_for(evse=evse, location=evse.charge_point.location)
                return r.ocpi_response(connector_object(connector, tariffs))
        raise OcpiError(r.CLIENT_ERROR, f"No connector {connector_id!r}.", http_status=404)
