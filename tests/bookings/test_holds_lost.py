"""Holds a charger lost (issue 18, finding 4): a charger that reboots forgets its reservations,
so they are sent again on its boot; one that reconnected gets them again from the reconciling
sweep; and a CancelReservation the charger rejects for a hold it had accepted is recorded as a
lost hold, not as a cancel that worked. Real csms, Redis bus and simulated chargers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, BookingTransition, TokenType
from bookings.services import Actor, booking_cancel
from bookings.sweeps import sweep_reservations
from chargers.models import ChargerReservation, Reservation
from chargers.simulator import SimulatedCharger
from locations.models import ChargePoint
from tests.bookings.factories import BookingFactory, BookingTokenFactory
from tests.chargers.fixtures import wait_for
from tests.locations.factories import (
    CHARGER_PASSWORD,
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

CR = ChargerReservation


def _held(version: str, stack):
    """A charger holding two bookings, as the sweep placed them."""
    cp = ChargePointFactory(ocpp_version=version)
    BookingPolicyFactory(location=cp.location, slot_step_minutes=1, min_duration_minutes=1)
    for n in (1, 2):
        EVSEFactory(charge_point=cp, ocpp_evse_id=n)
    sim = stack.charger(cp)
    start = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)
    bookings = []
    for evse in cp.evses.order_by("ocpp_evse_id"):
        booking = BookingFactory(evse=evse, start=start)
        BookingTokenFactory(booking=booking, uid=f"TAG-{booking.pk}", type=TokenType.RFID)
        bookings.append(booking)
    sweep_reservations(enqueue=False)
    placed = sorted(Reservation.objects.values_list("pk", flat=True))
    assert sorted(sim.reservations) == placed
    assert _hold_states(bookings) == [CR.HELD, CR.HELD]
    return cp, sim, bookings, placed


def _hold_states(bookings: list[Booking]) -> list[str]:
    return [Booking.objects.get(pk=b.pk).charger_reservation for b in bookings]


def _charger_audit(booking: Booking) -> list[tuple[str, str]]:
    return list(
        BookingTransition.objects.filter(booking=booking, event="CHARGER")
        .order_by("pk")
        .values_list("code", "reason")
    )


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_charger_that_reboots_gets_its_holds_again_on_boot(stack, version):
    cp, sim, bookings, placed = _held(version, stack)

    stack.run(sim.disconnect())
    rebooted = stack.charger(cp)  # a new process on the charger: it holds nothing

    # On its boot, without waiting for a sweep: the same placements (same reservation ids).
    wait_for(lambda: sorted(rebooted.reservations) == placed)
    wait_for(lambda: _hold_states(bookings) == [CR.HELD, CR.HELD])
    for booking in bookings:
        codes = [code for code, _ in _charger_audit(booking)]
        assert codes[-2:] == [CR.RESEND, CR.HELD]
        assert "restarted" in _charger_audit(booking)[-2][1]
    assert set(Reservation.objects.values_list("status", flat=True)) == {CR.HELD}
    # The next sweep finds nothing more to send.
    assert sweep_reservations(enqueue=False)["resend"] == 0
    assert len([r for r in rebooted.received if r.action == "ReserveNow"]) == 2


def test_sweep_resends_the_holds_of_a_charger_that_reconnected_without_a_boot(stack):
    cp, sim, bookings, placed = _held("1.6", stack)

    first_connected = ChargePoint.objects.get(pk=cp.pk).connected_at
    stack.run(sim.disconnect())
    # Back after a network cut, or its boot's announcement was lost: no BootNotification.
    back = SimulatedCharger(stack.url(), cp.identity, password=CHARGER_PASSWORD)
    stack.run(back.connect(boot=False))
    try:
        assert back.reservations == {}
        # The csms records the connection just after the handshake.
        wait_for(lambda: ChargePoint.objects.get(pk=cp.pk).connected_at > first_connected)
        counts = sweep_reservations(enqueue=False)
        assert (counts["resend"], counts["reserve"]) == (2, 2)
        assert sorted(back.reservations) == placed
        assert _hold_states(bookings) == [CR.HELD, CR.HELD]
        assert "reconnected" in _charger_audit(bookings[0])[-2][1]
    finally:
        stack.run(back.disconnect())


def test_rejected_cancel_of_a_hold_the_charger_had_accepted_is_recorded_as_lost(stack, staff_user):
    _, sim, bookings, _ = _held("2.0.1", stack)
    lost, kept = bookings
    sim.reservations.pop(Reservation.objects.get(booking_id=lost.pk).pk)  # forgotten silently

    for booking in bookings:
        booking_cancel(booking=booking.pk, actor=Actor.staff(staff_user), override_reason="x")

    statuses = dict(Reservation.objects.values_list("booking_id", "status"))
    assert statuses == {lost.pk: CR.LOST, kept.pk: CR.CANCELED}
    assert sim.reservations == {}
    lost.refresh_from_db()
    audit = _charger_audit(lost)
    assert any("had lost the reservation" in reason for _, reason in audit)
    assert lost.charger_reservation == CR.RELEASED
    assert "no longer held" in lost.charger_reservation_detail
    kept.refresh_from_db()
    assert kept.charger_reservation_detail == "Reservation cancelled at the charger."


def test_rejected_cancel_after_a_reboot_the_csms_saw_is_a_plain_cancel(stack, staff_user):
    cp, sim, bookings, _ = _held("1.6", stack)
    booking = bookings[0]
    stack.run(sim.disconnect())
    # Cancelled while the charger is away: the CancelReservation waits for it.
    booking_cancel(booking=booking.pk, actor=Actor.staff(staff_user), override_reason="x")
    reservation = Reservation.objects.get(booking_id=booking.pk)
    assert reservation.status == CR.CANCEL_DUE

    rebooted = stack.charger(cp)  # its boot says the reservation is gone anyway
    wait_for(lambda: Reservation.objects.get(pk=reservation.pk).held_at is None)
    sweep_reservations(enqueue=False)

    reservation.refresh_from_db()
    assert reservation.status == CR.CANCELED
    assert [r.payload for r in rebooted.received if r.action == "CancelReservation"] == [
        {"reservation_id": reservation.pk}
    ]
    assert not any("had lost" in reason for _, reason in _charger_audit(booking))
