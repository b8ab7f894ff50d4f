"""The staff pages' selectors in bookings.selectors: day_timeline, location_capacities,
driver_search (the engine's own selectors are tested in test_selectors.py)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings.exceptions import InvalidWindow
from bookings.selectors import (
    Criteria,
    day_timeline,
    driver_search,
    location_capacities,
    location_list_for_staff,
)
from tests.bookings.factories import BookingFactory, DriverFactory, DriverTokenFactory
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    LocationFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2027, 3, 1, 6, 0, tzinfo=AMS)  # a Monday, well before the days looked at


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=AMS)


@pytest.fixture
def location():
    loc = LocationFactory(time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=loc)
    return loc


@pytest.mark.parametrize(
    ("day", "hours", "labels"),
    [
        (date(2027, 3, 28), 23, ["00", "01", "03", "04"]),  # spring forward: no 02:00
        (date(2027, 10, 31), 25, ["00", "01", "02", "02", "03"]),  # fall back: 02:00 twice
        (date(2027, 3, 2), 24, ["00", "01", "02", "03"]),
    ],
)
def test_day_timeline_axis_has_the_days_real_hours(location, day, hours, labels):
    tl = day_timeline(location=location, day=day, now=NOW)
    assert len(tl.hours) == hours
    assert [t.at.astimezone(AMS).strftime("%H") for t in tl.hours[: len(labels)]] == labels
    assert tl.window.duration == timedelta(hours=hours)


def test_day_timeline_places_bookings_free_time_and_closed_hours(location):
    day = date(2027, 3, 2)  # Tuesday
    RegularHoursFactory(location=location, weekday=2, period_begin="08:00", period_end="20:00")
    location.twentyfourseven = False
    location.save()
    evse = EVSEFactory(charge_point=ChargePointFactory(location=location))
    booking = BookingFactory(evse=evse, start=local(day, 12), duration=timedelta(hours=1))
    tl = day_timeline(location=location, day=day, now=NOW)
    (row,) = tl.rows
    ((placed, seg),) = row.blocks
    assert placed.uid == booking.uid
    assert (seg.left, seg.width) == (50.0, round(100 / 24, 3))
    assert [(s.start.astimezone(AMS).hour, s.end.astimezone(AMS).hour) for s in row.free] == [
        (8, 12),
        (13, 20),
    ]
    assert [(s.left, s.width) for s in tl.closed] == [
        (0.0, round(800 / 24, 3)),
        (round(2000 / 24, 3), round(400 / 24, 3)),
    ]
    assert tl.now_left is None


def test_day_timeline_filters_rows_but_lists_every_standard(location):
    cp = ChargePointFactory(location=location)
    ac = EVSEFactory(charge_point=cp)
    dc = EVSEFactory(charge_point=cp, connectors=[])
    ConnectorFactory(evse=dc, dc=True)
    tl = day_timeline(
        location=location, day=date(2027, 3, 2), now=NOW, criteria=Criteria(power_type="DC")
    )
    assert [r.evse for r in tl.rows] == [dc]
    assert tl.evse_total == 2
    assert [v for v, _ in tl.standards] == ["IEC_62196_T2_COMBO", "IEC_62196_T2"]
    assert ac not in [r.evse for r in tl.rows]


def test_day_timeline_week_spans_seven_local_days(location):
    tl = day_timeline(location=location, day=date(2027, 3, 25), days=7, now=NOW)
    assert [t.at.astimezone(AMS).date().day for t in tl.days] == [25, 26, 27, 28, 29, 30, 31]
    assert tl.window.duration == timedelta(days=7, hours=-1)  # includes the 23-hour day


def test_day_timeline_week_over_a_fall_back_night_spans_169_hours(location):
    """Seven local days with the 25-hour day: an hour over MAX_WINDOW, still one week."""
    evse = EVSEFactory(charge_point=ChargePointFactory(location=location))
    late = BookingFactory(evse=evse, start=local(date(2027, 10, 31), 23), driver=DriverFactory())
    now = local(date(2027, 10, 25), 6)  # the whole week within the policy's horizon
    tl = day_timeline(location=location, day=date(2027, 10, 26), days=7, now=now)
    assert [t.at.astimezone(AMS).date().day for t in tl.days] == [26, 27, 28, 29, 30, 31, 1]
    assert tl.window.duration == timedelta(days=7, hours=1)
    assert [b.uid for b, _ in tl.rows[0].blocks] == [late.uid]
    assert tl.rows[0].free[-1].end == tl.window.end  # free to the last hour of the week


def test_day_timeline_refuses_more_than_seven_days(location):
    with pytest.raises(InvalidWindow, match="at most 7 days"):
        day_timeline(location=location, day=date(2027, 3, 2), days=8, now=NOW)


def test_day_timeline_query_count_does_not_grow_with_evses(location, django_assert_num_queries):
    for _ in range(10):
        evse = EVSEFactory(charge_point=ChargePointFactory(location=location))
        BookingFactory(evse=evse, start=local(date(2027, 3, 2), 10), driver=DriverFactory())
    # location (policy, hours, periods), EVSEs, connectors, blocked time, running sessions,
    # bookings
    with django_assert_num_queries(8):
        tl = day_timeline(location=location.pk, day=date(2027, 3, 2), now=NOW)
        assert sum(len(r.blocks) for r in tl.rows) == 10
        assert all(b.who for r in tl.rows for b, _ in r.blocks)  # drivers named, no lookups


def test_location_capacities_sum_free_time_ahead_per_location(django_assert_num_queries):
    busy = LocationFactory(name="Busy", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=busy)
    idle = LocationFactory(name="Idle", time_zone="Asia/Tokyo")
    cp = ChargePointFactory(location=busy)
    first, _second = EVSEFactory(charge_point=cp), EVSEFactory(charge_point=cp)
    EVSEFactory(charge_point=cp, status="OUTOFORDER")
    now = datetime(2027, 3, 2, 0, 0, tzinfo=AMS)
    BookingFactory(evse=first, start=local(date(2027, 3, 2), 10), duration=timedelta(hours=12))
    locations = list(location_list_for_staff())
    with django_assert_num_queries(3):  # EVSEs (with policies), bookings, running sessions
        caps = location_capacities(locations=locations, now=now)
    assert caps[busy.pk].evses_bookable == 2 and caps[busy.pk].evses_total == 3
    assert caps[busy.pk].open == timedelta(hours=48)
    assert caps[busy.pk].free == timedelta(hours=36)
    assert caps[busy.pk].percent == 75
    assert caps[idle.pk].evses_total == 0 and caps[idle.pk].percent == 0


def test_location_list_for_staff_searches_name_and_city():
    LocationFactory(name="Harbour Hub", city="Rotterdam")
    LocationFactory(name="Airport", city="Schiphol")
    assert [loc.name for loc in location_list_for_staff(search=" rotter ")] == ["Harbour Hub"]
    assert [loc.name for loc in location_list_for_staff(search="PORT")] == ["Airport"]


def test_driver_search_matches_email_name_or_token_once_each():
    anna = DriverFactory(name="Anna de Vries", email="anna@example.com")
    DriverTokenFactory(driver=anna, uid="04AAAA01")
    DriverTokenFactory(driver=anna, uid="04AAAA02")
    DriverFactory(name="Ben Carter", email="ben@example.com")
    assert driver_search(q="anna@") == [anna]
    assert driver_search(q="DE VRIES") == [anna]
    assert driver_search(q="04aaaa") == [anna]  # two matching tokens, one driver
    assert [d.name for d in driver_search(q="example.com")] == ["Anna de Vries", "Ben Carter"]
    assert driver_search(q="a") == []  # too short to search
    assert driver_search(q="nobody") == []
