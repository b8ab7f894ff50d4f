"""What a location's bookings add up to over its last days: how booked each EVSE is hour by hour,
who books (staff, each eMSP, each other channel), how bookings end, and how far ahead they are
made. Read-only; a fixed number of aggregate queries whatever the number of EVSEs or bookings.

The window is whole local days that have ended: the `days` days before today in the location's
time zone, so the figures do not move while the day runs. A booking counts for the window when
its period starts in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connection
from django.utils import timezone

from locations.models import EVSE, Location

from .availability import local_day_window
from .models import Booking, Status

# Bookings that held their time: the driver came (FULFILLED), did not (NO_SHOW), or the booking
# is still open. Canceled, rejected and failed ones gave their time back.
HELD_STATUSES = (Status.FULFILLED, Status.NO_SHOW, Status.RESERVED, Status.PENDING)
# Bookings that were made (a rejected or failed request never was one).
MADE_STATUSES = (*HELD_STATUSES, Status.CANCELED)

# Lead time: from when a booking was made to its start. (label, upper bound in hours or None)
LEAD_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("< 1 h", 1),
    ("1–6 h", 6),
    ("6–24 h", 24),
    ("1–3 days", 72),
    ("3–7 days", 168),
    ("> 7 days", None),
)


@dataclass(frozen=True, slots=True)
class EvseHours:
    """One EVSE's booked share of each local hour of the day, 0..1, hours 0 to 23."""

    evse_id: int
    label: str
    shares: tuple[float, ...]

    @property
    def average(self) -> float:
        return sum(self.shares) / len(self.shares)


@dataclass(frozen=True, slots=True)
class ChannelCount:
    key: str
    label: str
    made: int
    canceled: int


@dataclass(frozen=True, slots=True)
class Outcomes:
    made: int
    fulfilled: int
    no_show: int
    canceled: int
    open: int
    refused: int  # rejected or failed requests: never bookings

    @property
    def no_show_rate(self) -> float | None:
        """Of the bookings whose driver came or not, the share that did not."""
        decided = self.fulfilled + self.no_show
        return self.no_show / decided if decided else None

    @property
    def cancel_rate(self) -> float | None:
        return self.canceled / self.made if self.made else None


@dataclass(frozen=True, slots=True)
class LeadTimes:
    buckets: tuple[tuple[str, int], ...]
    median_hours: float | None


@dataclass(frozen=True, slots=True)
class LocationInsights:
    location: Location
    days: int
    first_day: date
    last_day: date
    start: datetime
    end: datetime
    evses: tuple[EvseHours, ...]
    channels: tuple[ChannelCount, ...]
    outcomes: Outcomes
    lead: LeadTimes


def insights_window(location: Location, *, days: int, now: datetime) -> tuple[date, datetime]:
    """The first local day of the window and the start of today (the window's end)."""
    today = now.astimezone(location.zone).date()
    return today - timedelta(days=days), local_day_window(today, location.zone).start


_HOURS_SQL = """
    WITH held AS (
        SELECT evse_id, greatest(lower(period), %(start)s) AS s, least(upper(period), %(end)s) AS e
          FROM bookings_booking
         WHERE location_id = %(location)s AND evse_id IS NOT NULL
           AND lower(period) >= %(start)s AND lower(period) < %(end)s
           AND status = ANY(%(held)s)
    )
    SELECT held.evse_id, extract(hour FROM h AT TIME ZONE %(tz)s)::int,
           sum(extract(epoch FROM least(held.e, h + interval '1 hour') - greatest(held.s, h)))
      FROM held,
           generate_series(date_trunc('hour', held.s AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s,
                           held.e - interval '1 microsecond', interval '1 hour') AS h
     GROUP BY 1, 2
"""

_COUNTS_SQL = """
    SELECT channel, emsp_country_code, emsp_party_id, status, count(*)
      FROM bookings_booking
     WHERE location_id = %(location)s AND lower(period) >= %(start)s AND lower(period) < %(end)s
     GROUP BY 1, 2, 3, 4
"""

_LEAD_SQL = """
    WITH lead AS (
        SELECT extract(epoch FROM lower(period) - created_at) / 3600 AS hours
          FROM bookings_booking
         WHERE location_id = %(location)s AND lower(period) >= %(start)s
           AND lower(period) < %(end)s AND status = ANY(%(made)s)
    )
    SELECT width_bucket(hours, %(bounds)s::float[]), count(*),
           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) FROM lead)
      FROM lead
     GROUP BY 1
"""


def location_insights(
    *, location: Location, days: int, now: datetime | None = None
) -> LocationInsights:
    """The location's figures over the `days` whole local days before today."""
    now = now or timezone.now()
    first_day, end = insights_window(location, days=days, now=now)
    start = local_day_window(first_day, location.zone).start
    params = {"location": location.pk, "start": start, "end": end, "tz": location.time_zone,
              "held": [str(s) for s in HELD_STATUSES], "made": [str(s) for s in MADE_STATUSES],
              "bounds": [0, *(b for _, b in LEAD_BUCKETS if b is not None)]}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_HOURS_SQL, params)
        seconds = {(evse_id, hour): float(s) for evse_id, hour, s in cursor.fetchall()}
        cursor.execute(_COUNTS_SQL, params)
        counts = cursor.fetchall()
        cursor.execute(_LEAD_SQL, params)
        lead_rows = cursor.fetchall()
    per_hour = days * 3600.0  # each hour of the day occurs once a day (DST days aside)
    evses = tuple(
        EvseHours(
            evse_id=evse.pk,
            label=str(evse),
            shares=tuple(min(1.0, seconds.get((evse.pk, h), 0.0) / per_hour) for h in range(24)),
        )
        for evse in EVSE.objects.of_location(location).order_by(
            "charge_point__identity", "ocpp_evse_id", "id"
        )
    )
    return LocationInsights(
        location=location,
        days=days,
        first_day=first_day,
        last_day=first_day + timedelta(days=days - 1),
        start=start,
        end=end,
        evses=evses,
        channels=_channels(counts),
        outcomes=_outcomes(counts),
        lead=_lead(lead_rows),
    )


def _channels(counts: list[tuple]) -> tuple[ChannelCount, ...]:
    labels = dict(Booking.Channel.choices)
    made: dict[tuple[str, str], list[int]] = {}
    for channel, cc, pid, status, n in counts:
        if status not in MADE_STATUSES:
            continue
        party = f"{cc}*{pid}" if cc and pid else ""
        label = (
            f"{labels.get(channel, channel)} · {party}" if party else labels.get(channel, channel)
        )
        row = made.setdefault((channel + party, label), [0, 0])
        row[0] += n
        row[1] += n if status == Status.CANCELED else 0
    return tuple(
        ChannelCount(key=key, label=label, made=m, canceled=c)
        for (key, label), (m, c) in sorted(made.items(), key=lambda kv: (-kv[1][0], kv[0][1]))
    )


def _outcomes(counts: list[tuple]) -> Outcomes:
    by_status: dict[str, int] = {}
    for _, _, _, status, n in counts:
        by_status[status] = by_status.get(status, 0) + n
    return Outcomes(
        made=sum(by_status.get(s, 0) for s in MADE_STATUSES),
        fulfilled=by_status.get(Status.FULFILLED, 0),
        no_show=by_status.get(Status.NO_SHOW, 0),
        canceled=by_status.get(Status.CANCELED, 0),
        open=by_status.get(Status.RESERVED, 0) + by_status.get(Status.PENDING, 0),
        refused=by_status.get(Status.REJECTED, 0) + by_status.get(Status.FAILED, 0),
    )


def _lead(rows: list[tuple]) -> LeadTimes:
    # width_bucket: 0 below the first bound (made after it started), i for [bound i-1, bound i),
    # len(bounds) at or above the last bound.
    found = {bucket: n for bucket, n, _ in rows}
    buckets = [(LEAD_BUCKETS[0][0], found.get(0, 0) + found.get(1, 0))]
    buckets += [(label, found.get(i + 1, 0)) for i, (label, _) in enumerate(LEAD_BUCKETS) if i]
    median = rows[0][2] if rows else None
    return LeadTimes(buckets=tuple(buckets), median_hours=None if median is None else float(median))
