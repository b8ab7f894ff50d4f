"""The one cost function (locations.tariffs) against the worked examples of the OCPI Tariffs
module and a few rules of our own reading: step sizes when elements switch, restrictions by power
and duration, booking fees, minimum and maximum prices, taxes both ways."""

from datetime import datetime, time, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from locations.tariffs import (
    ENERGY,
    FLAT,
    PARKING_TIME,
    TIME,
    Component,
    Element,
    Period,
    Restrictions,
    TariffTerms,
    added,
    booking_fee,
    free,
    session_cost,
)

AMS = ZoneInfo("Europe/Amsterdam")


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=AMS)  # a Monday


def charging(start, minutes, wh=0, **kw):
    return Period(start, start + timedelta(minutes=minutes), D(wh), True, **kw)


def parked(start, minutes):
    return Period(start, start + timedelta(minutes=minutes), D(0), False)


# Charging 1.20/h before 17:00 (steps of 30 min), 2.40/h after (steps of 15 min); parking
# 1.00/h (steps of 15 min) before 20:00, free after.
STEP_TARIFF = TariffTerms(
    currency="EUR",
    elements=(
        Element((Component(TIME, D("1.20"), 1800), Component(PARKING_TIME, D("1.00"), 900)),
                Restrictions(end_time=time(17))),
        Element((Component(TIME, D("2.40"), 900), Component(PARKING_TIME, D("1.00"), 900)),
                Restrictions(start_time=time(17), end_time=time(20))),
        Element((Component(TIME, D("2.40"), 900),), Restrictions(start_time=time(20))),
    ),
)  # fmt: skip


def test_step_size_of_the_last_element_rounds_the_total_and_covers_the_parking_after():
    # Plugs in 16:55, charges 10 min, parks 2 min: 5 min at 1.20, then the 10 min of charging
    # round up to 15 at 2.40 (10 min billed after 17:00), and those cover the 2 min parked.
    cost = session_cost(STEP_TARIFF, [charging(at(16, 55), 10), parked(at(17, 5), 2)], AMS)
    assert cost.before_taxes == D("0.50")


def test_step_size_rounds_the_whole_dimension_at_the_last_price():
    # Charges 16:35-17:10: 25 min at 1.20 = 0.50; 35 min round up to 45, 20 min at 2.40 = 0.80.
    cost = session_cost(STEP_TARIFF, [charging(at(16, 35), 35)], AMS)
    assert cost.before_taxes == D("1.30")


def test_parking_that_becomes_free_is_not_billed():
    # 19:55 charges 10 min (5 before 20:00 at 2.40, rounded to 15 in all after), parks 2 min
    # after 20:00, when parking is free.
    cost = session_cost(STEP_TARIFF, [charging(at(19, 55), 10), parked(at(20, 5), 2)], AMS)
    assert cost.before_taxes == D("0.60")


def test_parking_is_rounded_at_its_own_step_when_it_stops_being_priced():
    # Parks 19:50-20:10 after a long charge: 10 min of parking before 20:00 round up to 15.
    cost = session_cost(STEP_TARIFF, [charging(at(18, 50), 60), parked(at(19, 50), 20)], AMS)
    parking = [line for line in cost.lines if line.dimension == PARKING_TIME]
    assert sum(line.amount for line in parking) == D("0.25")


def test_energy_price_by_power_of_the_moment():
    # < 16 kW 0.20/kWh, 16-32 kW 0.35, above 0.50: 1 kWh at 6 kW, 40 at 48 kW, 0.5 at 4 kW.
    tariff = TariffTerms("EUR", (
        Element((Component(ENERGY, D("0.20")),), Restrictions(max_power=D(16))),
        Element((Component(ENERGY, D("0.35")),), Restrictions(min_power=D(16), max_power=D(32))),
        Element((Component(ENERGY, D("0.50")),)),
    ))  # fmt: skip
    periods = [charging(at(10), 10, 1000, power_kw=D(6)),
               charging(at(10, 10), 50, 40000, power_kw=D(48)),
               charging(at(11), 7, 500, power_kw=D(4))]  # fmt: skip
    assert session_cost(tariff, periods, AMS).before_taxes == D("20.30")


def test_energy_price_by_session_duration():
    # Free for 30 min, 0.25/kWh up to 60 min, 0.40 after: 5 kWh in 30 min, 1.2 kWh in 10 more.
    tariff = TariffTerms("EUR", (
        Element((Component(ENERGY, D("0.00")),), Restrictions(max_duration=1800)),
        Element((Component(ENERGY, D("0.25")),), Restrictions(max_duration=3600)),
        Element((Component(ENERGY, D("0.40")),)),
    ))  # fmt: skip
    periods = [charging(at(10), 30, 5000), charging(at(10, 30), 10, 1200)]
    assert session_cost(tariff, periods, AMS).before_taxes == D("0.30")


def test_energy_restriction_cuts_a_period_where_the_session_reaches_it():
    # 0.30/kWh for the first 10 kWh, 0.20 after: one 20 kWh period is split at 10 kWh.
    tariff = TariffTerms("EUR", (
        Element((Component(ENERGY, D("0.30")),), Restrictions(max_kwh=D(10))),
        Element((Component(ENERGY, D("0.20")),)),
    ))  # fmt: skip
    cost = session_cost(tariff, [charging(at(10), 60, 20000)], AMS)
    assert cost.before_taxes == D("5.00")
    assert [(line.volume, line.price) for line in cost.lines] == [
        (D("10.0000"), D("0.30")), (D("10.0000"), D("0.20"))
    ]  # fmt: skip


def test_energy_step_size_rounds_up_in_watt_hours():
    tariff = TariffTerms("EUR", (Element((Component(ENERGY, D("0.25"), 500),)),))
    assert session_cost(tariff, [charging(at(10), 5, D("115.2"))], AMS).before_taxes == D("0.125")


def test_flat_fee_once_and_night_hours_across_midnight_and_weekdays():
    tariff = TariffTerms("EUR", (
        Element((Component(FLAT, D("0.50")), Component(ENERGY, D("0.30"))),
                Restrictions(start_time=time(22), end_time=time(6))),
        Element((Component(ENERGY, D("0.40")),), Restrictions(day_of_week=frozenset({"MONDAY"}))),
        Element((Component(FLAT, D("1.00")), Component(ENERGY, D("0.45")))),
    ))  # fmt: skip
    # Monday 21:00 to Tuesday 01:00, 10 kWh an hour: 1 h Monday day rate, 3 h night rate.
    cost = session_cost(tariff, [charging(at(21), 240, 40000)], AMS)
    assert cost.before_taxes == D("1.00") + D("4.00") + D("9.00")  # flat of the first hour
    tuesday = session_cost(tariff, [charging(at(12, day=3), 60, 10000)], AMS)
    assert tuesday.before_taxes == D("1.00") + D("4.50")


def test_min_and_max_price_and_taxes_both_ways():
    base = (Element((Component(ENERGY, D("0.50")),)),)
    excl = TariffTerms("EUR", base, tax_included="NO", tax_percentage=D("21"), min_price=D("2"))
    small = session_cost(excl, [charging(at(10), 10, 1000)], AMS)
    assert (small.before_taxes, small.after_taxes, small.taxes) == (D("2"), D("2.42"), D("0.42"))
    incl = TariffTerms("EUR", base, tax_included="YES", tax_percentage=D("21"), max_price=D("5"))
    big = session_cost(incl, [charging(at(10), 60, 20000)], AMS)  # 10.00 incl. = 8.2645 excl.
    assert (big.before_taxes, big.after_taxes) == (D("5"), D("6.05"))
    yen = TariffTerms("JPY", (Element((Component(ENERGY, D("55")),)),), tax_included="YES",
                      tax_percentage=D("10"))  # fmt: skip
    rounded = session_cost(yen, [charging(at(10), 60, 12345)], AMS).rounded()
    assert (rounded.before_taxes, rounded.after_taxes) == (D("617"), D("679"))


def test_no_show_and_booking_fees():
    tariff = TariffTerms("EUR", (
        Element((Component(TIME, D("4.00")),), Restrictions(reservation="RESERVATION")),
        Element((Component(TIME, D("6.00")), Component(FLAT, D("1.00"))),
                Restrictions(reservation="RESERVATION_EXPIRES")),
        Element((Component(FLAT, D("2.50")),),
                Restrictions(reservation="RESERVATION_CANCELLATION_FEES")),
        Element((Component(ENERGY, D("0.30")),)),
    ), tax_included="NO", tax_percentage=D("20"))  # fmt: skip
    expired = booking_fee(tariff, kind="RESERVATION_EXPIRES", held=timedelta(hours=1.5))
    assert (expired.before_taxes, expired.after_taxes) == (D("10.00"), D("12.00"))
    held = booking_fee(tariff, kind="RESERVATION", held=timedelta(minutes=30))
    assert held.before_taxes == D("2.00")
    assert booking_fee(tariff, kind="RESERVATION_CANCELLATION_FEES").before_taxes == D("2.50")
    assert booking_fee(tariff, kind="RESERVATION_OVERTIME").before_taxes == 0
    # Booking elements never price the session itself.
    assert session_cost(tariff, [charging(at(10), 60, 10000)], AMS).before_taxes == D("3.00")


def test_a_session_and_its_booking_fees_add_up_in_one_currency():
    tariff = TariffTerms("EUR", (
        Element((Component(FLAT, D("2.00")),), Restrictions(reservation="RESERVATION")),
        Element((Component(ENERGY, D("0.30")),)),
    ), tax_included="NO", tax_percentage=D("20"))  # fmt: skip
    session = session_cost(tariff, [charging(at(10), 60, 10000)], AMS)
    total = added(session, booking_fee(tariff, kind="RESERVATION"))
    assert (total.before_taxes, total.after_taxes) == (D("5.00"), D("6.00"))
    assert [line.dimension for line in total.lines] == [ENERGY, FLAT]
    assert added(free("EUR")).before_taxes == 0
    with pytest.raises(ValueError):
        added(session, free("USD"))


@pytest.mark.parametrize("hours", [1, 2, 3])
def test_a_session_across_the_dst_change_is_priced_by_local_time(hours):
    # 2026-10-25, Amsterdam falls back at 03:00 CEST: 01:00-04:00 local is 4 real hours.
    tariff = TariffTerms("EUR", (
        Element((Component(TIME, D("1.00")),), Restrictions(end_time=time(2))),
        Element((Component(TIME, D("2.00")),)),
    ))  # fmt: skip
    start = datetime(2026, 10, 25, 1, 0, tzinfo=AMS)
    cost = session_cost(tariff, [Period(start, start + timedelta(hours=hours), D(0))], AMS)
    # The first real hour (01:00-02:00 CEST) at 1.00, the rest at 2.00.
    assert cost.before_taxes == D("1.00") + D("2.00") * (hours - 1)


@pytest.mark.django_db
def test_the_admin_tariff_prices_as_its_plain_terms():
    from locations.selectors import tariff_list, tariff_terms
    from tests.locations.factories import (
        PriceComponentFactory,
        TariffElementFactory,
        TariffFactory,
    )

    tariff = TariffFactory(tax_included="NO", tax_percentage=D("21"))
    night = TariffElementFactory(tariff=tariff, position=0, start_time=time(22), end_time=time(6))
    PriceComponentFactory(element=night, type=ENERGY, price=D("0.25"))
    day = TariffElementFactory(tariff=tariff, position=1)
    PriceComponentFactory(element=day, type=ENERGY, price=D("0.40"), step_size=100)
    terms = tariff_terms(tariff_list().get(pk=tariff.pk))
    cost = session_cost(terms, [charging(at(21), 120, 20000)], AMS)  # 10 kWh by day, 10 by night
    assert (cost.before_taxes, cost.after_taxes) == (D("6.50"), D("7.865"))
