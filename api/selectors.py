"""Reads of the API, always as one client sees them: its location limits, and only its own
requests, bookings and drivers (unless its scope says otherwise)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from oauth2_provider.models import AccessToken

from bookings.models import Booking, BookingToken, Driver, DriverToken
from bookings.selectors import Criteria
from locations.models import EVSE, ChargePoint, Connector, Location
from locations.selectors import location_list

from .models import BookingRequest, Client, Scope, WebhookSubscription


def client_of_token(token: AccessToken) -> Client:
    """The API client of a token, its application the one the token came with (the oauth
    toolkit loads it with every token it checks: reading it again cost a join of twenty
    columns on every API request). Raises Client.DoesNotExist."""
    client = Client.objects.get(application_id=token.application_id)
    client.application = token.application
    return client


def _limited(client: Client) -> list[int] | None:
    """The client's location ids, or None when it is not limited."""
    # The link rows alone: no join to the locations, no ordering by their name.
    links = Client.locations.through.objects.filter(client_id=client.pk)
    ids = list(links.values_list("location_id", flat=True))
    return ids or None


def client_location_allowed(*, client: Client, location: Location) -> bool:
    limited = _limited(client)
    return limited is None or location.pk in limited


def client_locations(*, client: Client, bookable: bool | None = None) -> QuerySet[Location]:
    qs = location_list()
    limited = _limited(client)
    if limited is not None:
        qs = qs.filter(pk__in=limited)
    if bookable is not None:
        has_bookable = Q(pk__in=EVSE.objects.bookable().values("charge_point__location"))
        qs = qs.filter(has_bookable) if bookable else qs.exclude(has_bookable)
    return qs


def client_location_get(*, client: Client, location_id: str) -> Location:
    """The location by OCPI id (case-insensitive) if the client may see it, with its rules.
    Raises Location.DoesNotExist."""
    return client_locations(client=client).with_rules().get(ocpi_id__iexact=location_id)


def client_charge_points(
    *, client: Client, location_id: str | None = None
) -> QuerySet[ChargePoint]:
    qs = ChargePoint.objects.select_related("location").filter(
        location__in=client_locations(client=client)
    )
    if location_id:
        qs = qs.filter(location__ocpi_id__iexact=location_id)
    return qs


def client_charge_point_get(*, client: Client, charge_point_id: str) -> ChargePoint:
    """Raises ChargePoint.DoesNotExist."""
    return client_charge_points(client=client).get(identity=charge_point_id)


@dataclass(frozen=True)
class EVSEFilters:
    location_id: str | None = None
    charge_point_id: str | None = None
    bookable: bool | None = None
    criteria: Criteria = field(default_factory=Criteria)


def _evse_queryset() -> QuerySet[EVSE]:
    return EVSE.objects.select_related("charge_point__location").prefetch_related(
        Prefetch(
            "connectors", queryset=Connector.objects.order_by("id"), to_attr="loaded_connectors"
        )
    )


def client_evses(*, client: Client, filters: EVSEFilters = EVSEFilters()) -> QuerySet[EVSE]:
    """The client's EVSEs matching the filters. The connector criteria are the booking engine's
    own (Criteria.matches), applied to the candidates and then kept as an id list so the result
    stays a queryset to paginate."""
    qs = _evse_queryset().filter(charge_point__location__in=client_locations(client=client))
    if filters.location_id:
        qs = qs.filter(charge_point__location__ocpi_id__iexact=filters.location_id)
    if filters.charge_point_id:
        qs = qs.filter(charge_point__identity=filters.charge_point_id)
    if filters.bookable is not None:
        bookable = EVSE.objects.bookable().values("pk")
        qs = qs.filter(pk__in=bookable) if filters.bookable else qs.exclude(pk__in=bookable)
    if filters.criteria != Criteria():
        ids = [evse.pk for evse in qs if filters.criteria.matches(evse)]
        qs = _evse_queryset().filter(pk__in=ids)
    return qs


def client_evse_get(*, client: Client, evse_id: str) -> EVSE:
    """Raises EVSE.DoesNotExist."""
    return client_evses(client=client).get(uid=evse_id)


@dataclass(frozen=True)
class BookingFilters:
    status: str | None = None
    driver_id: int | None = None
    location_id: str | None = None
    evse_id: str | None = None
    start_after: datetime | None = None
    start_before: datetime | None = None
    end_after: datetime | None = None
    end_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None


def client_bookings(
    *, client: Client, filters: BookingFilters = BookingFilters()
) -> QuerySet[Booking]:
    """Bookings the client made (its create request made them), with what the API shows."""
    qs = (
        Booking.objects.filter(
            api_requests__client=client, api_requests__type=BookingRequest.Type.CREATE
        )
        .select_related("location", "evse__charge_point", "connector")
        .prefetch_related(
            Prefetch("tokens", queryset=BookingToken.objects.order_by("id")),
            Prefetch("api_requests", queryset=BookingRequest.objects.order_by("id")),
        )
    )
    f = filters
    if f.status:
        qs = qs.filter(status=f.status)
    if f.driver_id is not None:
        qs = qs.filter(driver_id=f.driver_id)
    if f.location_id:
        qs = qs.filter(location__ocpi_id__iexact=f.location_id)
    if f.evse_id:
        qs = qs.filter(evse__uid=f.evse_id)
    if f.start_after:
        qs = qs.filter(period__startswith__gte=f.start_after)
    if f.start_before:
        qs = qs.filter(period__startswith__lt=f.start_before)
    if f.end_after:
        qs = qs.filter(period__endswith__gt=f.end_after)
    if f.end_before:
        qs = qs.filter(period__endswith__lte=f.end_before)
    if f.updated_after:
        qs = qs.filter(last_updated__gte=f.updated_after)
    if f.updated_before:
        qs = qs.filter(last_updated__lt=f.updated_before)
    return qs


def client_booking_get(*, client: Client, booking_id: str) -> Booking:
    """The client's booking by its id (a UUID). Raises Booking.DoesNotExist."""
    try:
        uid = uuid.UUID(str(booking_id))
    except ValueError:
        raise Booking.DoesNotExist from None
    return client_bookings(client=client).get(uid=uid)


@dataclass(frozen=True)
class RequestFilters:
    status: str | None = None
    type: str | None = None
    driver_id: int | None = None
    location_id: str | None = None
    booking_id: str | None = None
    external_id: str | None = None
    start_after: datetime | None = None
    start_before: datetime | None = None
    end_after: datetime | None = None
    end_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def client_requests(
    *, client: Client, filters: RequestFilters = RequestFilters()
) -> QuerySet[BookingRequest]:
    qs = BookingRequest.objects.filter(client=client).select_related("booking", "location", "evse")
    f = filters
    for name, lookup in (
        ("status", "status"),
        ("type", "type"),
        ("driver_id", "driver_id"),
        ("location_id", "location__ocpi_id__iexact"),
        ("booking_id", "booking__uid"),
        ("external_id", "external_id"),
        ("start_after", "start_at__gte"),
        ("start_before", "start_at__lt"),
        ("end_after", "end_at__gt"),
        ("end_before", "end_at__lte"),
        ("created_after", "created_at__gte"),
        ("created_before", "created_at__lt"),
    ):
        value = getattr(f, name)
        if value is not None and value != "":
            qs = qs.filter(**{lookup: value})
    return qs


def client_request_get(*, client: Client, request_id: int) -> BookingRequest:
    """Raises BookingRequest.DoesNotExist."""
    return client_requests(client=client).get(pk=request_id)


def client_drivers(
    *, client: Client, email: str | None = None, created_after: datetime | None = None
) -> QuerySet[Driver]:
    """Drivers the client may see: all with the drivers scope; otherwise those it created and
    those holding bookings it made. `email` matches exactly (case-insensitive)."""
    qs = Driver.objects.prefetch_related(
        Prefetch("tokens", queryset=DriverToken.objects.order_by("id"))
    )
    if Scope.DRIVERS not in client.scopes:
        qs = qs.filter(
            Q(api_clients__client=client)
            | Q(pk__in=client_bookings(client=client).values("driver_id"))
        ).distinct()
    if email:
        qs = qs.filter(email__iexact=email.strip())
    if created_after is not None:
        qs = qs.filter(created_at__gte=created_after)
    return qs


def client_driver_get(*, client: Client, driver_id: int) -> Driver:
    """Raises Driver.DoesNotExist."""
    return client_drivers(client=client).get(pk=driver_id)


def client_webhooks(*, client: Client) -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.filter(client=client, active=True)


def client_webhook_get(*, client: Client, webhook_id: int) -> WebhookSubscription:
    """Raises WebhookSubscription.DoesNotExist."""
    return client_webhooks(client=client).get(pk=webhook_id)


def evse_of_connector(*, charge_point: ChargePoint, connector_id: int) -> EVSE:
    """The EVSE an OCPP 1.6 connector id names (its OCPP EVSE number).
    Raises EVSE.DoesNotExist."""
    return EVSE.objects.select_related("charge_point__location").get(
        charge_point=charge_point, ocpp_evse_id=connector_id
    )


def driver_token_find(*, uid: str, type: str) -> DriverToken | None:
    """The registered driver token with this uid (case-insensitive) and type, with its driver."""
    return (
        DriverToken.objects.filter(uid__iexact=uid, type=type)
        .select_related("driver")
        .order_by("id")
        .first()
    )
