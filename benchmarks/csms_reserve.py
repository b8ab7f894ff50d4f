"""Benchmark: one csms process holding 2,000 simulated chargers; 1,000 bookings enter their
reservation window in the same minute; time from the sweep's start until every ReserveNow is
answered and shows on its booking, and how many were lost.

    DATABASE_URL=... REDIS_URL=... SECRET_KEY=x .venv/bin/python benchmarks/csms_reserve.py
    (or: .venv/bin/python -m config.stack exec --run-dir .run/bench -- \
         .venv/bin/python benchmarks/csms_reserve.py)

Processes: the csms (`manage.py run_csms`), the simulator (`manage.py simulate_chargers`, in its
own process) and a Celery worker (`-c 2`) are started here; the sweep runs in this process, as
beat's task would. It works in a database of its own (`<name>_bench`), dropped at the end.
Options: --chargers 2000 --bookings 1000 --port 9160 --workers 2
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from csms_common import (
    PREFIX,
    Processes,
    csms_env,
    drop_database,
    own_database,
    provision,
    rss_kib,
    simulator_args,
    wait,
)

BENCH_DB = own_database("bench")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bookings.models import Booking, BookingToken, Status, tstzrange  # noqa: E402
from chargers import gateway  # noqa: E402
from chargers.models import Reservation  # noqa: E402
from locations.models import EVSE, ChargePoint, Location  # noqa: E402


@transaction.atomic
def make_bookings(location: Location, count: int) -> list[int]:
    evses = list(EVSE.objects.filter(charge_point__location=location).order_by("pk")[:count])
    start = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)
    period = tstzrange(start, start + timedelta(hours=1))
    bookings = Booking.objects.bulk_create(
        Booking(location=location, evse=evse, period=period, blocked_period=period,
                status=Status.RESERVED, channel=Booking.Channel.STAFF,
                authorization_reference=f"BENCH{n:08d}",
                terms={"noshow_timeout": 15, "early_start_allowed": True,
                       "early_start_time": 10})
        for n, evse in enumerate(evses)
    )  # fmt: skip
    BookingToken.objects.bulk_create(
        BookingToken(booking=b, country_code="NL", party_id="CBK", uid=f"TAG{b.pk:08d}",
                     type="RFID", contract_id=f"NL-CBK-C{b.pk:08d}")
        for b in bookings
    )  # fmt: skip
    return [b.pk for b in bookings]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chargers", type=int, default=2000)
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--port", type=int, default=9160)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--with-passwords",
        action="store_true",
        help="chargers authenticate (slow on first connect, on purpose)",
    )
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    location = provision(args.chargers, passwords=args.with_passwords)
    env = csms_env(args.with_passwords)
    py = sys.executable
    procs = Processes(env)
    start = procs.start

    try:
        csms = start("csms", [py, "manage.py", "run_csms", "--port", str(args.port)])
        r = gateway.client()
        time.sleep(2)
        idle_rss = rss_kib(csms.pid)
        started = time.monotonic()
        start(
            "simulator",
            [py, "manage.py", "simulate_chargers", *simulator_args(args.port, args.with_passwords)],
        )
        wait(lambda: len(r.keys(f"{PREFIX}:route:*")) >= args.chargers, 300, "connections")
        booted = ChargePoint.objects.filter(location=location, last_boot__isnull=False)
        wait(lambda: booted.count() >= args.chargers, 300, "boots")
        connect_s = time.monotonic() - started
        time.sleep(3)  # let status notifications settle before measuring memory
        rss = rss_kib(csms.pid)
        print(f"chargers connected and booted: {args.chargers} in {connect_s:.1f} s")
        each = (rss - idle_rss) / args.chargers
        print(f"csms memory (RSS): {idle_rss / 1024:.1f} MiB idle -> {rss / 1024:.1f} MiB with "
              f"{args.chargers} chargers ({each:.1f} KiB each)")  # fmt: skip

        start("worker", [py, "-m", "celery", "-A", "config", "worker", "-l", "INFO", "-c",
                         str(args.workers), "--without-mingle", "--without-gossip"])  # fmt: skip
        from config.celery import app

        wait(lambda: app.control.ping(timeout=0.5), 60, "the Celery worker")
        ids = make_bookings(location, args.bookings)

        from bookings.sweeps import sweep_reservations

        t0 = time.monotonic()
        result = sweep_reservations()
        sweep_s = time.monotonic() - t0
        answered = Reservation.objects.filter(booking_id__in=ids, answered_at__isnull=False)
        held = Booking.objects.filter(pk__in=ids, charger_reservation="HELD")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and answered.count() < len(ids):
            time.sleep(0.05)
        answered_s = time.monotonic() - t0
        while time.monotonic() < deadline and held.count() < len(ids):
            time.sleep(0.05)
        held_s = time.monotonic() - t0
        n_answered, n_held = answered.count(), held.count()
        accepted = Reservation.objects.filter(booking_id__in=ids, status="HELD").count()
        print(f"sweep: {result} (claimed and enqueued in {sweep_s:.2f} s)")
        print(f"ReserveNow answered: {n_answered}/{len(ids)} in {answered_s:.2f} s from the "
              f"sweep's start (target <= 10 s); accepted: {accepted}")  # fmt: skip
        print(f"bookings showing HELD: {n_held}/{len(ids)} after {held_s:.2f} s")
        print(f"lost: {len(ids) - n_answered}")
        print(f"csms memory after the burst (RSS): {rss_kib(csms.pid) / 1024:.1f} MiB")
        return 0 if n_answered == len(ids) else 1
    finally:
        procs.__exit__(None, None, None)
        for key in gateway.client().scan_iter(f"{PREFIX}:*"):
            gateway.client().delete(key)
        from django.db import connections

        connections.close_all()
        drop_database(BENCH_DB)


if __name__ == "__main__":
    sys.exit(main())
