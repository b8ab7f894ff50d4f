"""Bookings module, Sender interface (CPO): S1-S5 plus GET of one booking (A15)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import prefetch_related_objects
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from bookings.models import Booking
from bookings.selectors import Criteria, booking_get, booking_list
from bookings.services import (
    Actor,
    RequestData,
    RequestOutcome,
    TokenData,
    booking_request_submit,
)
from locations.models import EVSE
from ocpi import responses as r
from ocpi.base import OcpiApi
from ocpi.exceptions import OcpiError
from ocpi.fields import OcpiDateTimeField
from ocpi.pagination import PageFilterSerializer, paginated_response
from ocpi.schema import AUTH_ERRORS, PAGE_PARAMETERS, envelope_of
from ocpi.selectors import (
    bookable_evses,
    booking_location_get,
    booking_locations,
    calendar_window,
)

from .serializers import (
    BookingLocationOut,
    BookingOut,
    BookingRequestSerializer,
    CalendarOut,
    booking_location_object,
    booking_object,
    calendar_object,
)
from .versions import looks_like_11, request_from_11


def _booking_out(outcome: RequestOutcome) -> dict:
    """The OCPI Booking of a request's outcome: the tokens and requests the engine reports, and
    the relations it loaded already (a new booking's location and EVSE), are not read again."""
    booking = outcome.booking
    prefetch_related_objects([booking], "location", "evse", "connector")
    return booking_object(booking, tokens=outcome.tokens, requests=outcome.requests)


class BookingLocationListApi(OcpiApi):
    """S1: GET {base}/booking_locations."""

    class FilterSerializer(PageFilterSerializer):
        timeslot_from = OcpiDateTimeField(required=False)
        timeslot_to = OcpiDateTimeField(required=False)

        def validate(self, attrs):
            attrs = super().validate(attrs)
            start, end = attrs.get("timeslot_from"), attrs.get("timeslot_to")
            if start and end and end <= start:
                raise serializers.ValidationError({"timeslot_to": "Must be after timeslot_from."})
            return attrs

    @extend_schema(
        operation_id="booking_locations_list",
        parameters=[
            *PAGE_PARAMETERS,
            OpenApiParameter("timeslot_from", str),
            OpenApiParameter("timeslot_to", str),
        ],
        responses={200: envelope_of("BookingLocationList", BookingLocationOut, many=True),
                   **AUTH_ERRORS},
    )  # fmt: skip
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        now = timezone.now()
        window = calendar_window(f.get("timeslot_from"), f.get("timeslot_to"), now)
        evses = bookable_evses(date_from=f.get("date_from"), date_to=f.get("date_to"), now=now)

        def render(page):
            return [
                self.shape("booking_location", booking_location_object(bl))
                for bl in booking_locations(evses=list(page), window=window, now=now)
            ]

        if f.get("timeslot_from") or f.get("timeslot_to"):
            # Only BookingLocations with a free timeslot in the window count (A8).
            items = [
                bl for bl in booking_locations(evses=list(evses), window=window, now=now)
                if bl.calendars
            ]  # fmt: skip
            return paginated_response(
                request, items, lambda page: [
                    self.shape("booking_location", booking_location_object(bl))
                    for bl in page
                ],
                offset=f["offset"], limit=f.get("limit"),
            )  # fmt: skip
        return paginated_response(request, evses, render, offset=f["offset"], limit=f.get("limit"))


class BookingLocationDetailApi(OcpiApi):
    """S2: GET {base}/booking_locations/{booking_location_id}."""

    @extend_schema(
        operation_id="booking_location_get",
        responses={200: envelope_of("BookingLocationDetail", BookingLocationOut), **AUTH_ERRORS},
    )
    def get(self, request, booking_location_id: str):
        bl = _booking_location(booking_location_id)
        return r.ocpi_response(self.shape("booking_location", booking_location_object(bl)))


class CalendarDetailApi(OcpiApi):
    """S3: GET {base}/booking_locations/{booking_location_id}/{calendar_id}."""

    @extend_schema(
        operation_id="calendar_get",
        responses={200: envelope_of("CalendarDetail", CalendarOut), **AUTH_ERRORS},
    )
    def get(self, request, booking_location_id: str, calendar_id: str):
        bl = _booking_location(booking_location_id)
        for calendar in bl.calendars:
            if calendar.id == calendar_id:
                return r.ocpi_response(self.shape("calendar", calendar_object(calendar)))
        raise OcpiError(r.CLIENT_ERROR, f"No calendar {calendar_id!r} (no free time that day).",
                        http_status=404)  # fmt: skip


def _booking_location(booking_location_id: str):
    now = timezone.now()
    try:
        evse = booking_location_get(booking_location_id=booking_location_id, now=now)
    except EVSE.DoesNotExist:
        raise OcpiError(
            r.CLIENT_ERROR, f"No BookingLocation {booking_location_id!r}.", http_status=404
        ) from None
    found = booking_locations(evses=[evse], window=calendar_window(None, None, now), now=now)
    if not found:  # removed between the two reads
        raise OcpiError(
            r.CLIENT_ERROR, f"No BookingLocation {booking_location_id!r}.", http_status=404
        )
    return found[0]


class BookingListCreateApi(OcpiApi):
    """S4: GET {base} (this party's bookings); S5: POST {base} with a BookingRequest."""

    @extend_schema(
        operation_id="bookings_list",
        parameters=PAGE_PARAMETERS,
        responses={200: envelope_of("BookingList", BookingOut, many=True), **AUTH_ERRORS},
    )
    def get(self, request):
        filters = PageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        items = booking_list(
            country_code=self.party.country_code,
            party_id=self.party.party_id,
            date_from=f.get("date_from"),
            date_to=f.get("date_to"),
        )
        return paginated_response(
            request, items, lambda page: [self.shape("booking", booking_object(b)) for b in page],
            offset=f["offset"], limit=f.get("limit"),
        )  # fmt: skip

    @extend_schema(
        operation_id="booking_request_post",
        request=BookingRequestSerializer,
        responses={200: envelope_of("BookingPosted", BookingOut),
                   201: envelope_of("BookingCreated", BookingOut), **AUTH_ERRORS},
    )  # fmt: skip
    def post(self, request):
        body = request.data
        if self.party.booking_module_version == "1.1" or looks_like_11(body):
            body = request_from_11(body)
        serializer = BookingRequestSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        v = serializer.validated_data
        party = self.party
        if (v["country_code"].upper(), v["party_id"].upper()) != (
            party.country_code,
            party.party_id,
        ):
            raise OcpiError(
                r.INVALID_PARAMETERS,
                f"country_code/party_id: must be your own ({party.country_code}/{party.party_id}).",
            )
        canceled = v.get("canceled")
        period = v.get("period") or {}
        placeholder = datetime(1970, 1, 1, tzinfo=UTC)  # a cancel ignores the period (A11)
        power = v.get("power_required")
        data = RequestData(
            request_id=v["request_id"],
            location_id=v.get("location_id") or "",
            start=period.get("start_from", placeholder),
            end=period.get("end_before", placeholder),
            authorization_reference=v.get("authorization_reference") or "",
            evse_uid=v.get("evse_uid") or None,
            connector_id=v.get("connector_id") or None,
            tokens=tuple(
                TokenData(t["country_code"], t["party_id"], t["uid"], t["type"], t["contract_id"])
                for t in v.get("tokens") or ()
            ),
            power_required_kw=power,
            canceled_reason=canceled["cancellation_reason"] if canceled else None,
            criteria=Criteria(min_power_kw=power) if power else Criteria(),
            published_only=True,  # an unpublished location is unknown to eMSPs (2003)
        )
        outcome = booking_request_submit(
            actor=Actor.emsp(party.country_code, party.party_id), data=data, payload=request.data
        )
        out = _booking_out(outcome)
        created = len(out["booking_requests"]) == 1 and not canceled
        return r.ocpi_response(self.shape("booking", out), http_status=201 if created else 200)


class BookingDetailApi(OcpiApi):
    """GET {base}/{booking_id}: one of this party's bookings (extension A15)."""

    @extend_schema(
        operation_id="booking_get",
        responses={200: envelope_of("BookingDetail", BookingOut), **AUTH_ERRORS},
    )
    def get(self, request, booking_id: str):
        try:
            booking = booking_get(uid=booking_id)
        except Booking.DoesNotExist:
            booking = None
        party = self.party
        if booking is None or (booking.emsp_country_code, booking.emsp_party_id) != (
            party.country_code,
            party.party_id,
        ):
            # Another party's booking is indistinguishable from a missing one.
            raise OcpiError(r.CLIENT_ERROR, f"No booking {booking_id!r}.", http_status=404)
        return r.ocpi_response(self.shape("booking", booking_object(booking)))
