"""The operator REST API's views: one APIView per resource or operation (STYLE.md rule 9), each
validating with a nested serializer and calling selectors and services."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings import exceptions as booking_exc
from bookings.models import Booking, Driver, DriverToken, TokenType
from bookings.selectors import location_availability
from bookings.services import TokenData
from locations.models import EVSE, ChargePoint, Location
from locations.selectors import evse_at_location, location_get_ci

from . import selectors, services
from . import serializers as s
from .base import ApiView
from .exceptions import api_exception_handler
from .models import BookingRequest, WebhookSubscription

# The refusals a caller can only wait out or work around (the slot, the token or the booking's
# state): 409; every other refusal breaks a rule of the request itself: 422.
CONFLICT_CODES = {"slot_unavailable", "no_evse_available", "token_overlap", "evse_in_use",
                  "invalid_transition"}  # fmt: skip

ERRORS = {
    401: OpenApiResponse(s.ErrorSerializer, description="No, invalid or expired Bearer token."),
    403: OpenApiResponse(s.ErrorSerializer, description="Out of scope or location."),
    404: OpenApiResponse(s.ErrorSerializer, description="Unknown, or not this client's."),
    400: OpenApiResponse(s.ErrorSerializer, description="The body is not valid JSON."),
    422: OpenApiResponse(s.ErrorSerializer, description="Invalid input, with field paths."),
    429: OpenApiResponse(s.ErrorSerializer, description="Rate limited; see Retry-After."),
}
PAGE = [
    OpenApiParameter("per_page", OpenApiTypes.INT, description="1-100, default 100."),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque; from links.next."),
]


def page(serializer_class) -> serializers.Serializer:
    """The documented shape of a page of a list: {"data": [...], "links": {...}}."""
    name = serializer_class.__name__.removesuffix("Serializer")
    return inline_serializer(
        name=f"{name}Page",
        fields={"data": serializer_class(many=True), "links": s.LinksSerializer()},
    )


def one(serializer_class) -> serializers.Serializer:
    """The documented shape of one object: {"data": {...}}."""
    name = serializer_class.__name__.removesuffix("Serializer")
    return inline_serializer(name=f"{name}Response", fields={"data": serializer_class()})


def _errors(*codes: int) -> dict:
    """Every operation's documented errors: any may meet a bad token, a missing scope, an
    unknown id or cursor, invalid parameters or the rate limit; `codes` adds more."""
    return {code: ERRORS[code] for code in sorted({401, 403, 404, 422, 429, *codes})}


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class NotFoundApi(APIView):
    """Any other path under /api/: a JSON 404, never Django's HTML page."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]
    schema = None

    def get_exception_handler(self):
        return api_exception_handler

    def _missing(self, request, *args, **kwargs):
        raise NotFound("There is no such API endpoint.")

    get = post = put = patch = delete = _missing


# --- Locations, charge points, EVSEs ------------------------------------------------------


class LocationListApi(ApiView):
    @extend_schema(
        tags=["locations"], parameters=[s.LocationFilterSerializer, *PAGE],
        responses={200: page(s.LocationSerializer), **_errors()},
    )  # fmt: skip
    def get(self, request):
        f = _valid(s.LocationFilterSerializer, request.query_params)
        qs = selectors.client_locations(client=self.client, bookable=f["bookable"])
        return self.paginate(qs, s.LocationSerializer)


class LocationDetailApi(ApiView):
    @extend_schema(tags=["locations"], responses={200: one(s.LocationSerializer), **_errors()})
    def get(self, request, location_id: str):
        try:
            location = selectors.client_location_get(client=self.client, location_id=location_id)
        except Location.DoesNotExist:
            raise NotFound(f"There is no location {location_id!r}.") from None
        return Response({"data": s.LocationSerializer(location).data})


class AvailabilityApi(ApiView):
    @extend_schema(
        tags=["locations"], parameters=[s.AvailabilityQuerySerializer],
        summary="Free time per bookable EVSE over a window of at most 7 days",
        description="The same engine as the staff pages and the OCPI calendars. Each EVSE "
        "lists the free intervals a booking may use, and the grid and durations bookings "
        "there must respect.",
        responses={200: s.AvailabilitySerializer, **_errors()},
    )  # fmt: skip
    def get(self, request, location_id: str):
        q = _valid(s.AvailabilityQuerySerializer, request.query_params)
        try:
            location = selectors.client_location_get(client=self.client, location_id=location_id)
        except Location.DoesNotExist:
            raise NotFound(f"There is no location {location_id!r}.") from None
        try:
            avail = location_availability(
                location=location, start=q["startAfter"], end=q["endBefore"],
                evse=q.get("evseId"), criteria=s.criteria_of(q),
            )  # fmt: skip
        except booking_exc.InvalidWindow as error:
            raise ValidationError({"endBefore": [error.message]}) from None
        except booking_exc.UnknownEVSE as error:
            raise ValidationError({"evseId": [error.message]}) from None
        return Response(s.AvailabilitySerializer({"data": avail.evses}).data)


class ChargePointListApi(ApiView):
    @extend_schema(
        tags=["charge points"], parameters=[s.ChargePointFilterSerializer, *PAGE],
        responses={200: page(s.ChargePointSerializer), **_errors()},
    )  # fmt: skip
    def get(self, request):
        f = _valid(s.ChargePointFilterSerializer, request.query_params)
        qs = selectors.client_charge_points(client=self.client, location_id=f.get("locationId"))
        return self.paginate(qs, s.ChargePointSerializer)


def _charge_point(client, charge_point_id: str) -> ChargePoint:
    try:
        return selectors.client_charge_point_get(client=client, charge_point_id=charge_point_id)
    except ChargePoint.DoesNotExist:
        raise NotFound(f"There is no charge point {charge_point_id!r}.") from None


class ChargePointDetailApi(ApiView):
    @extend_schema(
        tags=["charge points"], responses={200: one(s.ChargePointSerializer), **_errors()}
    )
    def get(self, request, charge_point_id: str):
        cp = _charge_point(self.client, charge_point_id)
        return Response({"data": s.ChargePointSerializer(cp).data})


def _evse_filters(f: dict, **extra) -> selectors.EVSEFilters:
    return selectors.EVSEFilters(
        location_id=f.get("locationId"),
        charge_point_id=f.get("chargePointId"),
        bookable=f.get("bookable"),
        criteria=s.criteria_of(f),
        **extra,
    )


class ChargePointEVSEListApi(ApiView):
    @extend_schema(
        tags=["charge points"], parameters=[s.EVSEFilterSerializer, *PAGE],
        responses={200: page(s.EVSESerializer), **_errors()},
    )  # fmt: skip
    def get(self, request, charge_point_id: str):
        cp = _charge_point(self.client, charge_point_id)
        f = _valid(s.EVSEFilterSerializer, request.query_params)
        f["chargePointId"] = cp.identity
        qs = selectors.client_evses(client=self.client, filters=_evse_filters(f))
        return self.paginate(qs, s.EVSESerializer)


class EVSEListApi(ApiView):
    @extend_schema(
        tags=["evses"], parameters=[s.EVSEFilterSerializer, *PAGE],
        responses={200: page(s.EVSESerializer), **_errors()},
    )  # fmt: skip
    def get(self, request):
        f = _valid(s.EVSEFilterSerializer, request.query_params)
        qs = selectors.client_evses(client=self.client, filters=_evse_filters(f))
        return self.paginate(qs, s.EVSESerializer)


class EVSEDetailApi(ApiView):
    @extend_schema(tags=["evses"], responses={200: one(s.EVSESerializer), **_errors()})
    def get(self, request, evse_id: str):
        try:
            evse = selectors.client_evse_get(client=self.client, evse_id=evse_id)
        except EVSE.DoesNotExist:
            raise NotFound(f"There is no EVSE {evse_id!r}.") from None
        return Response({"data": s.EVSESerializer(evse).data})


# --- Booking requests and bookings ----------------------------------------------------------


def _bookable_location(client, location_id: str, field: str = "locationId") -> Location:
    try:
        location = location_get_ci(ocpi_id=location_id)
    except Location.DoesNotExist:
        raise ValidationError({field: [f"There is no location {location_id!r}."]}) from None
    return _allowed(client, location)


def _allowed(client, location: Location) -> Location:
    """Raises PermissionDenied when the client is limited to other locations."""
    if not selectors.client_location_allowed(client=client, location=location):
        raise PermissionDenied(f"This client may not book at location {location.ocpi_id}.")
    return location


def _evse_at(location: Location, evse_id: str, field: str = "evseId") -> EVSE:
    try:
        return evse_at_location(location_id=location.ocpi_id, evse_uid=evse_id)
    except EVSE.DoesNotExist:
        raise ValidationError(
            {field: [f"There is no EVSE {evse_id!r} at location {location.ocpi_id}."]}
        ) from None


def _own_booking(client, booking_id) -> Booking:
    try:
        return selectors.client_booking_get(client=client, booking_id=booking_id)
    except Booking.DoesNotExist:
        raise ValidationError({"bookingId": [f"There is no booking {booking_id}."]}) from None


def _driver_tokens(driver: Driver, uids: list[str] | None) -> tuple[TokenData, ...]:
    tokens = {t.uid: t for t in driver.tokens.all()}
    if uids is None:
        return ()  # booking_create gives the booking all of the driver's tokens
    unknown = [uid for uid in uids if uid not in tokens]
    if unknown:
        raise ValidationError(
            {"authorizedTokenUids": [f"The driver holds no token {uid!r}." for uid in unknown]}
        )
    return tuple(_token_data(tokens[uid]) for uid in uids)


def _token_data(token: DriverToken) -> TokenData:
    return TokenData(token.country_code, token.party_id, token.uid, token.type, token.contract_id)


def _request_data(client, v: dict):
    if v["type"] == BookingRequest.Type.CREATE:
        try:
            driver = selectors.client_driver_get(client=client, driver_id=v["driverId"])
        except Driver.DoesNotExist:
            raise ValidationError({"driverId": [f"There is no driver {v['driverId']}."]}) from None
        evse = None
        if v.get("evseId"):
            # One query for the EVSE with its location and policies; the location alone
            # (for its error) only when the EVSE is not there.
            try:
                evse = evse_at_location(location_id=v["locationId"], evse_uid=v["evseId"])
            except EVSE.DoesNotExist:
                evse = _evse_at(_bookable_location(client, v["locationId"]), v["evseId"])
            location = _allowed(client, evse.charge_point.location)
        else:
            location = _bookable_location(client, v["locationId"])
        return services.CreateData(
            location=location,
            start=v["startAt"],
            end=v["endAt"],
            driver=driver,
            evse=evse,
            connector_id=v.get("connectorId"),
            criteria=s.criteria_of(v.get("evseCriteria")),
            tokens=_driver_tokens(driver, v.get("authorizedTokenUids")),
        )
    booking = _own_booking(client, v["bookingId"])
    if v["type"] == BookingRequest.Type.CANCEL:
        return services.CancelData(booking=booking, **(
            {"reason": v["canceledReason"]} if v.get("canceledReason") else {}
        ))  # fmt: skip
    return services.UpdateData(
        booking=booking,
        start=v.get("startAt"),
        end=v.get("endAt"),
        evse=_evse_at(booking.location, v["evseId"]) if v.get("evseId") else None,
    )


class BookingRequestListCreateApi(ApiView):
    scopes = {"GET": "read", "POST": "book"}

    @extend_schema(
        tags=["booking requests"], parameters=[s.RequestFilterSerializer, *PAGE],
        responses={200: page(s.BookingRequestSerializer), **_errors()},
    )  # fmt: skip
    def get(self, request):
        f = _valid(s.RequestFilterSerializer, request.query_params)
        filters = selectors.RequestFilters(
            status=f.get("status"), type=f.get("type"), driver_id=f.get("driverId"),
            location_id=f.get("locationId"), booking_id=f.get("bookingId"),
            external_id=f.get("externalId"), start_after=f.get("startAfter"),
            start_before=f.get("startBefore"), end_after=f.get("endAfter"),
            end_before=f.get("endBefore"), created_after=f.get("createdAfter"),
            created_before=f.get("createdBefore"),
        )  # fmt: skip
        qs = selectors.client_requests(client=self.client, filters=filters)
        return self.paginate(qs, s.BookingRequestSerializer)

    @extend_schema(
        tags=["booking requests"], request=s.BookingRequestInputSerializer,
        summary="Create, change or cancel a booking; decided at once",
        description="type=create books a driver at a location, on evseId or on the EVSE that "
        "fits evseCriteria best; type=update moves a booking (startAt, endAt, evseId); "
        "type=cancel cancels it. The answer is the request, approved with its bookingId or "
        "rejected with a machine-readable code and a sentence. The same externalId from this "
        "client returns the same request (200).",
        responses={
            201: one(s.BookingRequestSerializer), 200: one(s.BookingRequestSerializer),
            409: OpenApiResponse(s.ErrorSerializer, description="externalId reused, or busy."),
            **_errors(400),
        },
    )  # fmt: skip
    def post(self, request):
        v = _valid(s.BookingRequestInputSerializer, request.data)
        data = _request_data(self.client, v)
        booking_request, new = services.booking_request_submit(
            client=self.client, data=data, payload=request.data,
            external_id=v.get("externalId", ""),
        )  # fmt: skip
        return Response(
            {"data": s.BookingRequestSerializer(booking_request).data},
            status=status.HTTP_201_CREATED if new else status.HTTP_200_OK,
            headers={"Location": reverse("api:booking_request", args=[booking_request.pk])},
        )


class BookingRequestDetailApi(ApiView):
    @extend_schema(
        tags=["booking requests"], responses={200: one(s.BookingRequestSerializer), **_errors()}
    )
    def get(self, request, request_id: int):
        try:
            found = selectors.client_request_get(client=self.client, request_id=request_id)
        except BookingRequest.DoesNotExist:
            raise NotFound(f"There is no booking request {request_id}.") from None
        return Response({"data": s.BookingRequestSerializer(found).data})


class BookingListApi(ApiView):
    @extend_schema(
        tags=["bookings"], parameters=[s.BookingFilterSerializer, *PAGE],
        responses={200: page(s.BookingSerializer), **_errors()},
    )  # fmt: skip
    def get(self, request):
        f = _valid(s.BookingFilterSerializer, request.query_params)
        filters = selectors.BookingFilters(
            status=f.get("status"), driver_id=f.get("driverId"), location_id=f.get("locationId"),
            evse_id=f.get("evseId"), start_after=f.get("startAfter"),
            start_before=f.get("startBefore"), end_after=f.get("endAfter"),
            end_before=f.get("endBefore"), updated_after=f.get("updatedAfter"),
            updated_before=f.get("updatedBefore"),
        )  # fmt: skip
        qs = selectors.client_bookings(client=self.client, filters=filters)
        return self.paginate(qs, s.BookingSerializer)


def _booking(client, booking_id: str) -> Booking:
    try:
        return selectors.client_booking_get(client=client, booking_id=booking_id)
    except Booking.DoesNotExist:
        raise NotFound(f"There is no booking {booking_id!r}.") from None


class BookingDetailApi(ApiView):
    @extend_schema(tags=["bookings"], responses={200: one(s.BookingSerializer), **_errors()})
    def get(self, request, booking_id: str):
        return Response({"data": s.BookingSerializer(_booking(self.client, booking_id)).data})


# --- Drivers ----------------------------------------------------------------------------------


class DriverListCreateApi(ApiView):
    scopes = {"GET": "read", "POST": "drivers"}

    @extend_schema(
        tags=["drivers"], parameters=[s.DriverFilterSerializer, *PAGE],
        description="Drivers this client created or that hold its bookings; every driver "
        "with the drivers scope. email matches exactly; no match is an empty list.",
        responses={200: page(s.DriverSerializer), **_errors()},
    )  # fmt: skip
    def get(self, request):
        f = _valid(s.DriverFilterSerializer, request.query_params)
        qs = selectors.client_drivers(
            client=self.client, email=f.get("email"), created_after=f.get("createdAfter")
        )
        return self.paginate(qs, s.DriverSerializer)

    @extend_schema(
        tags=["drivers"], request=s.DriverInputSerializer,
        responses={201: one(s.DriverSerializer), **_errors(400)},
    )  # fmt: skip
    def post(self, request):
        v = _valid(s.DriverInputSerializer, request.data)
        tokens = [
            TokenData(
                settings.OCPI_COUNTRY_CODE, settings.OCPI_PARTY_ID, t["uid"], t["type"],
                t.get("contractId") or t["uid"],
            )
            for t in v["tokens"]
        ]  # fmt: skip
        try:
            driver = services.client_driver_create(
                client=self.client, name=v["name"], email=v["email"], phone=v["phone"],
                license_plate=v["licensePlate"], tokens=tokens,
            )  # fmt: skip
        except DjangoValidationError as error:
            raise ValidationError({"tokens": error.messages}) from None
        return Response(
            {"data": s.DriverSerializer(driver).data}, status=201,
            headers={"Location": reverse("api:driver", args=[driver.pk])},
        )  # fmt: skip


class DriverDetailApi(ApiView):
    @extend_schema(tags=["drivers"], responses={200: one(s.DriverSerializer), **_errors()})
    def get(self, request, driver_id: int):
        try:
            driver = selectors.client_driver_get(client=self.client, driver_id=driver_id)
        except Driver.DoesNotExist:
            raise NotFound(f"There is no driver {driver_id}.") from None
        return Response({"data": s.DriverSerializer(driver).data})


# --- Connector reservations (the depot API's shape) ----------------------------------------


def _refusal(booking_request: BookingRequest) -> Response:
    code = booking_request.reason_code
    return Response(
        {"message": booking_request.reason, "code": code, "requestId": booking_request.pk},
        status=409 if code in CONFLICT_CODES else 422,
    )


class ReservationCreateApi(ApiView):
    scopes = {"POST": "book"}

    @extend_schema(
        tags=["reservations"], request=s.ReservationInputSerializer,
        summary="Reserve a charger's connector from a start to an end for a token",
        description="An ordinary booking underneath (type create, on the EVSE whose OCPP "
        "number is connectorId), recorded as a booking request.",
        responses={
            201: s.ReservationCreatedSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="The slot or token is taken."),
            **_errors(400),
        },
    )  # fmt: skip
    def post(self, request, charger_id: str, connector_id: int):
        v = _valid(s.ReservationInputSerializer, request.data)
        cp = _charge_point(self.client, charger_id)
        try:
            evse = selectors.evse_of_connector(charge_point=cp, connector_id=connector_id)
        except EVSE.DoesNotExist:
            raise NotFound(f"Charger {cp.identity} has no connector {connector_id}.") from None
        driver_token = selectors.driver_token_find(
            uid=v["authorizationValue"], type=v["authorizationType"]
        )
        if driver_token is not None:
            token, driver = _token_data(driver_token), driver_token.driver
        else:
            token = TokenData(
                settings.OCPI_COUNTRY_CODE, settings.OCPI_PARTY_ID, v["authorizationValue"],
                v["authorizationType"] or TokenType.RFID, v["authorizationValue"],
            )  # fmt: skip
            driver = None
        data = services.CreateData(
            location=cp.location, start=v["reservationStart"], end=v["reservationEnd"],
            driver=driver, evse=evse, tokens=(token,),
        )  # fmt: skip
        booking_request, new = services.booking_request_submit(
            client=self.client, data=data, payload=request.data,
            external_id=v.get("externalId", ""),
        )  # fmt: skip
        if booking_request.status == BookingRequest.Status.REJECTED:
            return _refusal(booking_request)
        booking = selectors.client_booking_get(
            client=self.client, booking_id=booking_request.booking.uid
        )
        return Response(
            {"reservationId": str(booking.uid), "message": "Charger reservation is successful.",
             "booking": s.BookingSerializer(booking).data},
            status=201 if new else 200,
            headers={"Location": reverse("api:booking", args=[booking.uid])},
        )  # fmt: skip


class ReservationDeleteApi(ApiView):
    scopes = {"DELETE": "book"}

    @extend_schema(
        tags=["reservations"], request=None,
        responses={
            200: s.MessageSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="Already over or canceled."),
            **_errors(),
        },
    )  # fmt: skip
    def delete(self, request, reservation_id: str):
        booking = _booking(self.client, reservation_id)
        booking_request, _ = services.booking_request_submit(
            client=self.client, data=services.CancelData(booking=booking),
            payload={"type": "cancel", "bookingId": str(booking.uid)},
        )  # fmt: skip
        if booking_request.status == BookingRequest.Status.REJECTED:
            return _refusal(booking_request)
        return Response({"message": "Reservation is deleted successfully."})


# --- Webhooks ----------------------------------------------------------------------------------


class WebhookListCreateApi(ApiView):
    scopes = {"GET": "webhooks", "POST": "webhooks"}

    @extend_schema(
        tags=["webhooks"], parameters=PAGE,
        responses={200: page(s.WebhookSerializer), **_errors()},
    )  # fmt: skip
    def get(self, request):
        return self.paginate(selectors.client_webhooks(client=self.client), s.WebhookSerializer)

    @extend_schema(
        tags=["webhooks"], request=s.WebhookInputSerializer,
        summary="Receive this client's booking events at a URL",
        description="Each event is POSTed as JSON {id, event, occurredAt, booking}, in order "
        "per subscription, with X-Chargebook-Event, X-Chargebook-Delivery, "
        "X-Chargebook-Timestamp (epoch seconds) and X-Chargebook-Signature: v1=<hex "
        "HMAC-SHA256 of '<timestamp>.<body>' with the secret>. Any 2xx answer counts as "
        "received; anything else is retried with backoff, later events waiting behind it.",
        responses={201: one(s.WebhookCreatedSerializer), **_errors(400)},
    )  # fmt: skip
    def post(self, request):
        v = _valid(s.WebhookInputSerializer, request.data)
        sub = services.webhook_subscribe(client=self.client, url=v["url"], events=v["events"])
        return Response(
            {"data": s.WebhookCreatedSerializer(sub).data}, status=201,
            headers={"Location": reverse("api:webhook", args=[sub.pk])},
        )  # fmt: skip


class WebhookDetailApi(ApiView):
    scopes = {"GET": "webhooks", "DELETE": "webhooks"}

    def _get(self, webhook_id: int):
        try:
            return selectors.client_webhook_get(client=self.client, webhook_id=webhook_id)
        except WebhookSubscription.DoesNotExist:
            raise NotFound(f"There is no webhook {webhook_id}.") from None

    @extend_schema(tags=["webhooks"], responses={200: one(s.WebhookSerializer), **_errors()})
    def get(self, request, webhook_id: int):
        return Response({"data": s.WebhookSerializer(self._get(webhook_id)).data})

    @extend_schema(tags=["webhooks"], responses={204: None, **_errors()})
    def delete(self, request, webhook_id: int):
        services.webhook_unsubscribe(subscription=self._get(webhook_id))
        return Response(status=204)
