"""Read paths of the OCPI app: locations as OCPI shows them, BookingLocations with calendars
computed by the availability engine, parties to push to. Domain reads go through the domain
apps' selectors."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import (
    Count,
    Exists,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from bookings.availability import MAX_WINDOW, Interval, local_day_window, split
from bookings.models import Booking
from bookings.selectors import location_availability
from chargers.models import ChargeDetailRecord, ChargingSession, MeterReading
from locations.models import EVSE, UNBOOKABLE_EVSE_STATUSES, Connector, Location
from locations.selectors import evses_of_location, location_get, policy_for

from .models import Command, Party, Push, Token


def published_locations() -> QuerySet[Location]:
    """Published locations with last_updated covering their EVSEs and connectors (OCPI rule)."""
    return (
        Location.objects.published()
        .annotate(
            ocpi_last_updated=Greatest(
                "last_updated",
                Coalesce(Max("charge_points__evses__last_updated"), "last_updated"),
                Coalesce(Max("charge_points__evses__connectors__last_updated"), "last_updated"),
                # Connectors list the tariffs in force (tariff_ids): a tariff change is theirs.
                Coalesce(Max("tariffs__last_updated"), "last_updated"),
                Coalesce(Max("charge_points__evses__tariffs__last_updated"), "last_updated"),
            )
        )
        .prefetch_related(
            "regular_hours",
            "exceptional_periods",
            "tariffs",
            Prefetch(
                "charge_points__evses",
                queryset=EVSE.objects.prefetch_related(
                    "tariffs", Prefetch("connectors", queryset=Connector.objects.order_by("id"))
                ).order_by("ocpp_evse_id", "id"),
            ),
        )
        .order_by("ocpi_last_updated", "id")
    )


def published_location_get(*, location_id: str) -> Location:
    """Raises Location.DoesNotExist (also for unpublished ones)."""
    return published_locations().get(ocpi_id__iexact=location_id)


@dataclass(frozen=True)
class BookableEVSE:
    """An EVSE offered as a BookingLocation, as keys: booking_locations() loads the EVSE itself
    (charge point, policy, connectors) with the availability computation of its location."""

    pk: int
    uid: str
    bl_location_id: int
    bl_last_updated: datetime  # last change to anything its calendar depends on


_BOOKABLE_SQL = f"""
    SELECT * FROM (
        SELECT e.id, e.uid, cp.location_id, cp.identity, e.ocpp_evse_id, greatest(
            %(horizon_start)s::timestamptz, e.last_updated, l.last_updated,
            coalesce(ep.last_updated, e.last_updated), coalesce(lp.last_updated, e.last_updated),
            coalesce((SELECT b.last_updated FROM bookings_booking b WHERE b.evse_id = e.id
                      ORDER BY b.last_updated DESC LIMIT 1), e.last_updated)
        ) AS bl_last_updated
        FROM locations_evse e
        JOIN locations_chargepoint cp ON cp.id = e.charge_point_id
        JOIN locations_location l ON l.id = cp.location_id
        LEFT JOIN locations_bookingpolicy ep ON ep.evse_id = e.id
        LEFT JOIN locations_bookingpolicy lp ON lp.location_id = l.id
        WHERE l.publish AND e.booking_enabled
          AND e.status NOT IN ({", ".join(f"'{s}'" for s in UNBOOKABLE_EVSE_STATUSES)})
          AND (%(pk)s::bigint IS NULL OR e.id = %(pk)s::bigint)
          AND (%(uid)s::text IS NULL OR upper(e.uid) = upper(%(uid)s::text))
    ) k
    WHERE (%(date_from)s::timestamptz IS NULL OR bl_last_updated >= %(date_from)s::timestamptz)
      AND (%(date_to)s::timestamptz IS NULL OR bl_last_updated < %(date_to)s::timestamptz)
    ORDER BY location_id, identity, ocpp_evse_id, id
"""


def horizon_start(now: datetime) -> datetime:
    """Where the published calendars begin: the start of the current UTC day. The horizon rolls
    once a day rather than with every request, and each roll is a change of every
    BookingLocation (its last_updated is at least this), so a client syncing with date_from
    sees it."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def bookable_evses(
    *,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    pk: int | None = None,
    uid: str | None = None,
    now: datetime | None = None,
) -> list[BookableEVSE]:
    """EVSEs offered as BookingLocations: bookable, at published locations, in a stable order;
    optionally changed in [date_from, date_to), or the one with this pk or uid (CiString).

    Constant SQL: the ORM spent ~5 ms compiling this query on every booking_locations call.
    """
    rolled = horizon_start(now or timezone.now())
    params = {"date_from": date_from, "date_to": date_to, "pk": pk, "uid": uid,
              "horizon_start": rolled}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_BOOKABLE_SQL, params)
        return [
            BookableEVSE(pk=pk, uid=uid, bl_location_id=location_id, bl_last_updated=updated)
            for pk, uid, location_id, _, _, updated in cursor.fetchall()
        ]


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
    """The published horizon: [from, to) capped at the engine's 7-day maximum; without a
    `from`, it begins where today's horizon does (horizon_start)."""
    start = timeslot_from or horizon_start(now)
    end = timeslot_to or start + MAX_WINDOW
    end = min(end, start + MAX_WINDOW)
    return Interval(start.astimezone(UTC), end.astimezone(UTC))


def booking_locations(
    *, evses: list[BookableEVSE], window: Interval, now: datetime | None = None
) -> list[BookingLocationData]:
    """BookingLocations (one per EVSE of `bookable_evses()`) with one Calendar per local day of
    the window.

    One availability computation per location, whatever the number of EVSEs; it also loads the
    EVSEs with everything a BookingLocation shows. An EVSE gone meanwhile is left out.
    """
    now = now or timezone.now()
    by_location: dict[int, list[BookableEVSE]] = defaultdict(list)
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
        # The tariffs each BookingLocation names (tariff_ids_for): two queries per location.
        prefetch_related_objects([location], "tariffs")
        prefetch_related_objects(list(loaded.values()), "tariffs")
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
            powers = [c.power_watts for c in evse.connector_list()]
            calendars = []
            by_day = split(free.get(evse.pk, []), [part for _, part in days])
            for (day_id, part), slots in zip(days, by_day, strict=True):
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


def booking_location_get(*, booking_location_id: str, now: datetime | None = None) -> BookableEVSE:
    """The bookable EVSE behind a BookingLocation id. Raises EVSE.DoesNotExist."""
    found = bookable_evses(uid=booking_location_id, now=now)
    if not found:
        raise EVSE.DoesNotExist(f"No bookable EVSE {booking_location_id!r}.")
    return found[0]


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


def _charged_to(party: Party, *, session: str) -> Q:
    """Sessions and CDRs (rows with `booking_id` and `id_tag`, and their session's id in the
    field `session`) of the party: of one of its bookings, charged to one of its tokens (uids
    are case-insensitive), or of a session its START_SESSION started."""
    its_booking = Booking.objects.filter(
        pk=OuterRef("booking_id"),
        emsp_country_code=party.country_code,
        emsp_party_id=party.party_id,
    )
    its_token = Token.objects.filter(owner=party, uid__iexact=OuterRef("id_tag"))
    return Q(Exists(its_booking)) | Q(Exists(its_token)) | Q(Exists(_started_by(party, session)))


def _started_by(party: Party, session: str = "pk") -> QuerySet[Command]:
    """The party's START_SESSION that began the outer row's session, if any."""
    return Command.objects.filter(
        party=party, type=Command.Type.START_SESSION, remote_command__session=OuterRef(session)
    )


def session_of_party(party: Party, session_id: str) -> ChargingSession | None:
    """One of the party's sessions (as sessions_of_party selects them) by its OCPI id (our row
    id), with its EVSE; else None."""
    if not session_id.isascii() or not session_id.isdigit() or len(session_id) > 18:
        return None
    return (
        ChargingSession.objects.filter(_charged_to(party, session="pk"))
        .select_related("evse")
        .filter(pk=int(session_id))
        .first()
    )


def sessions_of_party(party: Party) -> QuerySet[ChargingSession]:
    """The charging sessions an eMSP may read: those that fulfilled one of its bookings, that
    one of its tokens started, or that its START_SESSION started. Annotated with
    `ocpi_last_updated` (the latest of start, stop and meter reading), stably ordered by it, and
    `started_by_command` (its START_SESSION began it), with what a Session object shows
    loaded."""
    return (
        ChargingSession.objects.filter(_charged_to(party, session="pk"))
        .annotate(
            started_by_command=Exists(_started_by(party)),
            ocpi_last_updated=Greatest(
                "started_at",
                Coalesce("stopped_at", "started_at"),
                Coalesce("meter_last_at", "started_at"),
            ),
        )
        .select_related("evse", "charge_point__location")
        .prefetch_related(
            "evse__connectors",
            Prefetch("meter_readings", queryset=MeterReading.objects.order_by("at")),
        )
        .order_by("ocpi_last_updated", "id")
    )


def owners_of_charge(
    *, booking_id: int | None, id_tag: str, session_id: int | None = None
) -> list[int]:
    """The registered parties (Party ids) a session or CDR is pushed to: the eMSP of the booking
    it redeemed, the parties holding its token and the one whose START_SESSION started its
    session, as _charged_to() selects them for reading."""
    parties = parties_to_push()
    owners = (
        Q(pk__in=Token.objects.filter(uid__iexact=id_tag).values("owner_id"))
        if id_tag
        else Q(pk__in=[])
    )
    if session_id is not None:
        started = Command.objects.filter(
            type=Command.Type.START_SESSION, remote_command__session=session_id
        )
        owners |= Q(pk__in=started.values("party_id"))
    if booking_id is not None:
        booking = Booking.objects.filter(pk=booking_id).first()
        if booking is not None and booking.emsp_country_code:
            owners |= Q(country_code=booking.emsp_country_code, party_id=booking.emsp_party_id)
    return list(parties.filter(owners).values_list("pk", flat=True))


def cdrs_of_party(party: Party) -> QuerySet[ChargeDetailRecord]:
    """The charge detail records an eMSP may read: of its bookings, or charged to its tokens.
    Stably ordered by issue (`created_at`, never changed: a CDR is final)."""
    return (
        ChargeDetailRecord.objects.filter(_charged_to(party, session="session_id"))
        .select_related("location", "evse", "session")
        .prefetch_related("evse__connectors")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class PushBacklog:
    """A party's pushes still to send: how many, and since when the oldest waits."""

    party: str  # "DE*XMS"
    pending: int
    oldest: datetime | None


def push_backlogs() -> list[PushBacklog]:
    """Every party that is not unregistered, with its pending pushes (none: 0, no oldest)."""
    pending = {
        row["party_id"]: row
        for row in Push.objects.filter(state=Push.State.PENDING)
        .order_by()
        .values("party_id")
        .annotate(n=Count("id"), oldest=Min("created_at"))
    }
    backlogs = []
    for party in Party.objects.exclude(state=Party.State.UNREGISTERED).order_by("pk"):
        row = pending.get(party.pk, {})
        name = f"{party.country_code}*{party.party_id}"
        backlogs.append(PushBacklog(name, row.get("n", 0), row.get("oldest")))
    return backlogs
