"""A worker killed mid-sweep (issue 18): a Celery worker sending a batch of ReserveNows to a slow
charger is killed with SIGKILL halfway. Nothing is lost and nothing doubled: the bookings it
had not reached are placed by the next reservation sweep (a minute later, once their claim is
stale), the charger ends holding exactly one reservation per booking, and every booking shows
held."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, TokenType
from bookings.sweeps import sweep_reservations
from chargers.models import ChargerReservation, Reservation
from chargers.services import SENDING_STALE_SECONDS
from chargers.simulator import SimulatedCharger
from tests.bookings.factories import BookingFactory, BookingTokenFactory
from tests.chargers.fixtures import LoopThread, wait_for
from tests.faults.conftest import producer
from tests.locations.factories import (
    CHARGER_PASSWORD,
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

EVSES = 8


def test_a_worker_killed_mid_batch_loses_and_doubles_no_hold(charger_world):
    server, processes, csms_port = charger_world
    cp = ChargePointFactory(identity="KILL-1", ocpp_version="1.6", is_connected=False)
    BookingPolicyFactory(location=cp.location, slot_step_minutes=1, min_duration_minutes=1)
    start = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)
    bookings = []
    for n in range(1, EVSES + 1):
        booking = BookingFactory(evse=EVSEFactory(charge_point=cp, ocpp_evse_id=n), start=start)
        BookingTokenFactory(booking=booking, uid=f"DRIVER-{n}", type=TokenType.RFID)
        bookings.append(booking)
    ids = [b.pk for b in bookings]
    loop = LoopThread()
    # A slow charger: each ReserveNow takes 0.3 s to answer, one at a time (OCPP 1.6).
    sim = SimulatedCharger(f"ws://127.0.0.1:{csms_port}/ocpp", cp.identity, version="1.6",
                           evses=EVSES, password=CHARGER_PASSWORD, answer_delay=0.3)  # fmt: skip
    try:
        loop.run(sim.connect())
        worker = processes.start(
            "worker", "celery", "--app", "config", "worker", "--pool", "solo", "--loglevel", "INFO"
        )
        wait_for(lambda: "ready" in processes.output("worker"), timeout=60)
        producer(server.url).send_task("bookings.tasks.reserve_now_batch_task", args=[ids])
        wait_for(lambda: len([r for r in sim.received if r.action == "ReserveNow"]) >= 3,
                 timeout=30)  # fmt: skip
        os.killpg(worker.pid, signal.SIGKILL)  # mid-batch: some sent, some not yet
        worker.wait(10)
        reached = len([r for r in sim.received if r.action == "ReserveNow"])
        assert reached < EVSES, "the worker finished before it was killed"

        # Beat's reservation sweep a minute later (run here, as a worker would run it): the
        # killed worker's claims are stale by then, and what it had not finished is done. The
        # killed task itself comes back only after the broker's visibility timeout (an hour),
        # and finds nothing left to do.
        later = timezone.now() + timedelta(seconds=SENDING_STALE_SECONDS + 1)
        sweep_reservations(now=later, enqueue=False)
        held = Booking.objects.filter(pk__in=ids, charger_reservation=ChargerReservation.HELD)
        wait_for(lambda: held.count() == EVSES, timeout=30)

        current = Reservation.objects.filter(booking_id__in=ids, is_current=True)
        assert current.count() == EVSES  # one current placement per booking
        assert set(current.values_list("status", flat=True)) == {ChargerReservation.HELD}
        # The charger holds each booking's reservation once, on its own connector.
        assert sorted(sim.reservations) == sorted(current.values_list("pk", flat=True))
        held_tags = sorted(r["id_tag"] for r in sim.reservations.values())
        assert held_tags == sorted(f"DRIVER-{n}" for n in range(1, EVSES + 1))
    finally:
        loop.run(sim.disconnect())
        loop.close()
