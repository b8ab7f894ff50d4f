"""Read paths of the booking engine: availability over a window, booking lists and lookups.

Availability runs a fixed number of queries per call whatever the EVSE count: the location (with
hours and policy), its EVSEs (with connectors, charge point, policy overrides), and the blocking
bookings of all those EVSEs overlapping the window, served by the exclusion constraint's GiST
index. Its cost grows with the bookings in the window, not with the table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Prefetch, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from locations.models import EVSE, UNBOOKABLE_EVSE_STATUSES, EVSEStatus, ExceptionalPeriod, Location
from locations.selectors import connectors_match, evses_of_location, location_get, policy_for

from .availability import (
    MAX_WINDOW,
    UNFIT,
    Interval,
    OpeningHours,
    Rules,
    WeeklyPeriod,
    fragmentation_cost,
    free_intervals,
    opening_intervals,
)
from .exceptions import InvalidWindow, UnknownEVSE, UnknownLocation
from .models import Booking, BookingRequest, BookingToken, BookingTransition


@dataclass(frozen=True)
class Criteria:
    """Optional EVSE criteria (as operators' booking APIs offer them: evseCriteria)."""

    power_type: str | None = None  # "AC", "DC" or an OCPI PowerType
    standards: tuple[str, ...] = ()
    min_power_kw: float | None = None
    max_power_kw: float | None = None

    def matches(self, evse: EVSE) -> bool:
        if not (self.power_type or self.standards or self.min_power_kw or self.max_power_kw):
            return True
        return connectors_match(
            evse.connectors.all(),
            power_type=self.power_type,
            standards=self.standards,
            min_power_kw=self.min_power_kw,
            max_power_kw=self.max_power_kw,
        )


@dataclass
class EVSEAvailability:
    evse: EVSE
    free: list[Interval]
    bookable: bool
    offline: bool
    rules: Rules
    reason: str = ""
    busy: list[Booking] = field(default_factory=list)


@dataclass
class LocationAvailability:
    location: Location
    window: Interval
    open_time: list[Interval]
    evses: list[EVSEAvailability]


def rules_for(policy) -> Rules:
    return Rules(
        step=timedelta(minutes=policy.slot_step_minutes),
        min_duration=timedelta(minutes=policy.min_duration_minutes),
        max_duration=timedelta(minutes=policy.max_duration_minutes),
        buffer=timedelta(minutes=policy.buffer_minutes),
        min_notice=timedelta(minutes=policy.min_notice_minutes),
        horizon=timedelta(days=policy.horizon_days),
    )


def opening_hours_of(location: Location) -> OpeningHours:
    """The location's opening hours as plain values (uses prefetched rows)."""
    openings, closings = [], []
    for p in location.exceptional_periods.all():
        iv = Interval(p.period_begin.astimezone(UTC), p.period_end.astimezone(UTC))
        (openings if p.kind == ExceptionalPeriod.Kind.OPENING else closings).append(iv)
    return OpeningHours(
        twentyfourseven=location.twentyfourseven,
        regular=tuple(
            WeeklyPeriod(h.weekday, h.period_begin, h.period_end)
            for h in location.regular_hours.all()
        ),
        exceptional_openings=tuple(openings),
        exceptional_closings=tuple(closings),
    )


def validate_window(start: datetime, end: datetime) -> Interval:
    """Raises InvalidWindow for naive datetimes, an end not after the start, or over 7 days."""
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise InvalidWindow("Give both the start and the end of the window as date and time.")
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise InvalidWindow("Times must carry a time zone (e.g. 2026-03-29T10:00:00Z).")
    # As instants: same-zone comparison and subtraction in Python go by the wall clock.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise InvalidWindow("The end of the window must be after its start.")
    if end - start > MAX_WINDOW:
        raise InvalidWindow("The window can be at most 7 days long.")
    return Interval(start, end)


def _resolve_location(location: Location | int | str) -> Location:
    if isinstance(location, Location):
        return location
    try:
        return location_get(location_id=location)
    except Location.DoesNotExist:
        raise UnknownLocation(f"There is no location {location!r}.") from None


def _resolve_ocpi_location(ocpi_id: str) -> Location:
    """The location by its OCPI id only (case-insensitive CiString). Raises UnknownLocation."""
    try:
        return (
            Location.objects.prefetch_related("regular_hours", "exceptional_periods")
            .select_related("booking_policy")
            .get(ocpi_id__iexact=ocpi_id)
        )
    except Location.DoesNotExist:
        raise UnknownLocation(f"There is no location {ocpi_id!r}.") from None


def blocking_bookings(*, evse_ids: list[int], window: Interval) -> QuerySet[Booking]:
    """Blocking bookings of these EVSEs whose blocked time meets the window: one indexed query."""
    qs = Booking.objects.blocking()
    # A one-element IN becomes `evse_id = <int4>`, which the GiST index cannot serve.
    qs = qs.of_evse(evse_ids[0]) if len(evse_ids) == 1 else qs.filter(evse_id__in=evse_ids)
    return (
        qs.filter(blocked_period__overlap=(window.start, window.end))
        .select_related("driver")
        .order_by("evse_id", "period")
    )


_STATUS_WORDS = {
    EVSEStatus.OUTOFORDER: "out of order",
    EVSEStatus.REMOVED: "removed",
    EVSEStatus.PLANNED: "not in service yet",
}


def evse_unbookable_reason(evse: EVSE) -> str:
    """Why the EVSE takes no bookings, in words for a person; empty when it does."""
    if not evse.booking_enabled:
        return "Booking is switched off for this EVSE."
    if evse.status in UNBOOKABLE_EVSE_STATUSES:
        return f"The EVSE is {_STATUS_WORDS.get(evse.status, evse.status.lower())}."
    return ""


def location_availability(
    *,
    location: Location | int | str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    evse: EVSE | str | None = None,
    criteria: Criteria | None = None,
    include_unbookable: bool = False,
    with_bookings: bool = False,
) -> LocationAvailability:
    """Free intervals per bookable EVSE of a location (or one EVSE) over a window of <= 7 days.

    Raises InvalidWindow, UnknownLocation, UnknownEVSE.
    """
    window = validate_window(start, end)
    now = now or timezone.now()
    location = _resolve_location(location)
    criteria = criteria or Criteria()
    evses = list(evses_of_location(location=location))
    if evse is not None:
        wanted = evse.uid if isinstance(evse, EVSE) else evse
        evses = [e for e in evses if e.uid == wanted]
        if not evses:
            raise UnknownEVSE(f"There is no EVSE {wanted!r} at {location.name}.")
    evses = [e for e in evses if criteria.matches(e)]
    hours = opening_hours_of(location)
    tz = location.zone
    open_time = opening_intervals(hours, window, tz)
    policies = {e.pk: policy_for(e, location) for e in evses}
    max_buffer = max((p.buffer_minutes for p in policies.values()), default=0)
    # Busy periods that start up to one buffer after the window still cut its end.
    query_window = Interval(window.start, window.end + timedelta(minutes=max_buffer))
    busy: dict[int, list[Booking]] = defaultdict(list)
    blocked: dict[int, list[Interval]] = defaultdict(list)
    if evses and with_bookings:
        for b in blocking_bookings(evse_ids=[e.pk for e in evses], window=query_window):
            busy[b.evse_id].append(b)
            blocked[b.evse_id].append(Interval(b.blocked_period.lower, b.blocked_period.upper))
    elif evses:
        # Plain timestamps, not model instances: this is the hot path of every availability
        # call. A whole location is one scan of booking_location_blocking_gist.
        rows = Booking.objects.blocking().overlapping((query_window.start, query_window.end))
        rows = rows.of_location(location.pk) if evse is None else rows.of_evse(evses[0].pk)
        # Epoch seconds as float8 load in C; Django's timestamptz loader parses in Python.
        rows = rows.annotate(
            lower_s=RawSQL("extract(epoch from lower(blocked_period))::float8", ()),
            upper_s=RawSQL("extract(epoch from upper(blocked_period))::float8", ()),
        )
        for evse_id, lower, upper in rows.values_list("evse_id", "lower_s", "upper_s"):
            blocked[evse_id].append(
                Interval(datetime.fromtimestamp(lower, UTC), datetime.fromtimestamp(upper, UTC))
            )
    result = []
    for e in evses:
        rules = rules_for(policies[e.pk])
        reason = evse_unbookable_reason(e)
        offline = not e.charge_point.is_connected
        if reason and not include_unbookable:
            continue
        free = (
            []
            if reason
            else free_intervals(
                window=window,
                open_time=open_time,
                busy=blocked[e.pk],
                rules=rules,
                tz=tz,
                now=now,
            )
        )
        result.append(
            EVSEAvailability(
                evse=e,
                free=free,
                bookable=not reason,
                offline=offline,
                rules=rules,
                reason=reason,
                busy=busy[e.pk] if with_bookings else [],
            )
        )
    return LocationAvailability(location=location, window=window, open_time=open_time, evses=result)


def evse_choose(
    *,
    location: Location | int | str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    criteria: Criteria | None = None,
    exclude_booking: Booking | None = None,
) -> EVSE | None:
    """The EVSE to give a [start, end) booking: it fits, and it leaves the least fragmented
    free time (ties: EVSE display order). None when nothing fits."""
    slot = Interval(start.astimezone(UTC), end.astimezone(UTC))
    day = Interval(slot.start - timedelta(hours=24), slot.end + timedelta(hours=24))
    avail = location_availability(
        location=location, start=day.start, end=day.end, now=now, criteria=criteria
    )
    best = None
    for i, ea in enumerate(avail.evses):
        free = ea.free
        if exclude_booking is not None and ea.evse.pk == exclude_booking.evse_id:
            continue  # a moved booking is placed by the caller, which knows its own slot
        cost = fragmentation_cost(slot, free, ea.rules)
        if cost == UNFIT:
            continue
        key = (cost, i)
        if best is None or key < best[0]:
            best = (key, ea.evse)
    return best[1] if best else None


def booking_get(*, uid: str) -> Booking:
    """Raises Booking.DoesNotExist (also for a malformed id)."""
    import uuid

    try:
        uuid.UUID(str(uid))
    except ValueError:
        raise Booking.DoesNotExist from None
    return booking_detail_queryset().get(uid=uid)


def booking_detail_queryset() -> QuerySet[Booking]:
    """Bookings with everything an OCPI Booking object or the detail panel shows."""
    return Booking.objects.select_related(
        "evse__charge_point__location", "connector", "driver", "created_by", "canceled_by"
    ).prefetch_related(
        Prefetch("tokens", queryset=BookingToken.objects.order_by("id")),
        Prefetch("requests", queryset=BookingRequest.objects.order_by("received_at", "id")),
    )


def booking_list(
    *,
    country_code: str | None = None,
    party_id: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> QuerySet[Booking]:
    """Bookings, optionally of one eMSP, by last_updated in [date_from, date_to), stably ordered."""
    qs = booking_detail_queryset()
    if country_code is not None and party_id is not None:
        qs = qs.for_party(country_code, party_id)
    if date_from is not None:
        qs = qs.filter(last_updated__gte=date_from)
    if date_to is not None:
        qs = qs.filter(last_updated__lt=date_to)
    return qs.order_by("last_updated", "id")


def booking_transitions(*, booking: Booking) -> QuerySet[BookingTransition]:
    return booking.transitions.select_related("actor_user").order_by("at", "id")
