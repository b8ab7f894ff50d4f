"""What the desk must not miss (issue 15): bookings_outside_rules and bookings_needing_attention
find the active bookings that the rules as they stand would refuse, with the create path's own
messages."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings.models import Booking, Status
from bookings.selectors import bookings_needing_attention, bookings_outside_rules
from bookings.services import Actor, booking_create
from locations.models import EVSEStatus, ExceptionalPeriod
from tests.bookings.factories import BookingFactory
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    ExceptionalPeriodFactory,
    LocationFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2027, 3, 1, 6, 0, tzinfo=AMS)  # a Monday morning
TUESDAY_10 = datetime(2027, 3, 2, 10, 0, tzinfo=AMS)


@pytest.fixture
def site():
    location = LocationFactory(time_zone="Europe/Amsterdam", name="Nieuwmarkt")
    policy = BookingPolicyFactory(location=location, max_duration_minutes=240)
    cp = ChargePointFactory(location=location)
    return (
        location, policy, EVSEFactory(charge_point=cp, physical_reference="1A"),
        EVSEFactory(charge_point=cp, physical_reference="1B"),
    )  # fmt: skip


def _book(evse, start=TUESDAY_10, hours=2) -> Booking:
    # Through the create path: the booking kept every rule when it was made.
    return booking_create(
        evse=evse, start=start, end=start + timedelta(hours=hours),
        actor=Actor.system(), now=NOW,
    )  # fmt: skip


def _found(location):
    return {b.booking.pk: b.reason for b in bookings_outside_rules(location=location, now=NOW)}


def test_nothing_is_outside_the_rules_it_was_made_under(site):
    location, _, evse, _ = site
    _book(evse)
    assert _found(location) == {}


def test_an_exceptional_closing_puts_the_booking_outside_with_the_create_paths_message(site):
    location, _, evse, other = site
    hit = _book(evse)
    spared = _book(other, start=TUESDAY_10 + timedelta(hours=3))
    ExceptionalPeriodFactory(
        location=location, kind=ExceptionalPeriod.Kind.CLOSING,
        period_begin=TUESDAY_10 + timedelta(hours=1), period_end=TUESDAY_10 + timedelta(hours=2),
    )  # fmt: skip
    found = _found(location)
    assert found == {hit.pk: "Nieuwmarkt is closed for part of Tue 02 Mar 10:00–12:00."}
    assert spared.pk not in found


def test_shorter_regular_hours_put_a_booking_outside(site):
    location, _, evse, _ = site
    booking = _book(evse, start=TUESDAY_10 + timedelta(hours=8))  # 18:00-20:00
    location.twentyfourseven = False
    location.save()
    for weekday in range(1, 8):
        RegularHoursFactory(
            location=location, weekday=weekday, period_begin="07:00", period_end="19:00"
        )
    assert "closed for part of Tue 02 Mar 18:00–20:00" in _found(location)[booking.pk]


def test_booking_switched_off_and_an_evse_out_of_order_put_its_bookings_outside(site):
    location, _, evse, other = site
    off = _book(evse)
    broken = _book(other)
    evse.booking_enabled = False
    evse.save()
    other.status = EVSEStatus.OUTOFORDER
    other.save()
    assert _found(location) == {
        off.pk: "Booking is switched off for this EVSE.",
        broken.pk: "The EVSE is out of order.",
    }


def test_a_tightened_policy_puts_longer_bookings_outside(site):
    location, policy, evse, other = site
    long = _book(evse, hours=3)
    short = _book(other, hours=1)
    policy.max_duration_minutes = 120
    policy.save()
    assert _found(location) == {long.pk: "A booking here lasts at most 120 minutes."}
    assert short.pk not in _found(location)


def test_an_evse_override_is_the_policy_that_judges_its_bookings(site):
    location, _, evse, other = site
    on_evse = _book(evse, hours=2)
    elsewhere = _book(other, hours=2)
    BookingPolicyFactory(
        location=None, evse=evse, min_duration_minutes=180, max_duration_minutes=240
    )
    assert set(_found(location)) == {on_evse.pk}
    assert elsewhere.pk not in _found(location)


def test_a_coarser_grid_puts_bookings_off_it_outside(site):
    location, policy, evse, _ = site
    booking = _book(evse, start=TUESDAY_10 + timedelta(minutes=15))
    policy.slot_step_minutes = 30
    policy.save()
    assert _found(location)[booking.pk].startswith("Bookings start and end on the 30-minute grid")


def test_a_longer_buffer_puts_a_booking_whose_buffer_meets_the_next_outside(site):
    location, policy, evse, other = site
    first = _book(evse, start=TUESDAY_10, hours=1)  # 10:00-11:00
    _book(evse, start=TUESDAY_10 + timedelta(minutes=75), hours=1)  # 11:15-12:15
    spaced = _book(other, start=TUESDAY_10, hours=1)
    _book(other, start=TUESDAY_10 + timedelta(hours=2), hours=1)  # 12:00: 60 min apart
    assert _found(location) == {}
    policy.buffer_minutes = 30
    policy.save()
    assert _found(location) == {
        first.pk: "1A is already booked around Tue 02 Mar 10:00 (with 30 minutes kept free "
        "between bookings)."
    }
    assert spaced.pk not in _found(location)


def test_only_active_bookings_that_have_not_ended_are_judged(site):
    location, policy, evse, other = site
    canceled = BookingFactory(evse=evse, start=TUESDAY_10, duration=timedelta(hours=3),
                              status=Status.CANCELED)  # fmt: skip
    fulfilled = BookingFactory(evse=other, start=NOW - timedelta(hours=1),
                               duration=timedelta(hours=3), status=Status.FULFILLED)  # fmt: skip
    ended = BookingFactory(evse=evse, start=NOW - timedelta(hours=5), duration=timedelta(hours=3))
    running = BookingFactory(evse=evse, start=NOW - timedelta(hours=1), duration=timedelta(hours=3))
    policy.max_duration_minutes = 60
    policy.save()
    found = _found(location)
    assert running.pk in found
    assert not {canceled.pk, fulfilled.pk, ended.pk} & set(found)


def test_a_reserve_now_hold_is_judged_by_its_own_rules(site):
    location, _policy, evse, _ = site
    hold = BookingFactory(
        evse=evse, start=NOW + timedelta(minutes=7), duration=timedelta(minutes=23),
        channel=Booking.Channel.COMMAND, emsp_country_code="NL", emsp_party_id="EMS",
        request_id="r1",
    )  # fmt: skip
    assert _found(location) == {}  # off the grid and short, as ReserveNow may be
    evse.booking_enabled = False
    evse.save()
    assert _found(location) == {hold.pk: "Booking is switched off for this EVSE."}


def test_other_locations_bookings_are_not_listed(site):
    location, _policy, _, _ = site
    elsewhere = EVSEFactory(charge_point=ChargePointFactory(location=LocationFactory()))
    BookingPolicyFactory(location=elsewhere.charge_point.location, max_duration_minutes=60)
    BookingFactory(evse=elsewhere, start=TUESDAY_10, duration=timedelta(hours=3))
    assert _found(location) == {}


def test_needing_attention_adds_bookings_whose_charger_could_not_hold_them(site):
    location, policy, evse, other = site
    long = _book(evse, hours=3)
    flagged = _book(other)
    Booking.objects.filter(pk=flagged.pk).update(needs_attention=True)
    policy.max_duration_minutes = 120
    policy.save()
    items = bookings_needing_attention(location=location, now=NOW)
    assert [(i.booking.pk, len(i.reasons)) for i in items] == [(long.pk, 1), (flagged.pk, 1)]
    assert "could not hold it" in items[1].reasons[0]


def test_outside_rules_runs_a_fixed_number_of_queries(site, django_assert_max_num_queries):
    location, policy, evse, _other = site
    for day in range(5):
        _book(evse, start=TUESDAY_10 + timedelta(days=day), hours=3)
    more = [EVSEFactory(charge_point=evse.charge_point) for _ in range(4)]
    for e in more:
        _book(e, hours=3)
    policy.max_duration_minutes = 120
    policy.save()
    location = LocationFactory._meta.model.objects.get(pk=location.pk)
    with django_assert_max_num_queries(5):
        found = bookings_outside_rules(location=location, now=NOW)
    assert len(found) == 9
    with django_assert_max_num_queries(5):
        assert [str(b.booking.evse) for b in found]  # EVSEs loaded, no query per row
