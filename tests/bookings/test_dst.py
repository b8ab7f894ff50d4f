"""DST days through the database: Europe/Amsterdam on 2026-03-29 (23 h) and 2026-10-25 (25 h)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings import exceptions as exc
from bookings.availability import local_day_window
from bookings.selectors import location_availability
from bookings.services import Actor, booking_create
from tests.locations.factories import (
    BookingPolicyFactory,
    EVSEFactory,
    LocationFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db

AMS = ZoneInfo("Europe/Amsterdam")
SPRING = datetime(2026, 3, 29).date()
AUTUMN = datetime(2026, 10, 25).date()
NOW = datetime(2026, 3, 1, tzinfo=UTC)
ACTOR = Actor.system("test")


def evse_at(**location_fields):
    location = LocationFactory(**location_fields)
    BookingPolicyFactory(location=location, slot_step_minutes=30, min_duration_minutes=60,
                         max_duration_minutes=60, horizon_days=365)  # fmt: skip
    return EVSEFactory(charge_point__location=location)


@pytest.mark.parametrize(("day", "hours"), [(SPRING, 23), (AUTUMN, 25)])
def test_dst_day_availability_has_the_days_real_length(day, hours):
    evse = evse_at()
    window = local_day_window(day, AMS)
    result = location_availability(
        location=evse.charge_point.location, start=window.start, end=window.end, now=NOW
    )
    (free,) = result.evses[0].free
    assert free.duration == timedelta(hours=hours)


def test_dst_opening_hours_across_the_spring_change():
    evse = evse_at(twentyfourseven=False)
    RegularHoursFactory(location=evse.charge_point.location, weekday=7, period_begin="01:00",
                        period_end="04:00")  # fmt: skip
    window = local_day_window(SPRING, AMS)
    result = location_availability(
        location=evse.charge_point.location, start=window.start, end=window.end, now=NOW
    )
    (free,) = result.evses[0].free
    assert free.start == datetime(2026, 3, 29, 1, 0, tzinfo=AMS)
    assert free.duration == timedelta(hours=2)


def test_dst_slot_across_the_spring_change_is_one_real_hour():
    evse = evse_at()
    start = datetime(2026, 3, 29, 1, 30, tzinfo=AMS)
    end = datetime(2026, 3, 29, 3, 30, tzinfo=AMS)  # two wall-clock hours, one real hour
    booking = booking_create(evse=evse, start=start, end=end, actor=ACTOR, now=NOW)
    assert booking.period.upper - booking.period.lower == timedelta(hours=1)


def test_dst_slot_across_the_autumn_change_is_three_real_hours():
    evse = evse_at()
    start = datetime(2026, 10, 25, 1, 30, tzinfo=AMS)
    end = datetime(2026, 10, 25, 3, 30, tzinfo=AMS)  # two wall-clock hours, three real hours
    with pytest.raises(exc.TooLong, match="at most 60 minutes"):
        booking_create(evse=evse, start=start, end=end, actor=ACTOR, now=NOW)
    # The repeated hour: 02:30 CEST -> 02:30 CET is one real hour and on the grid.
    first = datetime(2026, 10, 25, 2, 30, tzinfo=AMS)
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=AMS)
    booking = booking_create(evse=evse, start=first, end=second, actor=ACTOR, now=NOW)
    assert booking.period.upper - booking.period.lower == timedelta(hours=1)
