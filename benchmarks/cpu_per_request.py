"""CPU per request, in-process: what one OCPI BookingRequest POST, one operator API create and
one GET booking_locations cost this process and its PostgreSQL backend, without a server, a
network or a load generator on the same cores.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_cpu_bench
    export REDIS_URL=redis://127.0.0.1:6379/3 SECRET_KEY=bench
    .venv/bin/python benchmarks/cpu_per_request.py [--posts 300] [--rounds 5] [--profile ocpi]

It drops, creates and seeds the database named by DATABASE_URL (cb_*_bench) as
benchmarks/ocpi_bookings.py and benchmarks/api.py do, with the production settings those
scripts give their server (DEBUG off, no TLS redirect, rate limits out of the way, LOG_LEVEL
ERROR), and calls Django's WSGI application (config.wsgi) directly with a WSGI environ per
request, one request at a time. Each POST books a one-hour slot no POST has taken yet, so every
answer is a RESERVED booking (an approved request). After a warm-up (psycopg prepares a
statement on its fifth run) it freezes the garbage collector as the granian worker does
(config.web), then measures `--rounds` rounds of `--posts` requests each:

- web CPU per request: time.process_time() of this process (user + system);
- PostgreSQL CPU per request: the CPU time of this connection's backend (psutil, local server);
- statements and Python function calls per request: counted in a separate pass of 20 requests
  (Django's connection.execute_wrapper(), cProfile), so the counting costs nothing in the timed
  rounds. The call count does not depend on how busy the machine is.

It prints the median and the lowest round. The machine is shared, so compare figures taken
minutes apart on the same machine (the yardstick line says how fast it is now), and use
benchmarks/ocpi_bookings.py and benchmarks/api.py for throughput and latency.
`--profile ocpi|api|get` runs cProfile over one more round and prints the top functions.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# What benchmarks/servers.py gives the production server, and the limits the load scripts set.
os.environ.update(
    DEBUG="0",
    ALLOWED_HOSTS="127.0.0.1",
    LOG_LEVEL="ERROR",
    SECURE_SSL_REDIRECT="0",
    OCPI_RATE_LIMIT_PER_MINUTE="100000000",
    API_RATE_LIMIT_PER_MINUTE="100000000",
)

from benchmarks.api import seed_api  # noqa: E402
from benchmarks.ocpi_bookings import (  # noqa: E402
    LOCATION_ID,
    TOKEN,
    SlotPool,
    free_slots,
    machine_yardstick,
    setup_database,
    z,
)


class Caller:
    """Calls the WSGI application as a server would (PEP 3333 environ, body in wsgi.input)."""

    def __init__(self, application: Callable, authorization: str):
        self.application, self.authorization = application, authorization
        self.status = ""

    def _start_response(self, status: str, headers: list, exc_info=None) -> None:
        self.status = status

    def __call__(
        self, method: str, path: str, body: bytes = b"", **extra: str
    ) -> tuple[int, bytes]:
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": self.authorization,
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            **extra,
        }
        result = self.application(environ, self._start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(self.status[:3]), content


def ocpi_post(call: Caller, pool: SlotPool, rng: random.Random, n: int) -> None:
    evse, start = slot = pool.draw(rng)
    body = json.dumps({
        "country_code": "DE", "party_id": "BEN", "request_id": f"C-{n}",
        "location_id": LOCATION_ID, "evse_uid": evse,
        "period": {"start_from": z(start), "end_before": z(start + timedelta(hours=1))},
        "authorization_reference": f"A{n}",
        "tokens": [{"country_code": "DE", "party_id": "BEN", "uid": f"T{n}", "type": "RFID",
                    "contract_id": f"DE-BEN-C{n:08d}"}],
    }).encode()  # fmt: skip
    status, content = call("POST", "/ocpi/cpo/2.3.0/bookings", body)
    if status != 201 or b'"reservation_status":"RESERVED"' not in content:
        raise SystemExit(f"OCPI POST answered {status}: {content[:300]!r}")
    pool.booked(slot)


def api_post(call: Caller, pool: SlotPool, rng: random.Random, driver: int) -> None:
    evse, start = slot = pool.draw(rng)
    body = json.dumps({
        "type": "create", "driverId": driver, "locationId": LOCATION_ID, "evseId": evse,
        "startAt": z(start), "endAt": z(start + timedelta(hours=1)),
    }).encode()  # fmt: skip
    status, content = call("POST", "/api/v1/booking-requests", body)
    if status != 201 or json.loads(content)["data"]["status"] != "approved":
        raise SystemExit(f"API POST answered {status}: {content[:300]!r}")
    pool.booked(slot)


def backend_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(name: str, one: Callable[[int], None], counter, args, backend: int) -> None:
    from django.db import connection

    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    calls = cProfile.Profile()
    with connection.execute_wrapper(record):
        calls.enable()
        for _ in range(20):
            one(next(counter))
        calls.disable()
    if args.statements:
        one_request = statements[-len(statements) // 20 :]
        print(f"{name}: one request's statements", *one_request, sep="\n  ")
    web, db = [], []
    for _ in range(args.rounds):
        cpu, pg = time.process_time(), backend_cpu(backend)
        for _ in range(args.posts):
            one(next(counter))
        web.append((time.process_time() - cpu) / args.posts * 1000)
        db.append((backend_cpu(backend) - pg) / args.posts * 1000)
    print(
        f"{name}: web CPU {statistics.median(web):.2f} ms per request (lowest round "
        f"{min(web):.2f}), PostgreSQL CPU {statistics.median(db):.2f} ms (lowest "
        f"{min(db):.2f}), {len(statements) / 20:g} statements, "
        f"{pstats.Stats(calls).total_calls / 20:,.0f} Python calls; {args.rounds} rounds of "
        f"{args.posts}",
        flush=True,
    )
    if args.profile == name.split()[0].lower():
        profiler = cProfile.Profile(time.process_time)  # CPU, not waits
        profiler.enable()
        for _ in range(args.posts):
            one(next(counter))
        profiler.disable()
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)
        if args.dump:
            stats.dump_stats(args.dump)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gets", type=int, default=30)
    parser.add_argument("--profile", choices=("ocpi", "api", "get"))
    parser.add_argument("--dump", help="with --profile: also write the pstats file here")
    parser.add_argument("--statements", action="store_true", help="print one request's SQL")
    args = parser.parse_args()
    setup_database()
    client_id, secret, drivers = seed_api()
    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    # One database session for the whole run (the server's reconnect after CONN_MAX_AGE would
    # move the measured backend): closed here, it opens again without an age limit.
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = None
    application = get_wsgi_application()
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, content = Caller(application, f"Basic {basic}")(
        "POST", "/api/v1/oauth/token", b"grant_type=client_credentials",
        CONTENT_TYPE="application/x-www-form-urlencoded",
    )  # fmt: skip
    assert status == 200, content
    api = Caller(application, f"Bearer {json.loads(content)['access_token']}")
    ocpi = Caller(application, f"Token {base64.b64encode(TOKEN.encode()).decode()}")
    pool, rng = SlotPool(free_slots()), random.Random(1)
    counter, driver_ids = iter(range(10**9)), iter(drivers)

    def one_ocpi(n: int) -> None:
        ocpi_post(ocpi, pool, rng, n)

    def one_api(n: int) -> None:
        api_post(api, pool, rng, next(driver_ids))

    for n in range(30):  # warm up: imports, URL resolver, prepared statements
        one_ocpi(next(counter))
        one_api(n)
    gc.freeze()  # as config.web does once Django is loaded
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    print(f"machine speed: sum(range(10**7)) {machine_yardstick():.3f} s (lower is faster); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    measure("OCPI BookingRequest POST", one_ocpi, counter, args, backend)
    measure("API booking-requests create", one_api, counter, args, backend)

    start = free_slots()[0][1]
    path = (f"/ocpi/cpo/2.3.0/bookings/booking_locations?limit=100&timeslot_from={z(start)}"
            f"&timeslot_to={z(start + timedelta(days=7))}")  # fmt: skip

    def one_get(n: int) -> None:
        status, content = ocpi("GET", path)
        assert status == 200, content[:300]

    get_args = argparse.Namespace(**{**vars(args), "posts": args.gets})
    measure("GET booking_locations (50 EVSEs, 7 days)", one_get, counter, get_args, backend)


if __name__ == "__main__":
    main()
