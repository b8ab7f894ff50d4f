"""Read paths of the booking engine: availability over a window, booking lists and lookups.

Availability runs a fixed number of queries per call whatever the EVSE count: the location (with
hours and policy), its EVSEs (with connectors, charge point, policy overrides), and the blocking
bookings of all those EVSEs overlapping the window, served by the exclusion constraint's GiST
index. Its cost grows with the bookings in the window, not with the table.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache

from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Lower, Replace
from django.utils import timezone

from locations.models import (
    EVSE,
    UNBOOKABLE_EVSE_STATUSES,
    ChargePoint,
    ConnectorStandard,
    EVSEStatus,
    ExceptionalPeriod,
    Location,
)
from locations.selectors import (
    connectors_match,
    evses_of_location,
    location_get,
    location_get_ci,
    location_list,
    policy_for,
)

from .availability import (
    MAX_WINDOW,
    UNFIT,
    FreeTime,
    Interval,
    OpeningHours,
    Rules,
    WeeklyPeriod,
    clip,
    fits,
    fragmentation_cost,
    free_intervals,
    free_time,
    from_us,
    grid_ceil,
    local_day_window,
    local_midnight,
    on_grid,
    opening_intervals,
    session_busy,
    shown_window,
    subtract,
    to_us,
    zone_label,
)
from .exceptions import (
    BookingError,
    InvalidWindow,
    MisalignedSlot,
    NotBookable,
    OutsideOpeningHours,
    SlotUnavailable,
    TooLong,
    TooShort,
    UnknownEVSE,
    UnknownLocation,
)
from .models import (
    BLOCKING_STATUSES,
    BLOCKING_STATUSES_SQL,
    ENDED_STATUSES,
    ENDED_STATUSES_SQL,
    OPEN_STATUSES,
    REBOOK_CODE,
    Booking,
    BookingRequest,
    BookingToken,
    BookingTransition,
    Driver,
    DriverToken,
    Status,
)


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
            evse.connector_list(),
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
    session: RunningSession | None = None  # the charging session running on it now


@dataclass
class LocationAvailability:
    location: Location
    window: Interval
    open_time: list[Interval]
    evses: list[EVSEAvailability]


def rules_for(policy) -> Rules:
    return _rules(
        policy.slot_step_minutes,
        policy.min_duration_minutes,
        policy.max_duration_minutes,
        policy.buffer_minutes,
        policy.min_notice_minutes,
        policy.horizon_days,
    )


@lru_cache(maxsize=1024)
def _rules(
    step: int, min_duration: int, max_duration: int, buffer: int, min_notice: int, horizon: int
) -> Rules:
    # Rules is immutable, and a site has a handful of distinct policies: one instance each.
    return Rules(
        step=timedelta(minutes=step),
        min_duration=timedelta(minutes=min_duration),
        max_duration=timedelta(minutes=max_duration),
        buffer=timedelta(minutes=buffer),
        min_notice=timedelta(minutes=min_notice),
        horizon=timedelta(days=horizon),
    )


def opening_hours_of(location: Location) -> OpeningHours:
    """The location's opening hours as plain values (uses prefetched rows where loaded)."""
    return _opening_hours(
        location,
        exceptional=((p.kind, p.period_begin, p.period_end)
                     for p in location.exceptional_periods.all()),
        regular=(
            () if location.twentyfourseven  # open around the clock: the weekly hours do not apply
            else ((h.weekday, h.period_begin, h.period_end) for h in location.regular_hours.all())
        ),
    )  # fmt: skip


# One of the hot reads (every booking of a named EVSE and every change asks it): explicit SQL
# returning plain values, in the order of the models' Meta ordering
# (docs/adr/0003-prepared-statements-and-hot-reads.md).
_EXCEPTIONAL_PERIODS_SQL = (
    "SELECT kind, period_begin, period_end FROM locations_exceptionalperiod"
    " WHERE location_id = %s ORDER BY period_begin"
)
_REGULAR_HOURS_SQL = (
    "SELECT weekday, period_begin, period_end FROM locations_regularhours"
    " WHERE location_id = %s ORDER BY weekday, period_begin"
)


def opening_hours_read(location: Location) -> OpeningHours:
    """opening_hours_of, read with one small statement (two for a location not open around the
    clock) instead of through the related managers, for a location loaded without its hours."""
    with connection.cursor() as cursor:
        cursor.execute(_EXCEPTIONAL_PERIODS_SQL, [location.pk])
        exceptional = cursor.fetchall()
        regular = []
        if not location.twentyfourseven:
            cursor.execute(_REGULAR_HOURS_SQL, [location.pk])
            regular = cursor.fetchall()
    return _opening_hours(location, exceptional=exceptional, regular=regular)


def _opening_hours(
    location: Location,
    *,
    exceptional: Iterable[tuple[str, datetime, datetime]],
    regular: Iterable[tuple[int, time, time]],
) -> OpeningHours:
    openings, closings = [], []
    for kind, begin, end in exceptional:
        iv = Interval(begin.astimezone(UTC), end.astimezone(UTC))
        (openings if kind == ExceptionalPeriod.Kind.OPENING else closings).append(iv)
    return OpeningHours(
        twentyfourseven=location.twentyfourseven,
        regular=tuple(WeeklyPeriod(weekday, begin, end) for weekday, begin, end in regular),
        exceptional_openings=tuple(openings),
        exceptional_closings=tuple(closings),
    )


def validate_window(start: datetime, end: datetime, *, limit: timedelta = MAX_WINDOW) -> Interval:
    """Raises InvalidWindow for naive datetimes, an end not after the start, or over 7 days
    (`limit`: the desk's seven local days, which are an hour longer over a fall-back night)."""
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise InvalidWindow("Give both the start and the end of the window as date and time.")
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise InvalidWindow("Times must carry a time zone (e.g. 2026-03-29T10:00:00Z).")
    # As instants: same-zone comparison and subtraction in Python go by the wall clock.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise InvalidWindow("The end of the window must be after its start.")
    if end - start > limit:
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
        return location_get_ci(ocpi_id=ocpi_id)
    except Location.DoesNotExist:
        raise UnknownLocation(f"There is no location {ocpi_id!r}.") from None


# One of the hot reads (every availability call and every booking asks it): explicit SQL that
# returns plain values, served by chargingsession_running_idx
# (docs/adr/0003-prepared-statements-and-hot-reads.md).
# The earliest session still running on each EVSE, with its meter: one row per EVSE.
_RUNNING_SESSIONS_SQL = (
    "SELECT DISTINCT ON (evse_id) evse_id, started_at, meter_start_wh, meter_last_wh "
    "FROM chargers_chargingsession WHERE stopped_at IS NULL AND evse_id = ANY(%s) "
    "ORDER BY evse_id, started_at"
)


@dataclass(frozen=True, slots=True)
class RunningSession:
    started_at: datetime
    energy_wh: Decimal | None  # so far, from the latest meter value (None: no reading yet)


def running_sessions(*, evse_ids: Sequence[int]) -> dict[int, RunningSession]:
    """The charging session still running on each of these EVSEs (EVSEs with none are left out):
    such an EVSE is busy now (availability.session_busy), and staff see its energy so far."""
    with connection.cursor() as cursor:
        cursor.execute(_RUNNING_SESSIONS_SQL, [list(evse_ids)])
        rows = cursor.fetchall()
    return {
        evse_id: RunningSession(
            started_at,
            None if start is None or last is None else max(last - start, Decimal(0)),
        )
        for evse_id, started_at, start, last in rows
    }


@dataclass(frozen=True, slots=True)
class SessionSummary:
    started_at: datetime
    stopped_at: datetime | None
    energy_wh: Decimal | None
    charge_point: str


def booking_sessions(*, booking: Booking) -> list[SessionSummary]:
    """The charging sessions that redeemed a booking, oldest first, with their energy."""
    from chargers.models import ChargingSession

    return [
        SessionSummary(s.started_at, s.stopped_at, s.energy_wh, s.charge_point.identity)
        for s in ChargingSession.objects.filter(booking_id=booking.pk)
        .select_related("charge_point")
        .order_by("started_at")
    ]


def running_session_starts(*, evse_ids: Sequence[int]) -> dict[int, datetime]:
    """When the charging session still running on each of these EVSEs began."""
    return {k: v.started_at for k, v in running_sessions(evse_ids=evse_ids).items()}


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


# Blocked time as integer epoch microseconds (exact), what FreeTime.of_us works in: no
# timestamps to parse or build. blocked_from_us/blocked_until_us are the bounds, stored by
# PostgreSQL (migration 0010): computing them here was two thirds of this query's time.
_BLOCKED_SQL = (
    "SELECT evse_id, blocked_from_us, blocked_until_us FROM bookings_booking "
    f"WHERE status IN ({BLOCKING_STATUSES_SQL}) "
    # bigint: an int4 parameter stops the GiST index serving the equality (see models.bigint).
    "AND {key} = %s::bigint AND blocked_period && tstzrange(%s, %s, '[)')"
)

# The slots as epoch microseconds too, like _BLOCKED_SQL: cheaper than parsing timestamps.
_BLOCKS_SQL = (
    "SELECT b.uid, b.evse_id, (extract(epoch FROM lower(b.period)) * 1000000)::bigint, "
    "(extract(epoch FROM upper(b.period)) * 1000000)::bigint, b.status, b.charger_reservation, "
    "b.needs_attention, d.name, b.emsp_country_code, b.emsp_party_id, b.channel "
    "FROM bookings_booking b LEFT JOIN bookings_driver d ON d.id = b.driver_id "
    # One arm per partial GiST index (PostgreSQL ORs the two bitmap scans).
    f"WHERE (b.status IN ({BLOCKING_STATUSES_SQL}) AND b.location_id = %(location)s::bigint "
    "AND b.blocked_period && tstzrange(%(start)s, %(end)s, '[)') "
    "AND b.period && tstzrange(%(start)s, %(end)s, '[)')) "
    f"OR (b.status IN ({ENDED_STATUSES_SQL}) AND b.location_id = %(location)s::bigint "
    "AND b.period && tstzrange(%(start)s, %(end)s, '[)')) "
    # Ended bookings first: drawn first, an active booking in the same time lies over them.
    f"ORDER BY b.evse_id, b.status IN ({ENDED_STATUSES_SQL}) DESC, b.period"
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


def local_moment(moment: datetime, location: Location) -> str:
    """A moment on the location's clock as messages give it: "Sat 05 Dec 14:00"."""
    return moment.astimezone(location.zone).strftime("%a %d %b %H:%M")


def slot_refusal(
    *,
    evse: EVSE,
    start: datetime,
    end: datetime,
    location: Location,
    rules: Rules,
    hours: OpeningHours | None = None,
) -> BookingError | None:
    """The first rule that the slot [start, end) on evse breaks whenever it is asked, or None:
    the policy's shortest and longest booking, the slot grid, a bookable EVSE, and the location
    open throughout. (Notice, horizon and the past depend on when a booking is made, overlaps
    are the database's.) check_slot raises it for every new or changed booking;
    bookings_outside_rules reports it for the bookings made before a rule changed.
    `hours` saves reading the location's opening hours for each slot of a list."""
    tz = location.zone
    duration = end - start
    if duration < rules.min_duration:
        return TooShort(f"A booking here lasts at least {_minutes(rules.min_duration)} minutes.")
    if duration > rules.max_duration:
        return TooLong(f"A booking here lasts at most {_minutes(rules.max_duration)} minutes.")
    if not (on_grid(start, rules.step, tz) and on_grid(end, rules.step, tz)):
        return MisalignedSlot(
            f"Bookings start and end on the {_minutes(rules.step)}-minute grid "
            f"(e.g. {local_moment(grid_ceil(start, rules.step, tz), location)})."
        )
    reason = evse_unbookable_reason(evse)
    if reason:
        return NotBookable(reason)
    slot = Interval(start, end)
    if hours is None:
        hours = opening_hours_of(location)
    if opening_intervals(hours, slot, tz) != [slot]:
        return OutsideOpeningHours(
            f"{location.name} is closed for part of {local_moment(start, location)}–"
            f"{end.astimezone(tz):%H:%M}."
        )
    return None


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def blocked_time(start: datetime, end: datetime, rules: Rules) -> Interval:
    """What a booking of [start, end) keeps from every other booking of its EVSE: its slot and
    the policy's buffer after it (a booking's blocked_period, which the no-overlap rule guards).
    """
    return Interval(start, end + rules.buffer)


def buffer_refusal(
    *,
    evse: EVSE,
    start: datetime,
    end: datetime,
    location: Location,
    rules: Rules,
    later: Iterable[Interval],
) -> SlotUnavailable | None:
    """Whether an existing booking's blocked time, with the buffer as it stands now, meets one
    of the bookings after it on its EVSE (`later`: their blocked times, by start): a buffer
    made longer after they were booked back to back."""
    blocked = blocked_time(start, end, rules)
    for theirs in later:
        if theirs.start >= blocked.end:
            return None
        if blocked.overlaps(theirs):
            return slot_taken(evse, start, location, _minutes(rules.buffer))
    return None


def slot_taken(
    evse: EVSE, start: datetime, location: Location, buffer_minutes: int
) -> SlotUnavailable:
    """The refusal of a slot whose blocked time meets another booking's."""
    buffer = (
        f" (with {buffer_minutes} minutes kept free between bookings)." if buffer_minutes else "."
    )
    return SlotUnavailable(
        f"{evse} is already booked around {local_moment(start, location)}{buffer}"
    )


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
    window_limit: timedelta = MAX_WINDOW,
) -> LocationAvailability:
    """Free intervals per bookable EVSE of a location (or one EVSE) over a window of <= 7 days.

    Raises InvalidWindow, UnknownLocation, UnknownEVSE.
    """
    window = validate_window(start, end, limit=window_limit)
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
    blocked: dict[int, list[tuple[int, int]]] = defaultdict(list)
    if evses and with_bookings:
        for b in blocking_bookings(evse_ids=[e.pk for e in evses], window=query_window):
            busy[b.evse_id].append(b)
            blocked[b.evse_id].append(
                (to_us(b.blocked_period.lower), to_us(b.blocked_period.upper))
            )
    elif evses:
        # Plain numbers, not model instances, from constant SQL: this is the hot path of
        # every availability call, and the ORM would spend longer compiling the query than
        # PostgreSQL spends answering it. A whole location is one scan of
        # booking_location_blocking_gist (the status list matches its predicate).
        key, pk = ("location_id", location.pk) if evse is None else ("evse_id", evses[0].pk)
        with connection.cursor() as cursor:
            cursor.execute(_BLOCKED_SQL.format(key=key), [pk, query_window.start, query_window.end])
            for evse_id, lower, upper in cursor.fetchall():
                blocked[evse_id].append((lower, upper))
    charging = running_sessions(evse_ids=[e.pk for e in evses]) if evses else {}
    result = []
    free_time_of: dict[Rules, FreeTime] = {}
    for e in evses:
        rules = rules_for(policies[e.pk])
        reason = evse_unbookable_reason(e)
        offline = not e.charge_point.is_connected
        if reason and not include_unbookable:
            continue
        if reason:
            free = []
        else:
            if rules not in free_time_of:
                free_time_of[rules] = free_time(
                    window=window, open_time=open_time, rules=rules, tz=tz, now=now
                )
            busy_us = blocked[e.pk]
            if e.pk in charging:
                session = session_busy(charging[e.pk].started_at, now=now, rules=rules, tz=tz)
                busy_us = [*busy_us, (to_us(session.start), to_us(session.end))]
            free = free_time_of[rules].of_us(busy_us)
        result.append(
            EVSEAvailability(
                evse=e,
                free=free,
                bookable=not reason,
                offline=offline,
                rules=rules,
                reason=reason,
                busy=busy[e.pk] if with_bookings else [],
                session=charging.get(e.pk),
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
    exclude_evses: Collection[int] = (),
) -> EVSE | None:
    """The EVSE to give a [start, end) booking: it fits, and it leaves the least fragmented
    free time (ties: EVSE display order); never one of `exclude_evses`. None when nothing
    fits."""
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
        if ea.evse.pk in exclude_evses:
            continue
        cost = fragmentation_cost(slot, free, ea.rules)
        if cost == UNFIT:
            continue
        key = (cost, i)
        if best is None or key < best[0]:
            best = (key, ea.evse)
    return best[1] if best else None


@dataclass(frozen=True)
class SlotOffer:
    """A slot a booking would get now: an EVSE and an instant range."""

    evse: EVSE
    start: datetime
    end: datetime


def next_free_slots(
    *,
    location: Location | int | str,
    after: datetime,
    duration: timedelta,
    criteria: Criteria | None = None,
    evse: EVSE | str | None = None,
    now: datetime | None = None,
    limit: int = 1,
) -> list[SlotOffer]:
    """The earliest slot of `duration` (elapsed time) at or after `after` on each EVSE that
    matches, earliest first (ties: EVSE display order), within the 7 days from `after`. The
    free time of location_availability already holds every rule (opening hours, notice,
    buffers, the slot grid, the horizon); an EVSE whose policy does not allow the duration is
    left out.

    Raises UnknownLocation, UnknownEVSE.
    """
    now = now or timezone.now()
    start = max(after, now).astimezone(UTC)
    avail = location_availability(
        location=location, start=start, end=start + MAX_WINDOW, now=now, evse=evse,
        criteria=criteria,
    )  # fmt: skip
    found = []
    for i, ea in enumerate(avail.evses):
        if not ea.rules.min_duration <= duration <= ea.rules.max_duration:
            continue
        for iv in ea.free:  # on the slot grid, in time order
            if iv.start + duration <= iv.end:
                found.append((iv.start, i, SlotOffer(ea.evse, iv.start, iv.start + duration)))
                break
    found.sort(key=lambda f: (f[0], f[1]))
    return [offer for _, _, offer in found[:limit]]


def free_evses_at(
    *,
    location: Location | int | str,
    start: datetime,
    end: datetime,
    criteria: Criteria | None = None,
    now: datetime | None = None,
) -> list[EVSE]:
    """The EVSEs a [start, end) booking would fit on now, in display order.

    Raises InvalidWindow, UnknownLocation.
    """
    avail = location_availability(
        location=location, start=start, end=end, now=now, criteria=criteria
    )
    slot = Interval(start.astimezone(UTC), end.astimezone(UTC))
    return [
        ea.evse
        for ea in avail.evses
        if ea.rules.min_duration <= slot.duration <= ea.rules.max_duration and fits(slot, ea.free)
    ]


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


def booking_rebook_of(*, booking: Booking) -> Booking | None:
    """The cancelled booking whose cancel this booking undid (bookings.services.booking_rebook
    names it on the new booking's CREATED row), if any."""
    source = (
        BookingTransition.objects.filter(
            booking=booking, event=BookingTransition.Event.CREATED, code=REBOOK_CODE
        )
        .values_list("details__rebook_of", flat=True)
        .first()
    )
    return Booking.objects.filter(uid=source).first() if source else None


def booking_rebooked_as(*, booking: Booking) -> Booking | None:
    """The booking that undid this cancelled booking's cancel, if any. A re-booking has the same
    EVSE and period, so only those bookings' audit rows are read, never the whole trail."""
    if booking.status != Status.CANCELED or booking.evse_id is None:
        return None
    same_slot = Booking.objects.filter(evse_id=booking.evse_id, period=booking.period).exclude(
        pk=booking.pk
    )
    row = (
        BookingTransition.objects.filter(
            booking__in=same_slot,
            event=BookingTransition.Event.CREATED,
            code=REBOOK_CODE,
            details__rebook_of=str(booking.uid),
        )
        .select_related("booking")
        .first()
    )
    return row.booking if row else None


# An id gap younger than this may be a transaction still open: its lower id commits later.
AUDIT_GAP_WAIT = timedelta(seconds=30)


def audit_rows_after(
    *, last_id: int, now: datetime, limit: int
) -> tuple[list[BookingTransition], int]:
    """The audit rows past `last_id` in id order (with their bookings), for a reader of the
    audit trail as an outbox (OCPI pushes, API webhooks), and the id its cursor may advance to:
    up to the first gap younger than AUDIT_GAP_WAIT, so a row committed late is read next time.
    Rows past that id come again then; readers must be idempotent per row."""
    rows = list(
        BookingTransition.objects.filter(id__gt=last_id)
        .select_related("booking")
        .order_by("id")[:limit]
    )
    new_cursor = last_id
    # A fresh cursor has no gap to wait for: ids need not start at 1.
    expected = last_id + 1 if last_id else None
    for row in rows:
        if expected is not None and row.id != expected and row.at > now - AUDIT_GAP_WAIT:
            break
        new_cursor, expected = row.id, row.id + 1
    return rows, new_cursor


# --- Staff timeline (issue 6): the day and week views and the locations list ---


@dataclass(frozen=True)
class Segment:
    """A [start, end) span placed on a timeline: left and width in percent of its window."""

    start: datetime
    end: datetime
    left: float
    width: float


@dataclass(frozen=True)
class Tick:
    at: datetime
    left: float


# Readable EVSE states for staff (the OCPI values run words together).
EVSE_STATUS_LABELS = {
    **dict(EVSEStatus.choices),
    "OUTOFORDER": "Out of order",
    "INOPERATIVE": "Inoperative",
}
# Plain dict lookups: get_FOO_display() costs ~100 µs a call here, and a day view has 100.
STANDARD_LABELS = dict(ConnectorStandard.choices)


@dataclass
class TimelineRow:
    evse: EVSE
    bookable: bool
    offline: bool
    reason: str
    rules: Rules
    free: list[Segment]
    blocks: list[tuple[Block, Segment]]
    session: RunningSession | None = None

    @property
    def status_label(self) -> str:
        return EVSE_STATUS_LABELS.get(self.evse.status, self.evse.status)


@dataclass
class Timeline:
    location: Location
    window: Interval  # the local days asked for
    now: datetime
    rows: list[TimelineRow]
    closed: list[Segment]
    hours: list[Tick]
    days: list[Tick]
    now_left: float | None
    standards: list[tuple[str, str]]
    evse_total: int
    shown: Interval | None = None  # the part of the window placed on the axis (None: all of it)
    # Active bookings shown that the rules as they stand would refuse: uid -> why (issue 15).
    outside_rules: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def shown_hours(self) -> float:
        span = self.shown or self.window
        return span.duration.total_seconds() / 3600

    @property
    def all_shown(self) -> bool:
        return self.shown is None or self.shown == self.window


@dataclass(frozen=True)
class Block:
    """What a timeline shows of one booking (a slim row, not a model instance)."""

    uid: uuid.UUID
    evse_id: int
    start: datetime
    end: datetime
    status: str
    charger_reservation: str
    needs_attention: bool
    who: str  # the driver's name, else the eMSP party ("NL*EMS"), else ""
    channel: str = Booking.Channel.STAFF


def timeline_blocks(*, location: Location, window: Interval) -> dict[int, list[Block]]:
    """The blocking, cancelled and no-show bookings of a location whose slot meets the window,
    per EVSE id: one scan of each of the location's partial GiST indexes, loaded as plain values
    (a busy day has hundreds) with constant SQL (the ORM would spend longer compiling the query
    than PostgreSQL answering)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _BLOCKS_SQL, {"location": location.pk, "start": window.start, "end": window.end}
        )
        rows = cursor.fetchall()
    blocks: dict[int, list[Block]] = defaultdict(list)
    for uid, evse_id, lower, upper, status, charger, attention, name, cc, party, channel in rows:
        who = name or (f"{cc}*{party}" if party else "")
        blocks[evse_id].append(
            Block(
                uid,
                evse_id,
                from_us(lower),
                from_us(upper),
                status,
                charger,
                attention,
                who,
                channel,
            )
        )
    return blocks


_VERSION_SQL = (
    "SELECT concat_ws('|', "
    # Any booking entering, leaving or changing in the window moves its count or newest stamp.
    "(SELECT count(*) || '/' || coalesce(max(last_updated)::text, '') FROM bookings_booking "
    f"WHERE status IN ({BLOCKING_STATUSES_SQL}) AND location_id = %(location)s::bigint "
    "AND blocked_period && tstzrange(%(start)s, %(end)s, '[)')), "
    "(SELECT count(*) || '/' || coalesce(max(greatest(e.last_updated, cp.last_updated, "
    "p.last_updated))::text, '') FROM locations_evse e "
    "JOIN locations_chargepoint cp ON cp.id = e.charge_point_id "
    "LEFT JOIN locations_bookingpolicy p ON p.evse_id = e.id "
    "WHERE cp.location_id = %(location)s), "
    "(SELECT count(*) || '/' || coalesce(max(c.last_updated)::text, '') "
    "FROM locations_connector c JOIN locations_evse e ON e.id = c.evse_id "
    "JOIN locations_chargepoint cp ON cp.id = e.charge_point_id "
    "WHERE cp.location_id = %(location)s), "
    "(SELECT l.last_updated::text || '/' || coalesce(p.last_updated::text, '') "
    "FROM locations_location l LEFT JOIN locations_bookingpolicy p ON p.location_id = l.id "
    "WHERE l.id = %(location)s))"
)


def timeline_version(*, location: Location, window: Interval, now: datetime) -> str:
    """A fingerprint of what a location's timeline over the window shows: it changes when a
    booking in the window, an EVSE, charge point, connector, policy or the location itself
    changes (each of those stamps last_updated), and every minute (the now line, the notice
    period). One indexed query, so a poll that finds nothing new costs a fraction of a render.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _VERSION_SQL, {"location": location.pk, "start": window.start, "end": window.end}
        )
        state = cursor.fetchone()[0]
    minute = int(now.timestamp()) // 60
    return hashlib.blake2b(f"{state}|{minute}".encode(), digest_size=12).hexdigest()


def _place(start: datetime, end: datetime, window: Interval) -> Segment | None:
    start, end = max(start, window.start), min(end, window.end)
    if start >= end:
        return None
    total = window.duration.total_seconds()
    left = (start - window.start).total_seconds() / total * 100
    width = (end - start).total_seconds() / total * 100
    return Segment(start, end, round(left, 3), round(width, 3))


def day_timeline(
    *,
    location: Location | int | str,
    day: date,
    days: int = 1,
    criteria: Criteria | None = None,
    now: datetime | None = None,
    focus: bool = False,
) -> Timeline:
    """Every EVSE of a location over `days` local days from `day`: live state, free time,
    bookings and closed hours, placed on the window. With `focus`, one day is placed on its
    shown hours only (availability.shown_window: opening hours widened to every booking and to
    the next two hours). A fixed number of queries whatever the EVSE or booking count
    (location_availability's and timeline_blocks', nothing per row).

    Raises UnknownLocation, InvalidWindow (more than 7 days).
    """
    location = _resolve_location(location)
    now = now or timezone.now()
    criteria = criteria or Criteria()
    tz = location.zone
    if days > MAX_WINDOW.days:
        raise InvalidWindow("The window can be at most 7 days long.")
    window = local_day_window(day, tz, days=days)
    avail = location_availability(
        location=location,
        start=window.start,
        end=window.end,
        now=now,
        include_unbookable=True,
        # Seven local days: 169 hours over a fall-back night.
        window_limit=MAX_WINDOW + timedelta(hours=1),
    )
    by_evse = timeline_blocks(location=location, window=window)
    shown = window
    if focus and days == 1:
        spans = (Interval(b.start, b.end) for bs in by_evse.values() for b in bs)
        shown = shown_window(window=window, open_time=avail.open_time, busy=spans, now=now, tz=tz)
    standards: dict[str, str] = {}
    rows = []
    hours = opening_hours_of(location)
    outside: dict[uuid.UUID, str] = {}
    for ea in avail.evses:
        for c in ea.evse.connector_list():
            standards.setdefault(c.standard, STANDARD_LABELS.get(c.standard, c.standard))
        if not criteria.matches(ea.evse):
            continue
        blocks = []
        row_blocks = by_evse.get(ea.evse.pk, ())
        # The blocking ones by start: what a booking's buffer as it stands now may meet.
        holding = sorted((b for b in row_blocks if b.status in BLOCKING_STATUSES),
                         key=lambda b: b.start)  # fmt: skip
        place = {b.uid: i for i, b in enumerate(holding)}
        for b in row_blocks:
            seg = _place(b.start, b.end, shown)
            if seg is not None:
                blocks.append((b, seg))
                if b.status in OPEN_STATUSES and b.end > now:
                    refusal = standing_refusal(
                        evse=ea.evse, start=b.start, end=b.end, channel=b.channel,
                        location=location, rules=ea.rules, hours=hours,
                    )  # fmt: skip
                    if refusal is None and b.channel != Booking.Channel.COMMAND:
                        refusal = buffer_refusal(
                            evse=ea.evse, start=b.start, end=b.end, location=location,
                            rules=ea.rules,
                            later=(Interval(o.start, o.end) for o in holding[place[b.uid] + 1 :]),
                        )  # fmt: skip
                    if refusal is not None:
                        outside[b.uid] = refusal.message
        free = [s for iv in ea.free if (s := _place(iv.start, iv.end, shown)) is not None]
        rows.append(
            TimelineRow(
                evse=ea.evse,
                bookable=ea.bookable,
                offline=ea.offline,
                reason=ea.reason,
                rules=ea.rules,
                free=free,
                blocks=blocks,
                session=ea.session,
            )
        )
    closed = [
        s
        for iv in subtract([shown], avail.open_time)
        if (s := _place(iv.start, iv.end, shown)) is not None
    ]
    # Hour ticks run in UTC steps and are labelled in local time, so a DST day shows its real
    # 23 or 25 hours (02:00 is skipped or repeated) instead of a distorted axis.
    hours = []
    moment = shown.start
    while moment < shown.end:
        hours.append(Tick(moment, _place(moment, shown.end, shown).left))
        moment += timedelta(hours=1)
    day_ticks = [Tick(local_midnight(day + timedelta(days=i), tz), 0.0) for i in range(days)]
    day_ticks = [Tick(t.at, _place(t.at, window.end, window).left) for t in day_ticks]
    now_left = _place(now, shown.end, shown).left if shown.start <= now < shown.end else None
    return Timeline(
        location=location,
        window=window,
        now=now,
        rows=rows,
        closed=closed,
        hours=hours,
        days=day_ticks,
        now_left=now_left,
        standards=sorted(standards.items(), key=lambda kv: kv[1]),
        evse_total=len(avail.evses),
        shown=shown,
        outside_rules=outside,
    )


@dataclass(frozen=True)
class Capacity:
    """Bookable time left today at a location, summed over its bookable EVSEs."""

    free: timedelta
    open: timedelta
    evses_bookable: int
    evses_total: int

    @property
    def percent(self) -> int:
        if not self.open:
            return 0
        return round(self.free / self.open * 100)

    @property
    def free_hours(self) -> float:
        return round(self.free.total_seconds() / 3600, 1)


def location_capacities(
    *, locations: Sequence[Location], now: datetime | None = None
) -> dict[int, Capacity]:
    """Today's (in each location's own zone) free bookable time from now on, per location id.

    Three queries whatever the number of locations: their EVSEs, those EVSEs' connectors, and
    the blocking bookings of all of them over the span of all the locations' days. The
    locations need `regular_hours`, `exceptional_periods` and `booking_policy` loaded
    (location_list_for_staff does that).
    """
    now = now or timezone.now()
    if not locations:
        return {}
    windows = {}
    for loc in locations:
        windows[loc.pk] = local_day_window(now.astimezone(loc.zone).date(), loc.zone)
    evses = list(
        EVSE.objects.filter(charge_point__location__in=[loc.pk for loc in locations])
        .select_related("charge_point", "booking_policy")
        .order_by("id")
    )
    span = Interval(
        min(w.start for w in windows.values()),
        max(w.end for w in windows.values()) + timedelta(days=1),  # covers any buffer
    )
    busy: dict[int, list[Interval]] = defaultdict(list)
    if evses:
        ids = [e.pk for e in evses]
        # A one-element IN becomes `evse_id = <int4>`, which the GiST index cannot serve.
        rows = Booking.objects.blocking().filter(blocked_period__overlap=(span.start, span.end))
        rows = rows.of_evse(ids[0]) if len(ids) == 1 else rows.filter(evse_id__in=ids)
        for evse_id, blocked in rows.values_list("evse_id", "blocked_period"):
            busy[evse_id].append(Interval(blocked.lower, blocked.upper))
    charging = running_session_starts(evse_ids=[e.pk for e in evses]) if evses else {}
    by_location: dict[int, list[EVSE]] = defaultdict(list)
    for e in evses:
        by_location[e.charge_point.location_id].append(e)
    result = {}
    for loc in locations:
        window = windows[loc.pk]
        open_time = opening_intervals(opening_hours_of(loc), window, loc.zone)
        ahead = clip(open_time, Interval(max(window.start, now), window.end))
        free = open_total = timedelta(0)
        bookable = 0
        for e in by_location[loc.pk]:
            if evse_unbookable_reason(e):
                continue
            bookable += 1
            rules = rules_for(policy_for(e, loc))
            open_total += sum((iv.duration for iv in ahead), timedelta(0))
            evse_busy = busy[e.pk]
            if e.pk in charging:
                evse_busy = [
                    *evse_busy,
                    session_busy(charging[e.pk], now=now, rules=rules, tz=loc.zone),
                ]
            pieces = free_intervals(
                window=window, open_time=open_time, busy=evse_busy, rules=rules,
                tz=loc.zone, now=now,
            )  # fmt: skip
            free += sum((iv.duration for iv in pieces), timedelta(0))
        result[loc.pk] = Capacity(free, open_total, bookable, len(by_location[loc.pk]))
    return result


def location_list_for_staff(*, search: str = "") -> QuerySet[Location]:
    """Locations matching a name/city search, with what location_capacities needs loaded."""
    return location_list(search=search.strip()).with_rules()


def driver_search(*, q: str, limit: int = 8) -> list[Driver]:
    """Drivers whose name or email contains q, or who hold a token whose uid contains q."""
    q = q.strip()
    if len(q) < 2:
        return []
    ids = (
        Driver.objects.filter(
            Q(name__icontains=q) | Q(email__icontains=q) | Q(tokens__uid__icontains=q)
        )
        .values("id")
        .distinct()
    )
    return list(
        Driver.objects.filter(id__in=ids)
        .prefetch_related(Prefetch("tokens", queryset=DriverToken.objects.order_by("uid")))
        .order_by("name", "id")[:limit]
    )


def desk_day_bookings(*, location: Location, window: Interval) -> list[Booking]:
    """A location's bookings that meet the window (a local day), in time order, with their EVSE
    and driver: the desk's arrivals and departures. Blocking and ended ones (cancelled, no-show):
    the desk sees who came and who did not. One query."""
    span = (window.start, window.end)
    return list(
        Booking.objects.of_location(location.pk)
        # One arm per partial GiST index, as in timeline_blocks.
        .filter(
            Q(status__in=BLOCKING_STATUSES, blocked_period__overlap=span)
            | Q(status__in=ENDED_STATUSES),
            period__overlap=span,
        )
        .select_related("driver", "evse__charge_point", "created_by")
        .order_by("period", "id")
    )


SEARCH_LIMIT = 20  # results per kind on the desk's search page


def _compact(field: str) -> Replace:
    # Plates and phone numbers are typed with or without spaces and dashes ("GX-123-B", "gx 123b").
    return Replace(Replace(Lower(field), Value(" "), Value("")), Value("-"), Value(""))


def desk_search(*, q: str, since: datetime) -> tuple[list[Driver], list[Booking]]:
    """Drivers and bookings (from `since` on, soonest first) matching q: a licence plate or phone
    number (spaces and dashes ignored), a booking reference or id, a name, an email or a token
    uid. Two queries; nothing for fewer than 2 characters."""
    q = q.strip()
    if len(q) < 2:
        return [], []
    compact = q.lower().replace(" ", "").replace("-", "")
    driver_ids = (
        Driver.objects.annotate(plate=_compact("license_plate"), phone_digits=_compact("phone"))
        .filter(
            Q(name__icontains=q)
            | Q(email__icontains=q)
            | Q(tokens__uid__icontains=q)
            | Q(plate__contains=compact)
            | Q(phone_digits__contains=compact)
        )
        .values("id")
    )
    drivers = list(Driver.objects.filter(id__in=driver_ids).order_by("name", "id")[:SEARCH_LIMIT])
    bookings = list(
        Booking.objects.filter(
            Q(driver_id__in=driver_ids)
            | Q(authorization_reference__iexact=q)
            | Q(uid__startswith=q.lower())
            | Q(tokens__uid__icontains=q)
            | Q(request_id__iexact=q),
            period__endswith__gte=since,
        )
        .select_related("driver", "location", "evse__charge_point")
        .distinct()
        .order_by("period", "id")[:SEARCH_LIMIT]
    )
    return drivers, bookings


def drivers_by_ids(*, ids: Sequence[int]) -> list[Driver]:
    return list(
        Driver.objects.filter(id__in=ids)
        .prefetch_related(Prefetch("tokens", queryset=DriverToken.objects.order_by("uid")))
        .order_by("name", "id")
    )


def bookings_on_charger(
    *, charge_point: ChargePoint, now: datetime, until: datetime
) -> QuerySet[Booking]:
    """The active bookings (pending or reserved) on the charge point's EVSEs that have not
    ended by `now` and start before `until`, by start."""
    return (
        Booking.objects.filter(
            evse__charge_point=charge_point,
            status__in=OPEN_STATUSES,
            period__overlap=(now, until),
        )
        .select_related("evse", "location", "driver")
        .order_by("period", "pk")
    )


def active_bookings_on_evses(*, evse_ids: Collection[int], now: datetime) -> QuerySet[Booking]:
    """The active bookings (pending, reserved or charging: the blocking states) on these EVSEs
    that have not ended by `now`, by start: what deleting the EVSEs would take away from their
    drivers and eMSPs."""
    return (
        Booking.objects.filter(
            evse_id__in=list(evse_ids), status__in=BLOCKING_STATUSES, period__endswith__gt=now
        )
        .select_related("evse", "location", "driver")
        .order_by("period", "pk")
    )


def booking_counts() -> dict[tuple[str, str], int]:
    """How many bookings there are by (status, channel), for the metrics: one GROUP BY over
    the table."""
    rows = Booking.objects.order_by().values_list("status", "channel").annotate(n=Count("id"))
    return {(status, channel): n for status, channel, n in rows}


# --- What the desk must not miss (issue 15): bookings the rules have moved away from ---


def standing_refusal(
    *,
    evse: EVSE,
    start: datetime,
    end: datetime,
    channel: str,
    location: Location,
    rules: Rules,
    hours: OpeningHours,
) -> BookingError | None:
    """What the current rules say against an active booking that exists already: slot_refusal,
    or for a hold placed by an eMSP's ReserveNow command (which starts at once, off the grid
    and whatever the hours, as booking_reserve_now allows) only an EVSE that takes no bookings.
    """
    if channel == Booking.Channel.COMMAND:
        reason = evse_unbookable_reason(evse)
        return NotBookable(reason) if reason else None
    return slot_refusal(
        evse=evse, start=start, end=end, location=location, rules=rules, hours=hours
    )


@dataclass(frozen=True)
class RuleBreak:
    """An active booking that the rules in force now would refuse, and why."""

    booking: Booking
    refusal: BookingError

    @property
    def reason(self) -> str:
        return self.refusal.message


# What the needs-attention list, its count and the admin's question read of a booking: loading
# only these columns, not the two dozen others, is most of what a busy location's list costs.
_ATTENTION_FIELDS = (
    "id", "uid", "location_id", "evse_id", "period", "blocked_period", "status", "channel",
    "emsp_country_code", "emsp_party_id", "needs_attention", "driver", "driver__name",
)  # fmt: skip


def bookings_outside_rules(
    *, location: Location, now: datetime | None = None, evses: Sequence[EVSE] | None = None
) -> list[RuleBreak]:
    """The location's active bookings (pending or reserved, not ended by `now`) that its rules
    as they stand would refuse: an admin shortened the opening hours, added an exceptional
    closing, switched booking off on an EVSE or tightened a policy after they were made. By
    start. Three queries whatever the count (the location's hours, its EVSEs with their
    policies, the bookings); each booking is judged by standing_refusal, the create path's own
    rules, and by the no-overlap rule with the buffer as it stands now (blocked_time, as
    check_slot): a longer buffer can make a booking's blocked time meet the next one's. `evses`
    saves loading them when the caller has (evses_of_location's)."""
    now = now or timezone.now()
    evse_list = list(evses) if evses is not None else evses_of_location(location=location)
    by_id = {e.pk: e for e in evse_list}
    hours = opening_hours_of(location)
    rules = {e.pk: rules_for(policy_for(e, location)) for e in evse_list}
    # Every blocking booking not over by now (a fulfilled one still keeps its slot), by EVSE and
    # start: the open ones are judged, and all of them are what a longer buffer may now meet.
    by_evse: dict[int, list[Booking]] = defaultdict(list)
    for booking in (
        Booking.objects.of_location(location.pk)
        .filter(status__in=BLOCKING_STATUSES, blocked_period__overlap=(now, None))
        .select_related("driver")
        .only(*_ATTENTION_FIELDS)
        .order_by("period", "id")
    ):
        if booking.evse_id in by_id:
            booking.evse = by_id[booking.evse_id]  # loaded already, with its charge point
            by_evse[booking.evse_id].append(booking)
    found = []
    for evse_id, bookings in by_evse.items():
        evse, evse_rules = by_id[evse_id], rules[evse_id]
        for i, booking in enumerate(bookings):
            if booking.status not in OPEN_STATUSES or booking.end <= now:
                continue
            refusal = standing_refusal(
                evse=evse, start=booking.start, end=booking.end, channel=booking.channel,
                location=location, rules=evse_rules, hours=hours,
            )  # fmt: skip
            if refusal is None and booking.channel != Booking.Channel.COMMAND:
                refusal = buffer_refusal(
                    evse=evse, start=booking.start, end=booking.end, location=location,
                    rules=evse_rules,
                    later=(Interval(o.blocked_period.lower, o.blocked_period.upper)
                           for o in bookings[i + 1 :]),
                )  # fmt: skip
            if refusal is not None:
                found.append(RuleBreak(booking, refusal))
    found.sort(key=lambda rule_break: (rule_break.booking.start, rule_break.booking.pk))
    return found


@dataclass(frozen=True)
class AttentionItem:
    """A booking on the desk's needs-attention list, with every reason it is there."""

    booking: Booking
    reasons: list[str]


def bookings_needing_attention(
    *, location: Location, now: datetime | None = None
) -> list[AttentionItem]:
    """What the desk must act on at a location, by start: the active bookings outside the rules
    (bookings_outside_rules) and those flagged for staff because their charger could not hold
    them (Booking.needs_attention)."""
    now = now or timezone.now()
    evses = evses_of_location(location=location)
    reasons: dict[int, list[str]] = defaultdict(list)
    items: dict[int, Booking] = {}
    for rule_break in bookings_outside_rules(location=location, now=now, evses=evses):
        items[rule_break.booking.pk] = rule_break.booking
        reasons[rule_break.booking.pk].append(rule_break.reason)
    by_id = {e.pk: e for e in evses}
    flagged = (
        Booking.objects.of_location(location.pk)
        .filter(status__in=BLOCKING_STATUSES, blocked_period__overlap=(now, None))
        .filter(status__in=OPEN_STATUSES, period__endswith__gt=now, needs_attention=True)
        .select_related("driver")
        .only(*_ATTENTION_FIELDS)
    )
    for booking in flagged:
        if booking.evse_id in by_id:  # loaded already (a default here would load each one's)
            booking.evse = by_id[booking.evse_id]
        items.setdefault(booking.pk, booking)
        reasons[booking.pk].append(
            "Its charger could not hold it: check the charger, or move the booking."
        )
    ordered = sorted(items.values(), key=lambda b: (b.start, b.pk))
    return [AttentionItem(b, reasons[b.pk]) for b in ordered]


# --- Notices on an open desk page (issue 15): what arrived since the page last looked ---

# Who books from outside the site: a booking they make is news to the desk.
NOTICE_ACTORS = (BookingTransition.ActorType.EMSP, BookingTransition.ActorType.API)
FAULT_STATUSES = (EVSEStatus.OUTOFORDER, EVSEStatus.INOPERATIVE)
FAULT_WORDS = {EVSEStatus.OUTOFORDER: "out of order", EVSEStatus.INOPERATIVE: "inoperative"}

# The location's EVSEs reporting a fault and its charge points not connected, as "e<id>" and
# "c<id>": what a page saw is compared with what is now, so neither clock matters.
_DOWN_SQL = (
    "SELECT 'e' || e.id FROM locations_evse e "
    "JOIN locations_chargepoint cp ON cp.id = e.charge_point_id "
    "WHERE cp.location_id = %(location)s AND e.status IN ('OUTOFORDER', 'INOPERATIVE') "
    "UNION ALL SELECT 'c' || cp.id FROM locations_chargepoint cp "
    "WHERE cp.location_id = %(location)s AND NOT cp.is_connected"
)
# The newest audit row old enough that no row before it can still commit (AUDIT_GAP_WAIT, the
# outbox's rule): a poll reads again from there, so a booking whose transaction committed late
# is still announced (the page drops a notice it has shown already).
_SETTLED_AUDIT_SQL = (
    "SELECT coalesce(max(id), 0) FROM bookings_bookingtransition WHERE at < %s AND id > %s"
)


@dataclass(frozen=True)
class NoticeCursor:
    """Where an open page's notices stand: the audit rows read up to `audit_id`, and what
    was down (`down`, as in _DOWN_SQL). Travels as text in the page and its polls."""

    audit_id: int
    down: frozenset[str]

    def __str__(self) -> str:
        return f"{self.audit_id};{','.join(sorted(self.down))}"

    @classmethod
    def parse(cls, text: str) -> NoticeCursor | None:
        audit, _, down = (text or "").partition(";")
        if not audit.isdigit():
            return None
        return cls(int(audit), frozenset(d for d in down.split(",") if d[1:].isdigit()))


@dataclass(frozen=True)
class DeskNotice:
    """A notice for the desk: a booking that arrived from an eMSP or an API client, or a
    charger that faulted or went offline."""

    key: str  # the page shows a notice once
    kind: str  # "booking", "fault" or "offline"
    text: str
    booking_uid: uuid.UUID | None = None


def _down_now(location: Location) -> frozenset[str]:
    with connection.cursor() as cursor:
        cursor.execute(_DOWN_SQL, {"location": location.pk})
        return frozenset(row[0] for row in cursor.fetchall())


def desk_notice_cursor(*, location: Location) -> NoticeCursor:
    """Where a page rendered now starts: every audit row so far and what is down now read."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM bookings_bookingtransition")
        top = cursor.fetchone()[0]
    return NoticeCursor(top, _down_now(location))


def desk_notices(
    *, location: Location, since: NoticeCursor, now: datetime | None = None
) -> tuple[list[DeskNotice], NoticeCursor]:
    """What happened at the location since a page's cursor: bookings created there by an eMSP
    (OCPI) or an operator API client, EVSEs that began reporting a fault and charge points
    that went offline; and the cursor to ask from next. Two queries when nothing happened."""
    now = now or timezone.now()
    tz = location.zone
    notices = []
    created = list(
        BookingTransition.objects.filter(
            id__gt=since.audit_id,
            event=BookingTransition.Event.CREATED,
            actor_type__in=NOTICE_ACTORS,
            to_status__in=BLOCKING_STATUSES,
            booking__location_id=location.pk,
        )
        .select_related("booking__evse", "booking__driver")
        .order_by("id")
    )
    for row in created:
        b = row.booking
        kind = "eMSP" if row.actor_type == BookingTransition.ActorType.EMSP else "API client"
        who = f"{kind} {row.actor_label}"
        start, end = b.start.astimezone(tz), b.end.astimezone(tz)
        driver = f" for {b.driver.name}" if b.driver else ""
        notices.append(
            DeskNotice(
                key=f"booking:{b.uid}",
                kind="booking",
                text=f"New booking from {who}{driver}: {b.evse}, {start:%a %d %b %H:%M}–"
                f"{end:%H:%M} ({zone_label(start, tz)}).",
                booking_uid=b.uid,
            )
        )
    with connection.cursor() as cursor:
        cursor.execute(_SETTLED_AUDIT_SQL, [now - AUDIT_GAP_WAIT, since.audit_id])
        settled = max(since.audit_id, cursor.fetchone()[0])
    down = _down_now(location)
    went_down = down - since.down
    if went_down:
        evse_ids = [int(k[1:]) for k in went_down if k[0] == "e"]
        cp_ids = [int(k[1:]) for k in went_down if k[0] == "c"]
        for cp in ChargePoint.objects.filter(pk__in=cp_ids).order_by("identity"):
            seen = cp.last_seen.astimezone(tz) if cp.last_seen else None
            heard = f" (last heard {seen:%H:%M}, {zone_label(seen, tz)})" if seen else ""
            notices.append(
                DeskNotice(
                    key=f"offline:{cp.pk}:{int(now.timestamp())}",
                    kind="offline",
                    text=f"Charger {cp.identity} went offline{heard}.",
                )
            )
        evses = EVSE.objects.filter(pk__in=evse_ids).select_related("charge_point")
        for evse in evses.order_by("charge_point__identity", "ocpp_evse_id"):
            notices.append(
                DeskNotice(
                    key=f"fault:{evse.pk}:{int(now.timestamp())}",
                    kind="fault",
                    text=f"{evse} ({evse.charge_point.identity}) reports a fault: "
                    f"{FAULT_WORDS.get(evse.status, evse.status.lower())}.",
                )
            )
    return notices, NoticeCursor(settled, down)
