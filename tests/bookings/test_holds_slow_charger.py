"""A charger that answers slowly (issue 18, finding 8): OCPP allows one call in flight per
connection, so its commands wait their turn; each is given the full timeout from when it is
sent, what cannot be sent in a round is due again at once, and the other chargers of the same
sweep are held meanwhile."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, TokenType
from bookings.sweeps import sweep_reservations
from chargers import gateway
from chargers.models import ChargerReservation, Reservation
from tests.bookings.factories import BookingFactory, BookingTokenFactory
from tests.locations.factories import BookingPolicyFactory, ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db(transaction=True)

SLOW_ANSWER_SECONDS = 0.5  # per ReserveNow; the test stack's command timeout is 3 s


def _cp(evses: int):
    cp = ChargePointFactory(ocpp_version="1.6")
    BookingPolicyFactory(location=cp.location, slot_step_minutes=1, min_duration_minutes=1)
    for n in range(1, evses + 1):
        EVSEFactory(charge_point=cp, ocpp_evse_id=n)
    return cp


def _book_every_evse(cp) -> list[Booking]:
    start = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)
    bookings = []
    for evse in cp.evses.order_by("ocpp_evse_id"):
        booking = BookingFactory(evse=evse, start=start)
        BookingTokenFactory(booking=booking, uid=f"TAG-{booking.pk}", type=TokenType.RFID)
        bookings.append(booking)
    return bookings


def _states(bookings: list[Booking]) -> Counter:
    return Counter(
        Booking.objects.filter(pk__in=[b.pk for b in bookings]).values_list(
            "charger_reservation", flat=True
        )
    )


def test_slow_charger_gets_every_reserve_now_once_without_starving_a_fast_one(stack):
    slow_cp, fast_cp = _cp(10), _cp(4)
    slow = stack.charger(slow_cp, answer_delay=SLOW_ANSWER_SECONDS)
    fast = stack.charger(fast_cp)
    slow_bookings, fast_bookings = _book_every_evse(slow_cp), _book_every_evse(fast_cp)

    first = sweep_reservations(enqueue=False)

    # One round of the bus: the fast charger is held whole; the slow one answered what it
    # could and the rest was not sent at all (not timed out, not backed off).
    assert first["reserve"] == 14
    assert _states(fast_bookings) == {ChargerReservation.HELD: 4}
    assert len(fast.reservations) == 4
    unsent = Reservation.objects.filter(
        booking_id__in=[b.pk for b in slow_bookings], status=ChargerReservation.OFFLINE
    )
    assert len(slow.reservations) + unsent.count() == 10
    assert all(r.next_attempt_at <= timezone.now() for r in unsent)
    assert not Reservation.objects.filter(detail__contains="did not answer").exists()

    for _ in range(10):  # bounded: each round sends a few more
        if len(slow.reservations) == 10:
            break
        sweep_reservations(enqueue=False)

    assert _states(slow_bookings) == {ChargerReservation.HELD: 10}
    sent = Counter(r.payload["reservation_id"] for r in slow.received if r.action == "ReserveNow")
    assert set(sent.values()) == {1}  # each placement was sent once: no timed-out duplicates
    assert set(sent) == set(slow.reservations)


def test_command_queued_behind_slow_calls_is_answered_not_sent(stack):
    cp = _cp(3)
    sim = stack.charger(cp, answer_delay=1.0)
    commands = [
        gateway.reserve_now_command(
            charge_point_id=cp.identity,
            reservation_id=n,
            evse_id=n,
            expires_at=timezone.now() + timedelta(minutes=20),
            id_tag=f"T{n}",
        )
        for n in (1, 2, 3)
    ]
    replies = gateway.send(commands, timeout=1.5)
    # The first two go out within the 1.5 s a command may wait for its turn, and each has the
    # full 1.5 s to be answered; the third's turn would come after 2 s, so it is not sent.
    assert [replies[c.id].status for c in commands] == ["Accepted", "Accepted", gateway.NOT_SENT]
    assert sorted(sim.reservations) == [1, 2]
