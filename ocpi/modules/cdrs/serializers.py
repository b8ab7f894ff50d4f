"""CDRs module (OCPI 2.3.0) object shape: the CDR of a chargers ChargeDetailRecord, from what
the record froze when it was issued (periods, priced lines, totals), so that reading it again
always gives the same CDR."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework import serializers

from chargers.models import ChargeDetailRecord
from locations.tariffs import Cost
from ocpi.modules.locations.serializers import coordinate
from ocpi.modules.sessions.serializers import SessionContext, cdr_token, number, price_object
from ocpi.responses import ocpi_datetime

HOUR = Decimal(3600)
FEE_DIMENSIONS = {  # the booking element a fee line comes from -> its CDR dimension
    "RESERVATION": "RESERVATION_TIME",
    "RESERVATION_EXPIRES": "RESERVATION_EXPIRES",
    "RESERVATION_OVERTIME": "RESERVATION_OVERTIME",
    "RESERVATION_CANCELLATION_FEES": "RESERVATION_TIME",
}


def _hours(seconds: float) -> Decimal:
    return Decimal(str(seconds)) / HOUR


def _price(cdr: ChargeDetailRecord, amount: Decimal) -> dict[str, Any]:
    """An amount of the record's lines as a Price, taxed as the record's tariff says."""
    rate = (cdr.tax_percentage or Decimal(0)) / 100
    before = amount / (1 + rate) if cdr.prices_include_taxes else amount
    after = before * (1 + rate)
    return price_object(Cost(cdr.currency, (), before.quantize(Decimal("0.0001")),
                             after.quantize(Decimal("0.0001")), cdr.tax_name or "VAT",
                             cdr.tax_percentage).rounded())  # fmt: skip


def _periods(cdr: ChargeDetailRecord) -> list[dict[str, Any]]:
    out = []
    for p in cdr.periods:
        start, end = datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"])
        hours = _hours((end - start).total_seconds())
        if "dimension" in p:  # the booked or held time of a fee
            dimensions = [{"type": FEE_DIMENSIONS[p["dimension"]], "volume": number(hours)}]
        else:
            dimensions = []
            if Decimal(p["energy_wh"]):
                dimensions.append(
                    {"type": "ENERGY", "volume": number(Decimal(p["energy_wh"]) / 1000)}
                )
            dimensions.append({"type": "TIME" if p["charging"] else "PARKING_TIME",
                               "volume": number(hours)})  # fmt: skip
            if p.get("power_kw") is not None:
                power = number(Decimal(p["power_kw"]), "0.001")
                dimensions.append({"type": "MAX_POWER", "volume": power})
        item: dict[str, Any] = {"start_date_time": ocpi_datetime(start), "dimensions": dimensions}
        if cdr.tariff_id:
            item["tariff_id"] = cdr.tariff_id
        out.append(item)
    # Booking fees of a session: its booked time and overtime, as periods of their own.
    for line in cdr.lines:
        if cdr.kind == ChargeDetailRecord.Kind.SESSION and line.get("fee"):
            dimension = FEE_DIMENSIONS[line["fee"]]
            if line["dimension"] == "TIME":
                out.append({"start_date_time": ocpi_datetime(cdr.ended_at),
                            "dimensions": [{"type": dimension,
                                            "volume": number(Decimal(line["volume"]))}],
                            **({"tariff_id": cdr.tariff_id} if cdr.tariff_id else {})})  # fmt: skip
    return out or [{"start_date_time": ocpi_datetime(cdr.started_at),
                    "dimensions": [{"type": "TIME", "volume": 0}]}]  # fmt: skip


def _location(cdr: ChargeDetailRecord) -> dict[str, Any]:
    location, evse = cdr.location, cdr.evse
    connectors = list(evse.connectors.all()) if evse is not None else []
    connector = connectors[0] if connectors else None
    data = {
        "id": location.ocpi_id,
        "name": location.name,
        "address": location.address,
        "city": location.city,
        "country": location.country,
        "coordinates": {"latitude": coordinate(location.latitude, 6),
                        "longitude": coordinate(location.longitude, 6)},
        # A fee without a session may name no EVSE (the digest's #NA for reservations).
        "evse_uid": evse.uid if evse is not None else "#NA",
        "evse_id": (evse.evse_id or evse.uid) if evse is not None else "#NA",
        "connector_id": connector.connector_id if connector else "#NA",
        "connector_standard": connector.standard if connector else "IEC_62196_T2",
        "connector_format": connector.format if connector else "SOCKET",
        "connector_power_type": connector.power_type if connector else "AC_3_PHASE",
    }  # fmt: skip
    if location.postal_code:
        data["postal_code"] = location.postal_code
    return data


def cdr_object(
    cdr: ChargeDetailRecord, *, party, context: SessionContext, tariffs: dict[str, dict]
) -> dict[str, Any]:
    """`tariffs` maps tariff ids to their OCPI Tariff objects (the CDR carries the one used)."""
    booking = context.bookings.get(cdr.booking_id) if cdr.booking_id else None
    fees = cdr.amount_of(fee=True)
    total_time = _hours(cdr.charging_seconds + cdr.parking_seconds)
    data: dict[str, Any] = {
        "country_code": settings.OCPI_COUNTRY_CODE,
        "party_id": settings.OCPI_PARTY_ID,
        "id": str(cdr.pk),
        "start_date_time": ocpi_datetime(cdr.started_at),
        "end_date_time": ocpi_datetime(cdr.ended_at),
        "cdr_token": cdr_token(cdr, booking, context.tokens.get(cdr.id_tag.upper()), party),
        "auth_method": "WHITELIST",
        "cdr_location": _location(cdr),
        "currency": cdr.currency,
        "charging_periods": _periods(cdr),
        "total_cost": price_object(
            Cost(
                cdr.currency,
                (),
                cdr.before_taxes,
                cdr.after_taxes,
                cdr.tax_name or "VAT",
                cdr.tax_percentage,
            )
        ),
        "total_energy": number(cdr.energy_wh / 1000),
        "total_time": number(total_time),
        "last_updated": ocpi_datetime(cdr.created_at),
    }
    if cdr.session_id:
        data["session_id"] = str(cdr.session_id)
    if cdr.booking_id and booking is not None:
        data["booking_id"] = str(booking.uid)
    if cdr.authorization_reference:
        data["authorization_reference"] = cdr.authorization_reference
    if cdr.tariff_id in tariffs:
        data["tariffs"] = [tariffs[cdr.tariff_id]]
    for key, dimension in (("total_fixed_cost", "FLAT"), ("total_energy_cost", "ENERGY"),
                           ("total_time_cost", "TIME")):  # fmt: skip
        amount = cdr.amount_of(fee=False, dimension=dimension)
        if amount:
            data[key] = _price(cdr, amount)
    if cdr.parking_seconds:
        data["total_parking_time"] = number(_hours(cdr.parking_seconds))
        amount = cdr.amount_of(fee=False, dimension="PARKING_TIME")
        if amount:
            data["total_parking_cost"] = _price(cdr, amount)
    if fees:
        data["total_reservation_cost"] = _price(cdr, fees)
    if cdr.kind != ChargeDetailRecord.Kind.SESSION:
        data["remark"] = dict(ChargeDetailRecord.Kind.choices)[cdr.kind]
    return data


# Output shape for the OpenAPI schema only.
class CdrOut(serializers.Serializer):
    country_code = serializers.CharField()
    party_id = serializers.CharField()
    id = serializers.CharField()
    start_date_time = serializers.DateTimeField()
    end_date_time = serializers.DateTimeField()
    session_id = serializers.CharField(required=False)
    booking_id = serializers.CharField(required=False)
    authorization_reference = serializers.CharField(required=False)
    cdr_token = serializers.DictField()
    auth_method = serializers.ChoiceField(choices=["AUTH_REQUEST", "COMMAND", "WHITELIST"])
    cdr_location = serializers.DictField()
    currency = serializers.CharField()
    tariffs = serializers.ListField(child=serializers.DictField(), required=False)
    charging_periods = serializers.ListField(child=serializers.DictField())
    total_cost = serializers.DictField()
    total_fixed_cost = serializers.DictField(required=False)
    total_energy = serializers.FloatField()
    total_energy_cost = serializers.DictField(required=False)
    total_time = serializers.FloatField()
    total_time_cost = serializers.DictField(required=False)
    total_parking_time = serializers.FloatField(required=False)
    total_parking_cost = serializers.DictField(required=False)
    total_reservation_cost = serializers.DictField(required=False)
    remark = serializers.CharField(required=False)
    last_updated = serializers.DateTimeField()
