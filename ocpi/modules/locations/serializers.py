"""Locations module objects (core 2.3.0): Location, EVSE, Connector as we publish them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from locations.models import EVSE, Connector, ExceptionalPeriod, Location
from locations.selectors import tariff_ids_for
from ocpi.responses import ocpi_datetime


def coordinate(value, digits: int) -> str:
    return f"{value:.6f}"


def connector_object(c: Connector, tariff_ids: list[str]) -> dict[str, Any]:
    data = {
        "id": c.connector_id,
        "standard": c.standard,
        "format": c.format,
        "power_type": c.power_type,
        "max_voltage": c.max_voltage,
        "max_amperage": c.max_amperage,
        "tariff_ids": tariff_ids,
        "last_updated": ocpi_datetime(c.last_updated),
    }
    if c.max_electric_power:
        data["max_electric_power"] = c.max_electric_power
    return data


def evse_object(e: EVSE) -> dict[str, Any]:
    connectors = list(e.connectors.all())
    tariffs = tariff_ids_for(evse=e, location=e.charge_point.location)
    data: dict[str, Any] = {
        "uid": e.uid,
        "status": e.status,
        "capabilities": list(e.capabilities),
        "connectors": [connector_object(c, tariffs) for c in connectors],
        "last_updated": ocpi_datetime(max([e.last_updated, *(c.last_updated for c in connectors)])),
    }
    if e.evse_id:
        data["evse_id"] = e.evse_id
    if e.floor_level:
        data["floor_level"] = e.floor_level
    if e.physical_reference:
        data["physical_reference"] = e.physical_reference
    return data


def _hours(location: Location) -> dict[str, Any]:
    periods = list(location.exceptional_periods.all())

    def spans(kind):
        return [
            {
                "period_begin": ocpi_datetime(p.period_begin),
                "period_end": ocpi_datetime(p.period_end),
            }
            for p in periods
            if p.kind == kind
        ]

    return {
        "twentyfourseven": location.twentyfourseven,
        "regular_hours": [
            {"weekday": h.weekday, "period_begin": h.period_begin.strftime("%H:%M"),
             "period_end": h.period_end.strftime("%H:%M")}
            for h in location.regular_hours.all()
        ] if not location.twentyfourseven else [],
        "exceptional_openings": spans(ExceptionalPeriod.Kind.OPENING),
        "exceptional_closings": spans(ExceptionalPeriod.Kind.CLOSING),
    }  # fmt: skip


def location_evses(location: Location) -> list[EVSE]:
    return [e for cp in location.charge_points.all() for e in cp.evses.all()]


def location_object(location: Location) -> dict[str, Any]:
    """A Location fetched with ocpi.selectors.published_locations()."""
    data: dict[str, Any] = {
        "country_code": settings.OCPI_COUNTRY_CODE,
        "party_id": settings.OCPI_PARTY_ID,
        "id": location.ocpi_id,
        "publish": location.publish,
        "name": location.name,
        "address": location.address,
        "city": location.city,
        "country": location.country,
        "coordinates": {
            "latitude": coordinate(location.latitude, 6),
            "longitude": coordinate(location.longitude, 6),
        },
        "evses": [evse_object(e) for e in location_evses(location)],
        "time_zone": location.time_zone,
        "opening_times": _hours(location),
        "charging_when_closed": location.charging_when_closed,
        "last_updated": ocpi_datetime(getattr(location, "ocpi_last_updated", None)
                                      or location.last_updated),
    }  # fmt: skip
    for name in ("postal_code", "state", "parking_type", "help_phone"):
        if getattr(location, name):
            data[name] = getattr(location, name)
    return data


class ConnectorOut(serializers.Serializer):
    id = serializers.CharField()
    standard = serializers.CharField()
    format = serializers.CharField()
    power_type = serializers.CharField()
    max_voltage = serializers.IntegerField()
    max_amperage = serializers.IntegerField()
    last_updated = serializers.DateTimeField()


class EVSEOut(serializers.Serializer):
    uid = serializers.CharField()
    status = serializers.CharField()
    connectors = ConnectorOut(many=True)
    last_updated = serializers.DateTimeField()


class LocationOut(serializers.Serializer):
    country_code = serializers.CharField()
    party_id = serializers.CharField()
    id = serializers.CharField()
    name = serializers.CharField()
    address = serializers.CharField()
    city = serializers.CharField()
    country = serializers.CharField()
    coordinates = serializers.DictField()
    evses = EVSEOut(many=True)
    time_zone = serializers.CharField()
    last_updated = serializers.DateTimeField()
