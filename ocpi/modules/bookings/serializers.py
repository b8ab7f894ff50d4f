"""Bookings module (2.3.0-booking-1.0) object shapes: BookingRequest in; Booking, BookingLocation
and Calendar out. Query-free: callers pass prefetched rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from rest_framework import serializers

from bookings.models import TOKEN_TYPE_MAX_LENGTH, Booking, BookingRequest, CanceledReason
from locations.selectors import tariff_ids_for
from ocpi.fields import (
    CiStringField,
    InputSerializer,
    OcpiDateTimeField,
    StrictBooleanField,
    StrictChoiceField,
    StrictIntegerField,
    StrictNumberField,
)
from ocpi.responses import ocpi_datetime
from ocpi.selectors import BookingLocationData, CalendarData

MAX_TOKENS_PER_REQUEST = 20  # each is a row and a token-busy check; a driver has one or two

WHO_CANCELED = {"CPO": "CPO", "EMSP": "EMSP", "SENDER": "CPO", "RECEIVER": "EMSP"}  # A6


class TimeslotSerializer(InputSerializer):
    start_from = OcpiDateTimeField()
    end_before = OcpiDateTimeField()
    min_power = StrictNumberField(required=False, allow_null=True, min_value=0)
    max_power = StrictNumberField(required=False, allow_null=True, min_value=0)
    green_energy_support = StrictBooleanField(required=False, allow_null=True)

    def validate(self, attrs):
        if attrs["end_before"] <= attrs["start_from"]:
            raise serializers.ValidationError({"end_before": "Must be after start_from."})
        return attrs


class BookingTokenSerializer(InputSerializer):
    country_code = CiStringField(2)
    party_id = CiStringField(3)
    uid = CiStringField(36)
    type = CiStringField(TOKEN_TYPE_MAX_LENGTH)  # an OpenEnum: unknown values are accepted
    contract_id = CiStringField(36)


class CancellationSerializer(InputSerializer):
    cancellation_reason = StrictChoiceField(choices=CanceledReason.values)
    who_canceled = StrictChoiceField(choices=list(WHO_CANCELED))


class BookingRequestSerializer(InputSerializer):
    """The eMSP's POST body. With `canceled` present only the identity is needed (A11)."""

    country_code = CiStringField(2)
    party_id = CiStringField(3)
    request_id = CiStringField(36)
    bookable_parking_option = serializers.DictField(required=False, allow_null=True)
    location_id = CiStringField(36)
    evse_uid = CiStringField(36, required=False, allow_null=True, allow_blank=True)
    connector_id = CiStringField(36, required=False, allow_null=True, allow_blank=True)
    tokens = BookingTokenSerializer(
        many=True, required=False, allow_null=True, max_length=MAX_TOKENS_PER_REQUEST
    )
    period = TimeslotSerializer()
    authorization_reference = CiStringField(36)
    power_required = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=10**6
    )
    canceled = CancellationSerializer(required=False, allow_null=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        data = kwargs.get("data")
        if isinstance(data, dict) and data.get("canceled") is not None:
            for name in ("location_id", "period", "authorization_reference"):
                self.fields[name].required = False

    def to_internal_value(self, data):
        if isinstance(data, dict) and "tokens" not in data and "booking_tokens" in data:
            data = {**data, "tokens": data["booking_tokens"]}  # tolerant reader (A12)
        return super().to_internal_value(data)


def _period(start, end) -> dict[str, Any]:
    return {"start_from": ocpi_datetime(start), "end_before": ocpi_datetime(end)}


def _synthetic_request(booking: Booking) -> dict[str, Any]:
    """A booking made without a BookingRequest (a RESERVE_NOW) still lists one (`+`)."""
    return {
        "request_status": "ACCEPTED",
        "booking_request": {
            "country_code": booking.emsp_country_code,
            "party_id": booking.emsp_party_id,
            "request_id": booking.request_id,
            "location_id": booking.location.ocpi_id,
            "evse_uid": booking.evse.uid if booking.evse_id else None,
            "tokens": [_token(t) for t in booking.tokens.all()],
            "period": _period(booking.period.lower, booking.period.upper),
            "authorization_reference": booking.authorization_reference,
        },
        "request_received": ocpi_datetime(booking.created_at),
    }


def _token(t) -> dict[str, str]:
    return {"country_code": t.country_code, "party_id": t.party_id, "uid": t.uid, "type": t.type,
            "contract_id": t.contract_id}  # fmt: skip


def booking_object(
    booking: Booking,
    *,
    tokens: Sequence[Any] | None = None,
    requests: Sequence[BookingRequest] | None = None,
) -> dict[str, Any]:
    """The OCPI Booking (booking-1.0 field tables) of a booking fetched with
    bookings.selectors.booking_detail_queryset(), or of one the engine just wrote, with the
    tokens and requests it wrote (bookings.services.RequestOutcome)."""
    tokens = booking.tokens.all() if tokens is None else tokens
    requests = booking.requests.all() if requests is None else requests
    request_objects = [
        {
            "request_status": req.request_status,
            "booking_request": req.payload,
            "request_received": ocpi_datetime(req.received_at),
        }
        for req in requests
    ] or [_synthetic_request(booking)]
    data: dict[str, Any] = {
        "id": str(booking.uid),
        "country_code": settings.OCPI_COUNTRY_CODE,
        "party_id": settings.OCPI_PARTY_ID,
        "request_id": booking.request_id,
        "location_id": booking.location.ocpi_id,
        "evse_uid": booking.evse.uid if booking.evse_id else "#NA",
        "connector_id": booking.connector.connector_id if booking.connector_id else None,
        "booking_tokens": [_token(t) for t in tokens],
        "tariff_id": list(booking.tariff_ids),
        "period": _period(booking.period.lower, booking.period.upper),
        "reservation_status": booking.status,
        "access_methods": booking.access_methods or [{"location_access": "OPEN"}],
        "authorization_reference": booking.authorization_reference,
        "booking_terms": booking.terms or {},
        "booking_requests": request_objects,
        "last_updated": ocpi_datetime(booking.last_updated),
    }
    if data["connector_id"] is None:
        del data["connector_id"]
    if booking.canceled_reason:
        data["canceled"] = {
            "cancellation_reason": booking.canceled_reason,
            "who_canceled": booking.canceled_by_role or "CPO",
        }
    return data


def calendar_object(calendar: CalendarData) -> dict[str, Any]:
    slots = []
    for slot in calendar.slots:
        item: dict[str, Any] = _period(slot.start, slot.end)
        if calendar.max_power:
            item["max_power"] = calendar.max_power
        slots.append(item)
    return {
        "id": calendar.id,
        "begin_from": ocpi_datetime(calendar.begin_from),
        "end_before": ocpi_datetime(calendar.end_before),
        "step_size": calendar.step_minutes,
        "available_timeslots": slots,
        "last_updated": ocpi_datetime(calendar.last_updated),
    }


def booking_location_object(bl: BookingLocationData) -> dict[str, Any]:
    from locations.selectors import policy_terms

    connectors = bl.evse.connector_list()
    data: dict[str, Any] = {
        "country_code": settings.OCPI_COUNTRY_CODE,
        "party_id": settings.OCPI_PARTY_ID,
        "id": bl.evse.uid,
        "location_id": bl.location.ocpi_id,
        "evse_uid": bl.evse.uid,
        "bookable": {"reservation_required": False},
        "tariff_id": tariff_ids_for(evse=bl.evse, location=bl.location),
        "booking_terms": [policy_terms(bl.policy, evse=bl.evse)],  # A14: one element
        "calendars": [calendar_object(c) for c in bl.calendars],
        "last_updated": ocpi_datetime(bl.last_updated),
    }
    if len(connectors) == 1:
        data["connector_id"] = connectors[0].connector_id
    return data


# Output shapes for the OpenAPI schema only (the objects above are built as plain dicts).
class TimeslotOut(serializers.Serializer):
    start_from = serializers.DateTimeField()
    end_before = serializers.DateTimeField()
    max_power = serializers.FloatField(required=False)


class CalendarOut(serializers.Serializer):
    id = serializers.CharField()
    begin_from = serializers.DateTimeField()
    end_before = serializers.DateTimeField()
    step_size = serializers.IntegerField()
    available_timeslots = TimeslotOut(many=True)
    last_updated = serializers.DateTimeField()


class BookingLocationOut(serializers.Serializer):
    country_code = serializers.CharField()
    party_id = serializers.CharField()
    id = serializers.CharField()
    location_id = serializers.CharField()
    evse_uid = serializers.CharField()
    connector_id = serializers.CharField(required=False)
    booking_terms = serializers.ListField(child=serializers.DictField())
    calendars = CalendarOut(many=True)
    last_updated = serializers.DateTimeField()


class BookingOut(serializers.Serializer):
    id = serializers.CharField()
    country_code = serializers.CharField()
    party_id = serializers.CharField()
    request_id = serializers.CharField()
    location_id = serializers.CharField()
    evse_uid = serializers.CharField()
    booking_tokens = serializers.ListField(child=serializers.DictField())
    period = TimeslotOut()
    reservation_status = serializers.CharField()
    authorization_reference = serializers.CharField()
    booking_terms = serializers.DictField()
    booking_requests = serializers.ListField(child=serializers.DictField())
    last_updated = serializers.DateTimeField()
