"""Tariffs module (OCPI 2.3.0) object shape: the Tariff of a locations.models.Tariff fetched with
locations.selectors.tariff_list(). Money leaves as JSON numbers from Decimal, never via float
arithmetic; taxes follow 2.3.0 (`tax_included`, PriceLimit with before/after taxes)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework import serializers

from locations.models import Tariff, TariffElement, TaxIncluded
from ocpi.responses import ocpi_datetime, ocpi_number

V11_BOOKING = {  # Bookings 1.1 prices a booking with TariffRestrictions.booking
    "RESERVATION": "BOOKING",
    "RESERVATION_EXPIRES": "BOOKING_EXPIRES",
    "RESERVATION_CANCELLATION_FEES": "BOOKING_CANCELLATION_FEES",
    "RESERVATION_OVERTIME": "BOOKING_OVERTIME",
}
_NUMBERS = ("min_kwh", "max_kwh", "min_current", "max_current", "min_power", "max_power")


def _price_limit(tariff: Tariff, amount: Decimal) -> dict[str, Any]:
    limit: dict[str, Any] = {"before_taxes": ocpi_number(amount)}
    if tariff.tax_included == TaxIncluded.NOT_APPLICABLE:
        limit["after_taxes"] = ocpi_number(amount)
    elif tariff.tax_percentage is not None:
        after = amount * (1 + tariff.tax_percentage / 100)
        limit["after_taxes"] = ocpi_number(after.quantize(Decimal("0.0001")))
    return limit


def _restrictions(element: TariffElement, booking_module_version: str) -> dict[str, Any]:
    r: dict[str, Any] = {}
    if element.start_time:
        r["start_time"] = element.start_time.strftime("%H:%M")
    if element.end_time:
        r["end_time"] = element.end_time.strftime("%H:%M")
    if element.start_date:
        r["start_date"] = element.start_date.isoformat()
    if element.end_date:
        r["end_date"] = element.end_date.isoformat()
    for name in _NUMBERS:
        value = getattr(element, name)
        if value is not None:
            r[name] = ocpi_number(value)
    for name in ("min_duration", "max_duration"):
        value = getattr(element, name)
        if value is not None:
            r[name] = value
    if element.day_of_week:
        r["day_of_week"] = list(element.day_of_week)
    if element.reservation:
        if booking_module_version == "1.1":
            r["booking"] = V11_BOOKING[element.reservation]
        else:
            r["reservation"] = element.reservation
    return r


def tariff_object(tariff: Tariff, *, booking_module_version: str = "1.0") -> dict[str, Any]:
    elements = []
    for element in tariff.elements.all():
        item: dict[str, Any] = {
            "price_components": [
                {"type": c.type, "price": ocpi_number(c.price), "step_size": c.step_size}
                for c in element.price_components.all()
            ]
        }
        restrictions = _restrictions(element, booking_module_version)
        if restrictions:
            item["restrictions"] = restrictions
        elements.append(item)
    data: dict[str, Any] = {
        "country_code": settings.OCPI_COUNTRY_CODE,
        "party_id": settings.OCPI_PARTY_ID,
        "id": tariff.ocpi_id,
        "currency": tariff.currency,
        "tax_included": tariff.tax_included,
        "elements": elements,
        "last_updated": ocpi_datetime(tariff.last_updated),
    }
    if tariff.type:
        data["type"] = tariff.type
    if tariff.alt_text:
        data["tariff_alt_text"] = [{"language": tariff.alt_text_language, "text": tariff.alt_text}]
    if tariff.alt_url:
        data["tariff_alt_url"] = tariff.alt_url
    if tariff.min_price is not None:
        data["min_price"] = _price_limit(tariff, tariff.min_price)
    if tariff.max_price is not None:
        data["max_price"] = _price_limit(tariff, tariff.max_price)
    if tariff.start_date_time:
        data["start_date_time"] = ocpi_datetime(tariff.start_date_time)
    if tariff.end_date_time:
        data["end_date_time"] = ocpi_datetime(tariff.end_date_time)
    return data


# Output shape for the OpenAPI schema only.
class PriceComponentOut(serializers.Serializer):
    type = serializers.ChoiceField(choices=["ENERGY", "FLAT", "PARKING_TIME", "TIME"])
    price = serializers.DecimalField(max_digits=12, decimal_places=4)
    step_size = serializers.IntegerField()


class TariffElementOut(serializers.Serializer):
    price_components = PriceComponentOut(many=True)
    restrictions = serializers.DictField(required=False)


class TariffOut(serializers.Serializer):
    country_code = serializers.CharField()
    party_id = serializers.CharField()
    id = serializers.CharField()
    currency = serializers.CharField()
    type = serializers.CharField(required=False)
    tax_included = serializers.ChoiceField(choices=["YES", "NO", "N/A"])
    tariff_alt_text = serializers.ListField(child=serializers.DictField(), required=False)
    tariff_alt_url = serializers.URLField(required=False)
    min_price = serializers.DictField(required=False)
    max_price = serializers.DictField(required=False)
    elements = TariffElementOut(many=True)
    start_date_time = serializers.DateTimeField(required=False)
    end_date_time = serializers.DateTimeField(required=False)
    last_updated = serializers.DateTimeField()
