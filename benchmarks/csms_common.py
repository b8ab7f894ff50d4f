"""What the csms benchmarks share: a database of their own, a site of simulated chargers, the
processes they start, and small measurements. Call `own_database()` before `django.setup()`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
PREFIX = f"bench:{uuid.uuid4().hex[:8]}"  # the csms bus keys of this run
LOCATION = "BENCH-LOC"
PASSWORD = "bench-charger-password"  # every simulated charger's, with --with-passwords


def _admin_url() -> str:
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres"))


def own_database(suffix: str) -> str:
    """Point DATABASE_URL at a fresh database `<name>_<suffix>` (audit rows are append-only, so
    benchmark bookings could never be removed from a shared one); returns its name."""
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ["CSMS_BUS_PREFIX"] = PREFIX
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("Set DATABASE_URL and REDIS_URL (or run under `python -m config.stack exec`).")
    parts = urlsplit(os.environ["DATABASE_URL"])
    name = f"{parts.path.lstrip('/')}_{suffix}"
    drop_database(name)
    _admin(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    return name


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(sql)


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def provision(chargers: int, *, evses: int = 1, passwords: bool = False):
    """A location with `chargers` charge points (every other one 2.0.1), one bookable EVSE and
    connector each; returns the location. With `passwords`, each has the password PASSWORD;
    without, the csms must run with CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD=1 (see csms_env)."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from locations.models import (
        EVSE,
        BookingPolicy,
        Capability,
        ChargePoint,
        Connector,
        EVSEStatus,
        Location,
    )

    password_hash = make_password(PASSWORD) if passwords else ""  # hashed once: slow on purpose
    with transaction.atomic():
        location = Location.objects.create(
            ocpi_id=LOCATION, name="Benchmark site", address="Bench 1", city="Utrecht",
            country="NLD", latitude=52.09, longitude=5.12, time_zone="Europe/Amsterdam",
        )  # fmt: skip
        BookingPolicy.objects.create(location=location, slot_step_minutes=1, min_duration_minutes=1)
        cps = ChargePoint.objects.bulk_create(
            ChargePoint(location=location, identity=f"BENCH-CP{n:05d}",
                        ocpp_version="2.0.1" if n % 2 else "1.6", password_hash=password_hash)
            for n in range(chargers)
        )  # fmt: skip
        made = EVSE.objects.bulk_create(
            EVSE(charge_point=cp, uid=f"BENCH-{n:05d}-{e}", ocpp_evse_id=e,
                 status=EVSEStatus.AVAILABLE, capabilities=[Capability.RESERVABLE])
            for n, cp in enumerate(cps)
            for e in range(1, evses + 1)
        )  # fmt: skip
        Connector.objects.bulk_create(
            Connector(evse=evse, connector_id="1", standard="IEC_62196_T2", format="SOCKET",
                      power_type="AC_3_PHASE", max_voltage=400, max_amperage=32)
            for evse in made
        )  # fmt: skip
    return location


def csms_env(passwords: bool) -> dict[str, str]:
    """Environment of the benchmark's processes. Checking a password is slow on purpose (one
    PBKDF2 per first connection of a charger to a csms process), so a thousand chargers
    connecting at once queue for minutes: benchmarks of other work admit chargers without one
    unless asked to measure exactly that (--with-passwords)."""
    return {**os.environ, "CSMS_BUS_PREFIX": PREFIX, "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING", "OUTBOUND_ALLOW_PRIVATE_URLS": "1",
            "CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD": "0" if passwords else "1"}  # fmt: skip


def simulator_args(port: int, passwords: bool) -> list[str]:
    args = ["--url", f"ws://127.0.0.1:{port}/ocpp", "--match", "BENCH-CP"]
    return args + (["--password", PASSWORD] if passwords else [])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


class Processes:
    """The processes a benchmark starts, each logging to .run/bench/<name>.log, all stopped
    (process group, SIGTERM then SIGKILL) on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen] = []
        self.logs = BASE_DIR / ".run" / "bench"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=self.env, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
