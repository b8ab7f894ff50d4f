"""Writes of the API: clients, drivers, and booking requests decided at once by the booking
services (bookings.services); no booking rule lives here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application

from bookings import exceptions as exc
from bookings.models import Booking, CanceledReason, Driver
from bookings.selectors import Criteria
from bookings.services import (
    Actor,
    TokenData,
    advisory_lock,
    booking_cancel,
    booking_change,
    booking_create,
    driver_create,
    evse_assign,
)
from locations.models import EVSE, Location

from .models import BookingRequest, Client, ClientDriver, Scope, WebhookSubscription
from .webhooks import new_secret


@transaction.atomic
def client_create(
    *, name: str, scopes: Sequence[str], locations: Sequence[Location] = ()
) -> tuple[Client, str]:
    """Create an API client (an OAuth2 confidential application for the client-credentials
    grant); returns it with its secret, which is stored hashed and cannot be read again.
    Raises ValueError for an unknown scope."""
    unknown = set(scopes) - set(Scope.values)
    if unknown:
        raise ValueError(f"Unknown scopes: {', '.join(sorted(unknown))}.")
    secret = generate_client_secret()
    application = Application(
        name=name,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
    )
    application.full_clean()
    application.save()
    client = Client.objects.create(application=application, scopes=list(dict.fromkeys(scopes)))
    client.locations.set(locations)
    return client, secret


@transaction.atomic
def client_driver_create(
    *,
    client: Client,
    name: str,
    email: str = "",
    phone: str = "",
    license_plate: str = "",
    tokens: Sequence[TokenData] = (),
) -> Driver:
    """Create a driver on behalf of a client, which may then see them.
    Raises django ValidationError."""
    driver = driver_create(
        name=name, email=email, phone=phone, license_plate=license_plate, tokens=tokens
    )
    ClientDriver.objects.create(client=client, driver=driver)
    return driver


@dataclass(frozen=True)
class CreateData:
    location: Location
    start: datetime
    end: datetime
    driver: Driver | None = None
    evse: EVSE | None = None
    connector_id: str | None = None
    criteria: Criteria = field(default_factory=Criteria)
    tokens: tuple[TokenData, ...] = ()


@dataclass(frozen=True)
class UpdateData:
    booking: Booking
    start: datetime | None = None
    end: datetime | None = None
    evse: EVSE | None = None


@dataclass(frozen=True)
class CancelData:
    booking: Booking
    reason: str = CanceledReason.UNKNOWN


def _apply(client: Client, data: CreateData | UpdateData | CancelData, now: datetime) -> Booking:
    actor = Actor.api_client(client.label)
    if isinstance(data, CreateData):
        evse = data.evse or evse_assign(
            location=data.location, start=data.start, end=data.end, now=now,
            criteria=data.criteria,
        )  # fmt: skip
        return booking_create(
            evse=evse, start=data.start, end=data.end, actor=actor, driver=data.driver,
            tokens=data.tokens, connector_id=data.connector_id, now=now,
        )  # fmt: skip
    if isinstance(data, UpdateData):
        return booking_change(
            booking=data.booking, actor=actor, start=data.start, end=data.end, evse=data.evse,
            now=now,
        )  # fmt: skip
    return booking_cancel(booking=data.booking, actor=actor, reason=data.reason, now=now)


REQUEST_TYPES = {
    CreateData: BookingRequest.Type.CREATE,
    UpdateData: BookingRequest.Type.UPDATE,
    CancelData: BookingRequest.Type.CANCEL,
}


@transaction.atomic
def booking_request_submit(
    *,
    client: Client,
    data: CreateData | UpdateData | CancelData,
    payload: Mapping[str, Any],
    external_id: str = "",
    now: datetime | None = None,
) -> tuple[BookingRequest, bool]:
    """Decide a client's booking request at once and record it: approved with its booking, or
    rejected with the refusal's code and sentence. Returns the request and whether it is new:
    the same external id from the same client returns the request it names.

    Raises RequestConflict (that external id names a different request), Busy.
    """
    now = now or timezone.now()
    payload = dict(payload)
    if external_id:
        # The OCPI path's request-id lock (bookings.services.lock_request_id uses the same
        # helper): concurrent requests with one external id take turns, the first decides.
        advisory_lock(f"api-request:{client.pk}:{external_id}")
        existing = BookingRequest.objects.filter(client=client, external_id=external_id).first()
        if existing is not None:
            if existing.payload != payload:
                raise exc.RequestConflict(
                    f"The external id {external_id!r} was used for a different request."
                )
            return existing, False
    request = BookingRequest(
        client=client,
        type=REQUEST_TYPES[type(data)],
        external_id=external_id,
        payload=payload,
        created_at=now,
        decided_at=now,
    )
    if isinstance(data, CreateData):
        request.location, request.evse, request.driver = data.location, data.evse, data.driver
        request.start_at, request.end_at = data.start, data.end
    else:
        request.booking = data.booking
        request.location, request.driver = data.booking.location, data.booking.driver
        request.evse = getattr(data, "evse", None)
        request.start_at = getattr(data, "start", None)
        request.end_at = getattr(data, "end", None)
    try:
        booking = _apply(client, data, now)
    except exc.Busy:
        raise
    except exc.BookingError as refusal:
        request.status = BookingRequest.Status.REJECTED
        request.reason_code = refusal.code
        request.reason = refusal.message[:255]
    else:
        request.status = BookingRequest.Status.APPROVED
        request.booking = booking
    request.save()
    return request, True


def webhook_subscribe(
    *, client: Client, url: str, events: Sequence[str] = ()
) -> WebhookSubscription:
    """Register a URL for the client's booking events, with a new signing secret."""
    return WebhookSubscription.objects.create(
        client=client, url=url, events=list(dict.fromkeys(events)), secret=new_secret()
    )


def webhook_unsubscribe(*, subscription: WebhookSubscription) -> None:
    """Stop sending to it; its deliveries stay visible in the admin."""
    subscription.active = False
    subscription.save(update_fields=["active"])
