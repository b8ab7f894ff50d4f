"""Property: random sequences of create/change/cancel against the real database keep the
invariants after every step.

- no two active bookings of one EVSE overlap (checked by SQL, not by the code under test);
- for every EVSE, the free intervals and the booked intervals are disjoint and together cover
  exactly the opening hours of the day (policy with no buffer and a one-step minimum, so no
  sliver of time is legitimately unbookable).
"""

import contextlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings.availability import Interval, clip, local_day_window, merge
from bookings.exceptions import BookingError
from bookings.models import Booking
from bookings.selectors import location_availability
from bookings.services import Actor, booking_cancel, booking_change, booking_create
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db

AMS = ZoneInfo("Europe/Amsterdam")
DAY = datetime(2026, 6, 2).date()  # a Tuesday, open 08:00-20:00
NOW = datetime(2026, 6, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
FIRST_SLOT = datetime(2026, 6, 2, 7, 0, tzinfo=AMS)  # an hour before opening: some refusals
SLOTS = 14 * 4  # 07:00 .. 21:00
ACTOR = Actor.system("property")


@pytest.fixture
def site():
    location = LocationFactory()
    RegularHoursFactory(location=location, weekday=2, period_begin="08:00", period_end="20:00")
    BookingPolicyFactory(location=location, slot_step_minutes=15, min_duration_minutes=15,
                         max_duration_minutes=240, buffer_minutes=0)  # fmt: skip
    cp = ChargePointFactory(location=location)
    return location, [EVSEFactory(charge_point=cp, ocpp_evse_id=i) for i in (1, 2, 3)]


slot = st.integers(min_value=0, max_value=SLOTS - 1)
length = st.integers(min_value=1, max_value=12)
evse_index = st.integers(min_value=0, max_value=2)
booking_index = st.integers(min_value=0, max_value=20)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), evse_index, slot, length),
        st.tuples(st.just("change"), booking_index, evse_index, slot, length),
        st.tuples(st.just("cancel"), booking_index),
    ),
    min_size=1,
    max_size=14,
)


def overlapping_pairs() -> int:
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT count(*) FROM bookings_booking a JOIN bookings_booking b
              ON a.evse_id = b.evse_id AND a.id < b.id AND a.blocked_period && b.blocked_period
            WHERE a.status IN ('PENDING', 'RESERVED') AND b.status IN ('PENDING', 'RESERVED')
            """
        )
        return cur.fetchone()[0]


def check_invariants(location, evses) -> None:
    assert overlapping_pairs() == 0
    window = local_day_window(DAY, AMS)
    result = location_availability(
        location=location, start=window.start, end=window.end, now=NOW, with_bookings=True
    )
    for entry in result.evses:
        booked = clip(
            [Interval(b.period.lower, b.period.upper) for b in entry.busy], window
        )  # fmt: skip
        for free in entry.free:
            assert not any(free.overlaps(b) for b in booked), (free, booked)
        assert merge([*entry.free, *booked]) == result.open_time


def apply(op, evses, made: list[int]) -> None:
    kind = op[0]
    if kind == "create":
        _, e, s, n = op
        start = FIRST_SLOT + s * STEP
        booking = booking_create(evse=evses[e], start=start, end=start + n * STEP, actor=ACTOR,
                                 now=NOW)  # fmt: skip
        made.append(booking.pk)
    elif made:
        pk = made[op[1] % len(made)]
        if kind == "change":
            _, _, e, s, n = op
            start = FIRST_SLOT + s * STEP
            booking_change(booking=pk, actor=ACTOR, evse=evses[e], start=start,
                           end=start + n * STEP, now=NOW)  # fmt: skip
        else:
            booking_cancel(booking=pk, actor=ACTOR, now=NOW)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_bookings_random_sequences_keep_the_invariants(site, ops):
    location, evses = site
    with transaction.atomic():  # each example starts from no bookings
        made: list[int] = []
        for op in ops:
            # A refusal is a valid outcome; the invariants must hold either way.
            with contextlib.suppress(BookingError):
                apply(op, evses, made)
            check_invariants(location, evses)
        transaction.set_rollback(True)
    assert not Booking.objects.exists()
