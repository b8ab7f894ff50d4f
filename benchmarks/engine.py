"""Booking engine benchmark (issue 3): availability latency and booking creation throughput at a
million bookings. Prints figures; it asserts nothing about speed.

    .venv/bin/python benchmarks/engine.py                       # machine's server, db cb_bench
    .venv/bin/python benchmarks/engine.py --embedded            # embedded PostgreSQL (.run/bench)
    .venv/bin/python benchmarks/engine.py --database-url postgres://postgres@127.0.0.1:5432/x

With neither flag it uses BENCH_DATABASE_URL, else DATABASE_URL with the database renamed to
cb_bench, else the embedded server. The database is wiped and seeded on every run (100
locations x 50 EVSEs, then 10,000 and 1,000,000 bookings over a year, by INSERT ... SELECT).
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
LOCATIONS = 100
CHARGE_POINTS_PER_LOCATION = 10
EVSES_PER_CHARGE_POINT = 5
BOOKINGS_PER_EVSE = 200  # 100 x 50 x 200 = 1,000,000
BENCH_NOTE = "benchmark"
ZONES = ["Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Australia/Adelaide"]


def log(message: str) -> None:
    print(message, flush=True)


# --- database selection -------------------------------------------------------------------


def choose_database(args: argparse.Namespace) -> tuple[str, str, object | None]:
    """Return (url, "embedded"/"system", embedded server handle)."""
    url = args.database_url or os.environ.get("BENCH_DATABASE_URL", "")
    if not url and not args.embedded and os.environ.get("DATABASE_URL"):
        parts = urlsplit(os.environ["DATABASE_URL"])
        url = urlunsplit(parts._replace(path="/cb_bench"))
    if url and not args.embedded:
        ensure_database(url)
        return url, "system", None
    sys.path.insert(0, str(ROOT))
    from config.stack import start_postgres

    run_dir = ROOT / ".run" / "bench"
    run_dir.mkdir(parents=True, exist_ok=True)
    url, server = start_postgres(run_dir / "postgres")
    return url, "embedded", server


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")  # unused: no task is sent
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- seeding ------------------------------------------------------------------------------


def seed_sites() -> None:
    """LOCATIONS x 10 charge points x 5 EVSEs, one connector each, one policy each."""
    from django.db import connection

    log(f"seeding {LOCATIONS} locations x 50 EVSEs ...")
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE bookings_bookingtransition, bookings_bookingrequest, bookings_bookingtoken,"
            " bookings_booking, locations_connector, locations_bookingpolicy, locations_evse,"
            " locations_chargepoint, locations_regularhours, locations_exceptionalperiod,"
            " locations_location RESTART IDENTITY CASCADE"
        )
        zones = "ARRAY[" + ",".join(f"'{z}'" for z in ZONES) + "]"
        cur.execute(
            f"""
            INSERT INTO locations_location (ocpi_id, name, address, city, postal_code, state,
                country, latitude, longitude, time_zone, parking_type, twentyfourseven,
                charging_when_closed, publish, help_phone, created_at, last_updated)
            SELECT 'BENCH-' || lpad(i::text, 3, '0'), 'Bench site ' || i, 'Benchstraat ' || i,
                'Amsterdam', '', '', 'NLD', 52.37, 4.89,
                ({zones})[1 + (i - 1) % {len(ZONES)}], '', i % 2 = 1, false, true, '', now(), now()
            FROM generate_series(1, {LOCATIONS}) AS i
            """
        )
        # Locations that are not 24/7 open 06:00-22:00 every day.
        cur.execute(
            """
            INSERT INTO locations_regularhours (location_id, weekday, period_begin, period_end)
            SELECT l.id, d, '06:00', '22:00'
            FROM locations_location l, generate_series(1, 7) AS d WHERE NOT l.twentyfourseven
            """
        )
        cur.execute(
            """
            INSERT INTO locations_bookingpolicy (location_id, slot_step_minutes,
                min_duration_minutes, max_duration_minutes, buffer_minutes, min_notice_minutes,
                horizon_days, reserve_lead_minutes, change_until_minutes, cancel_until_minutes,
                change_not_allowed, early_start_allowed, early_start_minutes,
                noshow_timeout_minutes, noshow_fee, late_stop_allowed, late_stop_minutes,
                rfid_auth_required, remote_auth_supported, token_groups_supported,
                overlapping_bookings_allowed, supported_access_methods, terms_url, last_updated)
            SELECT id, 15, 30, 240, 5, 0, 30, 10, 15, 15, false, true, 10, 15, false, false, 0,
                false, true, false, false, '{}', '', now()
            FROM locations_location
            """
        )
        cur.execute(
            f"""
            INSERT INTO locations_chargepoint (location_id, identity, ocpp_version, password_hash,
                vendor, model, serial_number, firmware_version, is_connected, created_at,
                last_updated)
            SELECT l.id, l.ocpi_id || '-CP' || c, '1.6', '', 'Bench', 'B1', '', '', true,
                now(), now()
            FROM locations_location l, generate_series(1, {CHARGE_POINTS_PER_LOCATION}) AS c
            """
        )
        cur.execute(
            f"""
            INSERT INTO locations_evse (charge_point_id, uid, evse_id, ocpp_evse_id, status,
                capabilities, physical_reference, floor_level, booking_enabled, last_updated)
            SELECT cp.id, cp.identity || '-' || e, '', e, 'AVAILABLE', '{{RESERVABLE}}', '',
                '', true, now()
            FROM locations_chargepoint cp, generate_series(1, {EVSES_PER_CHARGE_POINT}) AS e
            """
        )
        cur.execute(
            """
            INSERT INTO locations_connector (evse_id, connector_id, ocpp_connector_id, standard,
                format, power_type, max_voltage, max_amperage, max_electric_power, last_updated)
            SELECT id, '1', 1,
                CASE WHEN id % 5 = 0 THEN 'IEC_62196_T2_COMBO' ELSE 'IEC_62196_T2' END,
                CASE WHEN id % 5 = 0 THEN 'CABLE' ELSE 'SOCKET' END,
                CASE WHEN id % 5 = 0 THEN 'DC' ELSE 'AC_3_PHASE' END,
                CASE WHEN id % 5 = 0 THEN 920 ELSE 400 END,
                CASE WHEN id % 5 = 0 THEN 200 ELSE 32 END,
                CASE WHEN id % 5 = 0 THEN 150000 ELSE 22000 END, now()
            FROM locations_evse
            """
        )


def seed_bookings(*, location_filter: str, year_start: datetime) -> int:
    """BOOKINGS_PER_EVSE bookings per EVSE of the chosen locations, spread over a year.

    Booking k of an EVSE starts in its own ~43.8 h stretch of the year at a random quarter hour
    (30 to 240 minutes long, 5-minute buffer), so the rows never overlap. Past bookings are
    mostly FULFILLED, future ones mostly RESERVED, one in ten CANCELED.
    """
    from django.db import connection

    stretch_minutes = 365 * 24 * 60 // BOOKINGS_PER_EVSE
    with connection.cursor() as cur:
        cur.execute(
            f"""
            WITH raw AS (
                SELECT e.id AS evse_id, cp.location_id, k,
                    %(year_start)s::timestamptz
                        + make_interval(mins => k * {stretch_minutes}
                            + 15 * floor(random() * (({stretch_minutes} - 250) / 15))::int)
                        AS s,
                    15 * (2 + floor(random() * 15)::int) AS minutes,
                    random() AS r
                FROM locations_evse e
                JOIN locations_chargepoint cp ON cp.id = e.charge_point_id
                CROSS JOIN generate_series(0, {BOOKINGS_PER_EVSE - 1}) AS k
                WHERE {location_filter}
            ), b AS (
                SELECT *, s + make_interval(mins => minutes) AS e,
                    CASE WHEN r < 0.1 THEN 'CANCELED'
                         WHEN s < now() AND r < 0.15 THEN 'NO_SHOW'
                         WHEN s < now() THEN 'FULFILLED'
                         ELSE 'RESERVED' END AS status
                FROM raw
            )
            INSERT INTO bookings_booking (uid, location_id, evse_id, period, blocked_period,
                status, channel, emsp_country_code, emsp_party_id, request_id,
                authorization_reference, terms, access_methods, notes, canceled_reason,
                canceled_by_role, canceled_at, charger_reservation, charger_reservation_detail,
                needs_attention, fulfilled_at, created_at, last_updated)
            SELECT gen_random_uuid(), location_id, evse_id, tstzrange(s, e, '[)'),
                tstzrange(s, e + interval '5 minutes', '[)'), status, 'STAFF', '', '', '',
                upper(substr(md5(random()::text), 1, 24)),
                '{{"cancel_until_minutes": 15, "change_until_minutes": 15,
                  "noshow_timeout": 15, "early_start_allowed": true,
                  "early_start_time": 10}}'::jsonb,
                '[]'::jsonb, '',
                CASE WHEN status = 'CANCELED' THEN 'UNKNOWN' ELSE '' END,
                CASE WHEN status = 'CANCELED' THEN 'CPO' ELSE '' END,
                CASE WHEN status = 'CANCELED' THEN s - interval '1 day' END,
                'NOT_SENT', '', false,
                CASE WHEN status = 'FULFILLED' THEN s END, s - interval '2 days', now()
            FROM b
            """,
            {"year_start": year_start},
        )
        count = cur.rowcount
        cur.execute("ANALYZE bookings_booking")
    return count


def drop_gist_structures() -> list[str]:
    """Drop the exclusion constraint and the location GiST index for the bulk insert; return
    the statements that rebuild them (a GiST build is much faster than a million inserts)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'booking_no_overlap_per_evse'"
        )
        constraint = cur.fetchone()[0]
        cur.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index JOIN pg_class c "
            "ON c.oid = indexrelid WHERE c.relname = 'booking_location_blocking_gist'"
        )
        index = cur.fetchone()[0]
        cur.execute("ALTER TABLE bookings_booking DROP CONSTRAINT booking_no_overlap_per_evse")
        cur.execute("DROP INDEX booking_location_blocking_gist")
    return [
        "ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap_per_evse " + constraint,
        index,
    ]


# --- measurements -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_availability(location_ocpi_id: str, now: datetime, calls: int = 200) -> dict:
    from django.db import connection, reset_queries

    from bookings.selectors import location_availability

    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    end = start + timedelta(days=7)
    for _ in range(10):  # warm caches and the connection
        location_availability(location=location_ocpi_id, start=start, end=end, now=now)
    timings, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        result = location_availability(location=location_ocpi_id, start=start, end=end, now=now)
        timings.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    connection.force_debug_cursor = True
    reset_queries()
    location_availability(location=location_ocpi_id, start=start, end=end, now=now)
    queries = len(connection.queries)
    connection.force_debug_cursor = False
    from bookings.models import Booking

    in_window = (
        Booking.objects.blocking()
        .filter(location__ocpi_id=location_ocpi_id, blocked_period__overlap=(start, end))
        .count()
    )
    return {
        "p50": statistics.median(timings),
        "p95": percentile(timings, 0.95),
        "cpu_p50": statistics.median(cpu),
        "load": os.getloadavg()[0],
        "queries": queries,
        "evses": len(result.evses),
        "free_intervals": sum(len(e.free) for e in result.evses),
        "bookings_in_window": in_window,
    }


def explain_window_query(location_ocpi_id: str, now: datetime) -> str:
    """EXPLAIN ANALYZE of the windowed bookings query exactly as location_availability builds
    it (one scan of booking_location_blocking_gist)."""
    from bookings.models import Booking
    from locations.models import Location

    location = Location.objects.get(ocpi_id=location_ocpi_id)
    start = now + timedelta(hours=1)
    qs = (
        Booking.objects.blocking()
        .overlapping((start, start + timedelta(days=7)))
        .of_location(location.pk)
        .order_by()
        .values_list("evse_id", "blocked_period")
    )
    plan = qs.explain(analyze=True, buffers=True, costs=False)
    return "\n".join("    " + line for line in plan.splitlines())


def _backend_cpu(pid: int) -> float:
    """CPU seconds a local PostgreSQL backend has used (0 when it is not on this machine)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _raw_worker(url, duration, start_event, results) -> None:
    """The floor: one plain INSERT and COMMIT per loop on a scratch table, no Django."""
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
        backend = conn.info.backend_pid
        results.put("ready")
        start_event.wait()
        began, cpu, db_cpu = time.time(), time.process_time(), _backend_cpu(backend)
        made = 0
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            conn.execute("INSERT INTO bench_commit_floor (at) VALUES (now())")
            conn.commit()
            made += 1
        cpu, db_cpu = time.process_time() - cpu, _backend_cpu(backend) - db_cpu
    results.put((made, 0, 0, began, time.time(), cpu, db_cpu))


def _create_worker(url, seed, duration, start_event, results, now_iso) -> None:
    """One database session booking random free slots for `duration` seconds.

    Free as far as this process knows: before the clock starts it reads the blocked time of
    every EVSE over the days it books, and it adds its own bookings as it goes. A slot another
    session took in the meantime is still refused by the database (a real race).
    """
    setup_django(url)
    from bookings.exceptions import BookingError, SlotUnavailable
    from bookings.models import Booking
    from bookings.services import Actor, booking_create
    from locations.models import EVSE
    from locations.selectors import policy_for

    rng = random.Random(seed)
    evses = list(
        EVSE.objects.select_related(
            "charge_point__location__booking_policy", "booking_policy"
        ).prefetch_related(
            "connectors",
            "charge_point__location__regular_hours",
            "charge_point__location__exceptional_periods",
        )
    )
    buffer = {e.pk: timedelta(minutes=policy_for(e).buffer_minutes) for e in evses}
    actor = Actor.system("benchmark")
    now = datetime.fromisoformat(now_iso)
    base = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=8)
    # Per EVSE, the blocked periods' starts and ends, sorted: an EVSE's blocked periods never
    # overlap, so both lists are in the same order and one bisection answers "is it clear?".
    starts: dict[int, list[datetime]] = {e.pk: [] for e in evses}
    ends: dict[int, list[datetime]] = {e.pk: [] for e in evses}
    for evse_id, period in (
        Booking.objects.blocking()
        .overlapping((base - timedelta(days=1), base + timedelta(days=22)))
        .order_by("evse_id", "blocked_period")
        .values_list("evse_id", "blocked_period")
    ):
        starts[evse_id].append(period.lower)
        ends[evse_id].append(period.upper)

    def free_slot():
        while True:
            evse = rng.choice(evses)
            # A random quarter hour 8 to 28 days ahead, 06:00-22:00 local so it fits any site.
            zone = evse.charge_point.location.zone
            day = (base + timedelta(days=rng.randrange(20))).astimezone(zone)
            start = day.replace(hour=6, minute=0) + timedelta(minutes=15 * rng.randrange(0, 56))
            end = start + timedelta(minutes=15 * rng.randrange(2, 9))
            until = end + buffer[evse.pk]
            i = bisect.bisect_left(starts[evse.pk], until)  # periods [0, i) start before it ends
            if i == 0 or ends[evse.pk][i - 1] <= start:
                return evse, start, end, until

    def attempt() -> str:
        evse, start, end, until = free_slot()
        try:
            booking_create(evse=evse, start=start, end=end, actor=actor, notes=BENCH_NOTE, now=now)
        except SlotUnavailable:
            return "refused"
        except BookingError:
            return "other"
        i = bisect.bisect_left(starts[evse.pk], start)
        starts[evse.pk].insert(i, start)
        ends[evse.pk].insert(i, until)
        return "made"

    # Steady state, as in a long-running server: a few bookings before the clock starts pay
    # the one-time costs (the Celery producer's first connection for the push nudge, about
    # 70 ms of CPU per process; first-use SQL building), which 32 processes would otherwise
    # all pay inside the measured seconds.
    for _ in range(3):
        attempt()
    from django.db import connection

    backend = connection.connection.info.backend_pid
    results.put("ready")
    counts = {"made": 0, "refused": 0, "other": 0}
    start_event.wait()
    began, cpu, db_cpu = time.time(), time.process_time(), _backend_cpu(backend)
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        counts[attempt()] += 1
    cpu, db_cpu = time.process_time() - cpu, _backend_cpu(backend) - db_cpu
    made, refused, other = counts["made"], counts["refused"], counts["other"]
    results.put((made, refused, other, began, time.time(), cpu, db_cpu))
    connection.close()


def measure_creation(
    url: str, sessions: int, duration: float, now: datetime, raw: bool = False
) -> dict:
    ctx = mp.get_context("spawn")
    start_event = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_raw_worker, args=(url, duration, start_event, results))
        if raw
        else ctx.Process(
            target=_create_worker,
            # Fresh seeds per run: a rerun on the same database would retry the same slots.
            args=(url, time.time_ns() + i, duration, start_event, results, now.isoformat()),
        )
        for i in range(sessions)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # every process has imported Django and loaded its EVSEs
        assert results.get() == "ready"
    start_event.set()
    totals = [results.get() for _ in procs]
    for p in procs:
        p.join()
    made = sum(t[0] for t in totals)
    refused = sum(t[1] for t in totals)
    other = sum(t[2] for t in totals)
    # Over the wall-clock span from the first start to the last finish, not the nominal run.
    span = max(t[4] for t in totals) - min(t[3] for t in totals)
    attempts = max(1, made + refused + other)
    return {
        "made": made, "refused": refused, "other": other, "per_s": made / span,
        # CPU per attempt (a refusal costs about as much as a booking), client and server side.
        "cpu_ms": 1000 * sum(t[5] for t in totals) / attempts,
        "db_cpu_ms": 1000 * sum(t[6] for t in totals) / attempts,
    }  # fmt: skip


def count_overlaps() -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT count(*) FROM bookings_booking a JOIN bookings_booking b
              ON a.evse_id = b.evse_id AND a.id < b.id AND a.blocked_period && b.blocked_period
            WHERE a.status IN ('PENDING', 'RESERVED') AND b.status IN ('PENDING', 'RESERVED')
            """
        )
        return cur.fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--embedded", action="store_true", help="use the embedded PostgreSQL")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per creation run")
    parser.add_argument("--sessions", default="1,8,32")
    parser.add_argument("--locations", type=int, default=100, help="smaller for a quick run")
    parser.add_argument("--bookings-per-evse", type=int, default=200)
    parser.add_argument(
        "--skip-seed",
        action="store_true",
        help="reuse the seeded database (no 10,000-row measurement; for creation reruns)",
    )
    args = parser.parse_args()
    global LOCATIONS, BOOKINGS_PER_EVSE
    LOCATIONS, BOOKINGS_PER_EVSE = args.locations, args.bookings_per_evse

    url, kind, server = choose_database(args)
    try:
        setup_django(url)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        log(f"PostgreSQL {version} ({kind} server), database {urlsplit(url).path.lstrip('/')}")
        log(
            f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
            f"(other work shares them), Python {sys.version.split()[0]}"
        )

        now = datetime.now(UTC)
        year_start = (now - timedelta(days=182)).replace(minute=0, second=0, microsecond=0)
        target = "BENCH-001"
        small = None
        if args.skip_seed:
            with connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM bookings_booking")
                n = cur.fetchone()[0]
            log(f"reusing the seeded database: {n:,} bookings")
        else:
            t0 = time.perf_counter()
            seed_sites()
            n = seed_bookings(
                location_filter=f"cp.location_id = (SELECT id FROM locations_location "
                f"WHERE ocpi_id = '{target}')",
                year_start=year_start,
            )
            log(f"seeded {n:,} bookings in {time.perf_counter() - t0:.1f} s")
            small = (n, measure_availability(target, now, args.calls))
            t0 = time.perf_counter()
            rebuild = drop_gist_structures()
            n += seed_bookings(
                location_filter=f"cp.location_id <> (SELECT id FROM locations_location "
                f"WHERE ocpi_id = '{target}')",
                year_start=year_start,
            )
            with connection.cursor() as cur:
                for statement in rebuild:
                    cur.execute(statement)
                cur.execute("VACUUM ANALYZE bookings_booking")
            log(f"seeded up to {n:,} bookings in {time.perf_counter() - t0:.1f} s more")
        large = (n, measure_availability(target, now, args.calls))

        log("")
        log(f"availability, one 50-EVSE location, 7 days, {args.calls} calls (service layer):")
        for rows, m in [x for x in (small, large) if x]:
            log(
                f"  {rows:>9,} bookings: p50 {m['p50']:.2f} ms  p95 {m['p95']:.2f} ms  "
                f"(Python CPU p50 {m['cpu_p50']:.2f} ms; {m['queries']} queries, "
                f"{m['evses']} EVSEs, {m['bookings_in_window']} bookings in the window, "
                f"{m['free_intervals']} free intervals; load average {m['load']:.1f})"
            )
        log(f"  plan of the windowed bookings query at {n:,} rows:")
        log(explain_window_query(target, now))

        log("")
        log(f"booking creation (booking_create, random free slots over {LOCATIONS * 50:,} EVSEs, "
            f"{args.duration:g} s per run, one process per database session):")  # fmt: skip
        with connection.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS bench_commit_floor (id bigserial, at timestamptz)"
            )
        connection.close()
        for sessions in [int(s) for s in args.sessions.split(",")]:
            m = measure_creation(url, sessions, args.duration, now)
            log(
                f"  {sessions:>2} sessions: {m['per_s']:,.0f} bookings/s "
                f"(load average {os.getloadavg()[0]:.1f}) "
                f"({m['made']:,} made, {m['refused']:,} refused as taken, "
                f"{m['other']:,} other refusals; CPU per attempt: Python {m['cpu_ms']:.2f} ms, "
                f"PostgreSQL backend {m['db_cpu_ms']:.2f} ms)"
            )
        log("the machine's floor: a bare INSERT + COMMIT per loop (psycopg, no Django, no rules):")
        for sessions in [int(s) for s in args.sessions.split(",")]:
            m = measure_creation(url, sessions, args.duration, now, raw=True)
            log(
                f"  {sessions:>2} sessions: {m['per_s']:,.0f} commits/s "
                f"(load average {os.getloadavg()[0]:.1f}; CPU per commit: Python "
                f"{m['cpu_ms']:.2f} ms, PostgreSQL backend {m['db_cpu_ms']:.2f} ms)"
            )
        overlaps = count_overlaps()
        log(f"overlapping active bookings after the runs (SQL self-join): {overlaps}")
        connection.close()
        return 0 if overlaps == 0 else 1
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
