"""Read paths of the OCPI app: locations as OCPI shows them, BookingLocations with calendars
computed by the availability engine, parties to push to. Domain reads go through the domain
apps' selectors."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, F, Max, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from bookings.availability import MAX_WINDOW, Interval, clip, local_day_window
from bookings.models import Booking
from bookings.selectors import location_availability
from locations.models import EVSE, UNBOOKABLE_EVSE_STATUSES, Connector, Location
from locations.selectors import evses_of_location, location_get, policy_for

from .models import Party, Token


def published_locations() -> QuerySet[Location]:
    """Published locations with last_updated covering their EVSEs and connectors (OCPI rule)."""
    return (
        Location.objects.published()
        .annotate(
            ocpi_last_updated=Greatest(
                "last_updated",
                Coalesce(Max("charge_points__evses__last_updated"), "last_updated"),
                Coalesce(Max("charge_points__evses__connectors__last_updated"), "last_updated"),
            )
        )
        .prefetch_related(
            "regular_hours",
            "exceptional_periods",
            Prefetch(
                "charge_points__evses",
                queryset=EVSE.objects.prefetch_related(
                    Prefetch("connectors", queryset=Connector.objects.order_by("id"))
                ).order_by("ocpp_evse_id", "id"),
            ),
        )
        .order_by("ocpi_last_updated", "id")
    )


def published_location_get(*, location_id: str) -> Location:
    """Raises Location.DoesNotExist (also for unpublished ones)."""
    return published_locations().get(ocpi_id__iexact=location_id)


def published_location_exists(*, location_id: str) -> bool:
    """Whether a published location has this OCPI id (case-insensitive CiString)."""
    # Runs on every BookingRequest POST: constant SQL, as compiling the ORM's EXISTS cost ~1 ms.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM locations_location WHERE publish AND UPPER(ocpi_id::text) = UPPER(%s)"
            " LIMIT 1",
            [location_id],
        )
        return cursor.fetchone() is not None


def bookable_evses() -> QuerySet[EVSE]:
    """EVSEs offered as BookingLocations: bookable, at published locations, in a stable order,
    with `bl_location_id` and the time of the last change to anything their calendar depends on
    (`bl_last_updated`: EVSE, location, policy, bookings).

    Only keys are loaded: booking_locations() takes the EVSEs themselves, with their charge
    point, policy and connectors, from the availability computation of their location.
    """
    last_booking = (
        Booking.objects.filter(evse=OuterRef("pk"))
        .order_by("-last_updated")
        .values("last_updated")[:1]
    )
    return (
        EVSE.objects.filter(charge_point__location__publish=True, booking_enabled=True)
        .exclude(status__in=UNBOOKABLE_EVSE_STATUSES)
        .only("id", "uid", "charge_point_id")
        .annotate(
            bl_location_id=F("charge_point__location_id"),
            bl_last_updated=Greatest(
                "last_updated",
                "charge_point__location__last_updated",
                Coalesce("booking_policy__last_updated", "last_updated"),
                Coalesce("charge_point__location__booking_policy__last_updated", "last_updated"),
                Coalesce(Subquery(last_booking, output_field=DateTimeField()), "last_updated"),
            ),
        )
        .order_by("charge_point__location_id", "charge_point__identity", "ocpp_evse_id", "id")
    )


@dataclass
class CalendarData:
    id: str
    begin_from: datetime
    end_before: datetime
    step_minutes: int
    slots: list[Interval]
    max_power: int | None
    last_updated: datetime


@dataclass
class BookingLocationData:
    evse: EVSE
    location: Location
    policy: object
    calendars: list[CalendarData]
    last_updated: datetime


def calendar_window(
    timeslot_from: datetime | None, timeslot_to: datetime | None, now: datetime
) -> Interval:
    """The published horizon: [from, to) capped at the engine's 7-day maximum."""
    start = timeslot_from or now
    end = timeslot_to or start + MAX_WINDOW
    end = min(end, start + MAX_WINDOW)
    return Interval(start.astimezone(UTC), end.astimezone(UTC))


def booking_locations(
    *, evses: list[EVSE], window: Interval, now: datetime | None = None
) -> list[BookingLocationData]:
    """BookingLocations (one per EVSE of `bookable_evses()`) with one Calendar per local day of
    the window.

    One availability computation per location, whatever the number of EVSEs; it also loads the
    EVSEs with everything a BookingLocation shows. An EVSE gone meanwhile is left out.
    """
    now = now or timezone.now()
    by_location: dict[int, list[EVSE]] = defaultdict(list)
    for evse in evses:
        by_location[evse.bl_location_id].append(evse)
    result: dict[int, BookingLocationData] = {}
    for location_id, evse_list in by_location.items():
        free: dict[int, list[Interval]] = {}
        if window.end > window.start:
            avail = location_availability(
                location=location_id, start=window.start, end=window.end, now=now,
                include_unbookable=True,
            )  # fmt: skip
            location = avail.location
            loaded = {ea.evse.pk: ea.evse for ea in avail.evses}
            free = {ea.evse.pk: ea.free for ea in avail.evses}
        else:
            location = location_get(location_id=location_id)
            loaded = {e.pk: e for e in evses_of_location(location=location)}
        tz = location.zone
        # The local days of the window, once per location (a DST day is 23 or 25 hours).
        days = []
        day = window.start.astimezone(tz).date()
        while window.end > window.start:
            span = local_day_window(day, tz)
            part = Interval(max(span.start, window.start), min(span.end, window.end))
            if part.start >= window.end:
                break
            days.append((day.isoformat(), part))
            day += timedelta(days=1)
        for key in evse_list:
            evse = loaded.get(key.pk)
            if evse is None:
                continue
            policy = policy_for(evse, location)
            powers = [c.power_watts for c in evse.connectors.all()]
            calendars = []
            evse_free = free.get(evse.pk, [])
            for day_id, part in days:
                slots = clip(evse_free, part)
                if slots:
                    calendars.append(
                        CalendarData(
                            id=day_id,
                            begin_from=part.start,
                            end_before=part.end,
                            step_minutes=policy.slot_step_minutes,
                            slots=slots,
                            max_power=max(powers) if powers else None,
                            last_updated=key.bl_last_updated,
                        )
                    )
            result[evse.pk] = BookingLocationData(
                evse=evse,
                location=location,
                policy=policy,
                calendars=calendars,
                last_updated=key.bl_last_updated,
            )
    return [result[e.pk] for e in evses if e.pk in result]


def booking_location_get(*, booking_location_id: str) -> EVSE:
    """The bookable EVSE behind a BookingLocation id. Raises EVSE.DoesNotExist."""
    return bookable_evses().get(uid__iexact=booking_location_id)


def parties_to_push() -> QuerySet[Party]:
    return Party.objects.filter(state=Party.State.REGISTERED).exclude(token_b="")


def token_get(*, party: Party, country_code: str, party_id: str, uid: str, type: str) -> Token:
    """Raises Token.DoesNotExist."""
    return Token.objects.get(
        owner=party,
        country_code__iexact=country_code,
        party_id__iexact=party_id,
        uid__iexact=uid,
        type=type,
    )
