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
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")
PREFIX = f"bench:{uuid.uuid4().hex[:8]}"
os.environ["CSMS_BUS_PREFIX"] = PREFIX
if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
    sys.exit("Set DATABASE_URL and REDIS_URL (or run under `python -m config.stack exec`).")
# A database of its own, created here and dropped at the end: audit rows are append-only
# (a trigger), so benchmark bookings could never be removed from a shared database.
SERVER_URL = os.environ["DATABASE_URL"]
_parts = urlsplit(SERVER_URL)
BENCH_DB = f"{_parts.path.lstrip('/')}_bench"
os.environ["DATABASE_URL"] = urlunsplit(_parts._replace(path=f"/{BENCH_DB}"))


def _server(sql: str) -> None:
    with psycopg.connect(urlunsplit(_parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(sql)


_server(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
_server(f'CREATE DATABASE "{BENCH_DB}"')

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bookings.models import Booking, BookingToken, Status, tstzrange  # noqa: E402
from chargers import gateway  # noqa: E402
from chargers.models import Reservation  # noqa: E402
from locations.models import (  # noqa: E402
    EVSE,
    BookingPolicy,
    Capability,
    ChargePoint,
    Connector,
    EVSEStatus,
    Location,
)

LOCATION = "BENCH-LOC"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@transaction.atomic
def provision(chargers: int) -> Location:
    location = Location.objects.create(
        ocpi_id=LOCATION, name="Benchmark site", address="Bench 1", city="Utrecht",
        country="NLD", latitude=52.09, longitude=5.12, time_zone="Europe/Amsterdam",
    )  # fmt: skip
    BookingPolicy.objects.create(location=location, slot_step_minutes=1, min_duration_minutes=1)
    cps = ChargePoint.objects.bulk_create(
        ChargePoint(location=location, identity=f"BENCH-CP{n:05d}",
                    ocpp_version="2.0.1" if n % 2 else "1.6")
        for n in range(chargers)
    )  # fmt: skip
    evses = EVSE.objects.bulk_create(
        EVSE(charge_point=cp, uid=f"BENCH-{n:05d}-1", ocpp_evse_id=1,
             status=EVSEStatus.AVAILABLE, capabilities=[Capability.RESERVABLE])
        for n, cp in enumerate(cps)
    )  # fmt: skip
    Connector.objects.bulk_create(
        Connector(evse=evse, connector_id="1", standard="IEC_62196_T2", format="SOCKET",
                  power_type="AC_3_PHASE", max_voltage=400, max_amperage=32)
        for evse in evses
    )  # fmt: skip
    return location


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


def wait(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chargers", type=int, default=2000)
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--port", type=int, default=9160)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    location = provision(args.chargers)
    env = {**os.environ, "CSMS_BUS_PREFIX": PREFIX, "PYTHONUNBUFFERED": "1",
           "LOG_LEVEL": "WARNING"}  # fmt: skip
    py = sys.executable
    procs: list[subprocess.Popen] = []
    logs = BASE_DIR / ".run" / "bench"
    logs.mkdir(parents=True, exist_ok=True)

    def start(name: str, cmd: list[str]) -> subprocess.Popen:
        out = (logs / f"{name}.log").open("w")
        proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
        procs.append(proc)
        return proc

    try:
        csms = start("csms", [py, "manage.py", "run_csms", "--port", str(args.port)])
        r = gateway.client()
        time.sleep(2)
        idle_rss = rss_kib(csms.pid)
        started = time.monotonic()
        start("simulator", [py, "manage.py", "simulate_chargers", "--url",
                            f"ws://127.0.0.1:{args.port}/ocpp", "--match", "BENCH-CP"])  # fmt: skip
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
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for key in gateway.client().scan_iter(f"{PREFIX}:*"):
            gateway.client().delete(key)
        from django.db import connections

        connections.close_all()
        _server(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
