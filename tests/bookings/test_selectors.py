from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings.availability import Interval
from bookings.exceptions import InvalidWindow, UnknownEVSE, UnknownLocation
from bookings.models import Status
from bookings.selectors import Criteria, evse_choose, location_availability
from locations.models import EVSEStatus
from tests.bookings.factories import BookingFactory
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
NOW = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # Monday 08:00 in Amsterdam
DAY_START = datetime(2026, 6, 2, 0, 0, tzinfo=AMS)  # Tuesday
DAY_END = DAY_START + timedelta(days=1)


def ams(h, m=0, day=2) -> datetime:
    return datetime(2026, 6, day, h, m, tzinfo=AMS)


@pytest.fixture
def site():
    location = LocationFactory()
    BookingPolicyFactory(location=location, min_duration_minutes=30)
    cp = ChargePointFactory(location=location)
    evses = [EVSEFactory(charge_point=cp, ocpp_evse_id=i) for i in (1, 2)]
    return location, evses


def free_of(result, evse):
    return next(e.free for e in result.evses if e.evse.pk == evse.pk)


def test_location_availability_whole_day_free_per_evse(site):
    location, evses = site
    result = location_availability(location=location, start=DAY_START, end=DAY_END, now=NOW)
    assert [e.evse.pk for e in result.evses] == [e.pk for e in evses]
    for e in result.evses:
        assert e.free == [Interval(DAY_START.astimezone(UTC), DAY_END.astimezone(UTC))]
        assert e.bookable and not e.offline


def test_location_availability_by_ocpi_id_and_pk(site):
    location, _ = site
    by_ocpi = location_availability(location=location.ocpi_id, start=DAY_START, end=DAY_END,
                                    now=NOW)  # fmt: skip
    by_pk = location_availability(location=location.pk, start=DAY_START, end=DAY_END, now=NOW)
    assert by_ocpi.evses[0].free == by_pk.evses[0].free


def test_location_availability_counts_only_active_bookings(site):
    location, (first, second) = site
    BookingFactory(evse=first, start=ams(10), status=Status.RESERVED)
    BookingFactory(evse=first, start=ams(14), status=Status.PENDING)
    BookingFactory(evse=first, start=ams(17), status=Status.FULFILLED)  # keeps its slot
    for status in (Status.CANCELED, Status.NO_SHOW, Status.REJECTED, Status.FAILED):
        BookingFactory(evse=second, start=ams(10), status=status)
    result = location_availability(location=location, start=DAY_START, end=DAY_END, now=NOW)
    assert free_of(result, first) == [
        Interval(DAY_START.astimezone(UTC), ams(10).astimezone(UTC)),
        Interval(ams(11).astimezone(UTC), ams(14).astimezone(UTC)),
        Interval(ams(15).astimezone(UTC), ams(17).astimezone(UTC)),
        Interval(ams(18).astimezone(UTC), DAY_END.astimezone(UTC)),
    ]
    assert free_of(result, second) == [Interval(DAY_START.astimezone(UTC), DAY_END.astimezone(UTC))]


def test_location_availability_booking_just_after_window_cuts_its_end_by_the_buffer():
    location = LocationFactory()
    BookingPolicyFactory(location=location, buffer_minutes=15)
    evse = EVSEFactory(charge_point__location=location)
    BookingFactory(evse=evse, start=DAY_END.astimezone(UTC), buffer=timedelta(minutes=15))
    result = location_availability(location=location, start=DAY_START, end=DAY_END, now=NOW)
    assert free_of(result, evse)[-1].end == (DAY_END - timedelta(minutes=15)).astimezone(UTC)


def test_location_availability_respects_opening_hours():
    location = LocationFactory(twentyfourseven=False)
    RegularHoursFactory(location=location, weekday=2, period_begin="08:00", period_end="20:00")
    evse = EVSEFactory(charge_point__location=location)
    result = location_availability(location=location, start=DAY_START, end=DAY_END, now=NOW)
    assert free_of(result, evse) == [Interval(ams(8).astimezone(UTC), ams(20).astimezone(UTC))]
    assert result.open_time == free_of(result, evse)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"booking_enabled": False}, "Booking is switched off"),
        ({"status": EVSEStatus.OUTOFORDER}, "out of order"),
        ({"status": EVSEStatus.REMOVED}, "removed"),
    ],
)
def test_location_availability_unbookable_evses_have_no_free_time(site, fields, reason):
    location, (first, second) = site
    for name, value in fields.items():
        setattr(second, name, value)
    second.save()
    result = location_availability(location=location, start=DAY_START, end=DAY_END, now=NOW)
    assert [e.evse.pk for e in result.evses] == [first.pk]
    shown = location_availability(
        location=location, start=DAY_START, end=DAY_END, now=NOW, include_unbookable=True
    )
    entry = next(e for e in shown.evses if e.evse.pk == second.pk)
    assert entry.free == [] and not entry.bookable
    assert reason.lower() in entry.reason.lower()


def test_location_availability_offline_charger_is_bookable_but_flagged():
    location = LocationFactory()
    evse = EVSEFactory(charge_point__location=location, charge_point__is_connected=False)
    result = location_availability(location=location, start=DAY_START, end=DAY_END, now=NOW)
    (entry,) = result.evses
    assert entry.evse.pk == evse.pk and entry.offline and entry.bookable and entry.free


def test_location_availability_criteria_filter_evses():
    location = LocationFactory()
    cp = ChargePointFactory(location=location)
    ac = EVSEFactory(charge_point=cp, ocpp_evse_id=1)  # 22 kW Type 2
    dc = EVSEFactory(charge_point=cp, ocpp_evse_id=2, connectors=[])
    ConnectorFactory(evse=dc, dc=True)  # 150 kW CCS2

    def evses_for(**criteria):
        result = location_availability(
            location=location, start=DAY_START, end=DAY_END, now=NOW,
            criteria=Criteria(**criteria),
        )  # fmt: skip
        return [e.evse.pk for e in result.evses]

    assert evses_for() == [ac.pk, dc.pk]
    assert evses_for(power_type="AC") == [ac.pk]
    assert evses_for(power_type="DC") == [dc.pk]
    assert evses_for(standards=("IEC_62196_T2_COMBO",)) == [dc.pk]
    assert evses_for(min_power_kw=50) == [dc.pk]
    assert evses_for(max_power_kw=50) == [ac.pk]
    assert evses_for(power_type="DC", max_power_kw=50) == []


def test_location_availability_one_evse(site):
    location, (first, _) = site
    result = location_availability(
        location=location, evse=first.uid, start=DAY_START, end=DAY_END, now=NOW
    )
    assert [e.evse.pk for e in result.evses] == [first.pk]


def test_location_availability_with_bookings_lists_them(site):
    location, (first, _) = site
    booking = BookingFactory(evse=first, start=ams(10))
    result = location_availability(
        location=location, start=DAY_START, end=DAY_END, now=NOW, with_bookings=True
    )
    assert [b.pk for b in result.evses[0].busy] == [booking.pk]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (DAY_START, DAY_START + timedelta(days=7, minutes=1), "at most 7 days"),
        (DAY_END, DAY_START, "after its start"),
        (DAY_START, DAY_START, "after its start"),
        (datetime(2026, 6, 2, 0, 0), datetime(2026, 6, 3, 0, 0), "time zone"),
        (None, DAY_END, "start and the end"),
    ],
)
def test_location_availability_invalid_window(site, start, end, message):
    location, _ = site
    with pytest.raises(InvalidWindow, match=message) as info:
        location_availability(location=location, start=start, end=end, now=NOW)
    assert info.value.code == "invalid_window"


def test_location_availability_seven_days_is_allowed(site):
    location, _ = site
    result = location_availability(
        location=location, start=DAY_START, end=DAY_START + timedelta(days=7), now=NOW
    )
    assert len(result.evses) == 2


def test_location_availability_unknown_location_and_evse(site):
    location, _ = site
    with pytest.raises(UnknownLocation) as info:
        location_availability(location="NOPE", start=DAY_START, end=DAY_END, now=NOW)
    assert info.value.code == "unknown_location"
    with pytest.raises(UnknownEVSE, match="NOPE"):
        location_availability(location=location, evse="NOPE", start=DAY_START, end=DAY_END,
                              now=NOW)  # fmt: skip


def test_location_availability_fixed_number_of_queries(django_assert_num_queries):
    location = LocationFactory()
    cp = ChargePointFactory(location=location)
    few = [EVSEFactory(charge_point=cp, ocpp_evse_id=i) for i in (1, 2)]
    BookingFactory(evse=few[0], start=ams(10))
    # The location with its policy, hours and periods; its EVSEs with charge point and policy;
    # their connectors; the blocked time; the running sessions.
    with django_assert_num_queries(7):
        location_availability(location=location.pk, start=DAY_START, end=DAY_END, now=NOW)
    for i in range(3, 13):
        evse = EVSEFactory(charge_point=cp, ocpp_evse_id=i)
        BookingFactory(evse=evse, start=ams(9 + i % 5))
    with django_assert_num_queries(7):
        result = location_availability(location=location.pk, start=DAY_START, end=DAY_END, now=NOW)
    assert len(result.evses) == 12


# --- evse_choose --------------------------------------------------------------------------


def test_evse_choose_prefers_the_evse_whose_gap_the_slot_fills():
    location = LocationFactory()
    BookingPolicyFactory(location=location, min_duration_minutes=30)
    cp = ChargePointFactory(location=location)
    open_evse = EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    tight = EVSEFactory(charge_point=cp, ocpp_evse_id=2)
    BookingFactory(evse=tight, start=ams(9))  # 09-10
    BookingFactory(evse=tight, start=ams(11))  # 11-12: a one-hour gap at 10-11
    chosen = evse_choose(location=location, start=ams(10), end=ams(11), now=NOW)
    assert chosen.pk == tight.pk
    # A slot that would leave a useless 15-minute sliver in the gap goes elsewhere.
    chosen = evse_choose(location=location, start=ams(10), end=ams(10, 45), now=NOW)
    assert chosen.pk == open_evse.pk


def test_evse_choose_is_deterministic_in_display_order():
    location = LocationFactory()
    cp = ChargePointFactory(location=location, identity="CP-B")
    other_cp = ChargePointFactory(location=location, identity="CP-A")
    EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    first = EVSEFactory(charge_point=other_cp, ocpp_evse_id=2)
    picks = {
        evse_choose(location=location, start=ams(10), end=ams(11), now=NOW).pk for _ in range(5)
    }
    assert picks == {first.pk}


def test_evse_choose_honours_criteria_and_returns_none_when_nothing_fits():
    location = LocationFactory()
    cp = ChargePointFactory(location=location)
    ac = EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    dc = EVSEFactory(charge_point=cp, ocpp_evse_id=2, connectors=[])
    ConnectorFactory(evse=dc, dc=True)
    assert evse_choose(
        location=location, start=ams(10), end=ams(11), now=NOW, criteria=Criteria(power_type="DC")
    ).pk == dc.pk  # fmt: skip
    BookingFactory(evse=dc, start=ams(10))
    assert (
        evse_choose(
            location=location,
            start=ams(10),
            end=ams(11),
            now=NOW,
            criteria=Criteria(power_type="DC"),
        )
        is None
    )
    assert evse_choose(location=location, start=ams(10), end=ams(11), now=NOW).pk == ac.pk
