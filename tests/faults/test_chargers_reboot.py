"""A charger that reboots while holding reservations, on real processes (issue 18, finding 4):
a run_csms process and a Celery worker on a Redis of the test's own. The charger's boot alone
(no sweep) gets its holds sent again, through the worker, with the same reservation ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, TokenType
from bookings.sweeps import sweep_reservations
from chargers.models import ChargerReservation, Reservation
from chargers.simulator import SimulatedCharger
from tests.bookings.factories import BookingFactory, BookingTokenFactory
from tests.chargers.fixtures import LoopThread, wait_for
from tests.locations.factories import (
    CHARGER_PASSWORD,
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_START_SECONDS = 60


def test_rebooted_charger_gets_its_holds_again_from_its_boot(charger_world):
    _, processes, csms_port = charger_world
    worker = processes.start(
        "worker", "celery", "--app", "config", "worker", "--pool", "solo", "--loglevel", "INFO"
    )
    cp = ChargePointFactory(identity="REBOOT-1", ocpp_version="2.0.1", is_connected=False)
    BookingPolicyFactory(location=cp.location, slot_step_minutes=1, min_duration_minutes=1)
    start = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)
    bookings = []
    for n in (1, 2, 3):
        booking = BookingFactory(evse=EVSEFactory(charge_point=cp, ocpp_evse_id=n), start=start)
        BookingTokenFactory(booking=booking, uid=f"DRIVER-{n}", type=TokenType.RFID)
        bookings.append(booking)
    url = f"ws://127.0.0.1:{csms_port}/ocpp"
    loop = LoopThread()
    sims: list[SimulatedCharger] = []

    def boot() -> SimulatedCharger:
        sim = SimulatedCharger(url, cp.identity, version="2.0.1", evses=3,
                               password=CHARGER_PASSWORD)  # fmt: skip
        sims.append(sim)
        loop.run(sim.connect())
        return sim

    try:
        wait_for(lambda: "ready" in processes.output("worker"), timeout=WORKER_START_SECONDS)
        first = boot()
        sweep_reservations(enqueue=False)
        placed = sorted(Reservation.objects.values_list("pk", flat=True))
        assert len(placed) == 3 and sorted(first.reservations) == placed

        loop.run(first.disconnect())
        rebooted = boot()  # the charger's memory is new: it holds nothing

        wait_for(lambda: sorted(rebooted.reservations) == placed, timeout=30)
        wait_for(
            lambda: (
                set(
                    Booking.objects.filter(pk__in=[b.pk for b in bookings]).values_list(
                        "charger_reservation", flat=True
                    )
                )
                == {ChargerReservation.HELD}
            ),
            timeout=10,
        )
        assert set(Reservation.objects.values_list("status", flat=True)) == {
            ChargerReservation.HELD
        }
        assert "resend_holds_task" in processes.output("worker")
        assert worker.poll() is None
    finally:
        for sim in sims:
            loop.run(sim.disconnect())
        loop.close()
