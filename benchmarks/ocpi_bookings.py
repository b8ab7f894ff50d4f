"""OCPI Bookings benchmark: BookingRequest POSTs under load, then booking_locations GETs.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_ocpi_bench
    export REDIS_URL=redis://127.0.0.1:6379/3 SECRET_KEY=bench
    .venv/bin/python benchmarks/ocpi_bookings.py [--seconds 30] [--connections 32]

It drops and creates the database named by DATABASE_URL (it must be named cb_*_bench), migrates
and seeds it (a 50-EVSE location, one registered eMSP), starts the web server as production does
(the Procfile's web line; --server picks a candidate instead, see benchmarks/servers.py) on
127.0.0.1:--port, and drives it from this process with an asyncio HTTP/1.1 keep-alive
client (one socket per connection). Each POST asks, for a driver of its own (a token uid of its
own), for a one-hour slot drawn at random from the slots of the next 30 days that no POST has
booked yet, as an eMSP picks from the calendars it was shown. Slots stay in the pool until a
POST books them, so parallel requests sometimes race for the same slot: the losers get REJECTED
bookings, and afterwards the script counts overlapping blocking bookings straight from
PostgreSQL (must be 0). It prints requests/s, p50/p99 latency, then the p50/p99 of GET
booking_locations (50 EVSEs, 7 days of calendars).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from benchmarks import servers  # noqa: E402

TOKEN = "benchmark-emsp-token-c"
LOCATION_ID = "BENCH-LOC-50"
EVSES = 50


def recreate_database() -> None:
    """Start from an empty database (audit rows are append-only, so no cleanup by DELETE)."""
    from urllib.parse import urlparse

    import psycopg

    url = urlparse(os.environ["DATABASE_URL"])
    name = url.path.lstrip("/")
    if not name.startswith("cb_") or "bench" not in name:
        raise SystemExit(f"Refusing to recreate {name!r}: use a database named like cb_*_bench.")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_database() -> None:
    recreate_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from locations.models import EVSE, BookingPolicy, ChargePoint, Connector, Location
    from ocpi.models import Party, token_digest

    location, _ = Location.objects.get_or_create(
        ocpi_id=LOCATION_ID,
        defaults=dict(name="Benchmark hub", address="Benchstraat 1", city="Amsterdam",
                      country="NLD", latitude="52.370216", longitude="4.895168",
                      time_zone="Europe/Amsterdam", publish=True, twentyfourseven=True),
    )  # fmt: skip
    BookingPolicy.objects.update_or_create(
        location=location,
        defaults=dict(slot_step_minutes=15, min_duration_minutes=15, max_duration_minutes=240,
                      horizon_days=30, min_notice_minutes=0),
    )  # fmt: skip
    for n in range(EVSES):
        cp, _ = ChargePoint.objects.get_or_create(
            identity=f"BENCH-CP-{n // 2:02d}", defaults={"location": location, "is_connected": True}
        )
        evse, _ = EVSE.objects.get_or_create(
            uid=f"BENCH-EVSE-{n:02d}",
            defaults=dict(charge_point=cp, ocpp_evse_id=n % 2 + 1, status="AVAILABLE",
                          capabilities=["RESERVABLE"]),
        )  # fmt: skip
        Connector.objects.get_or_create(
            evse=evse, connector_id="1",
            defaults=dict(standard="IEC_62196_T2", format="SOCKET", power_type="AC_3_PHASE",
                          max_voltage=400, max_amperage=32, max_electric_power=22000),
        )  # fmt: skip
    Party.objects.update_or_create(
        country_code="DE", party_id="BEN",
        defaults=dict(name="Bench eMSP", state=Party.State.REGISTERED,
                      token_c_digest=token_digest(TOKEN), token_b="unused", endpoints=[]),
    )  # fmt: skip


def overlapping_bookings() -> tuple[int, dict[str, int]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM bookings_booking a JOIN bookings_booking b
               ON a.evse_id = b.evse_id AND a.id < b.id AND a.blocked_period && b.blocked_period
               WHERE a.status IN ('PENDING', 'RESERVED') AND b.status IN ('PENDING', 'RESERVED')"""
        )
        overlaps = cursor.fetchone()[0]
        cursor.execute("SELECT status, count(*) FROM bookings_booking GROUP BY status")
        counts = dict(cursor.fetchall())
    return overlaps, counts


class Connection:
    """A minimal HTTP/1.1 keep-alive client: enough for JSON requests to the server."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Token {base64.b64encode(TOKEN.encode()).decode()}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            self.writer = None
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status, data


def free_slots(days: int = 30) -> list[tuple[str, datetime]]:
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    return [
        (f"BENCH-EVSE-{e:02d}", start + timedelta(hours=h))
        for e in range(EVSES)
        for h in range(days * 24 - 4)
    ]


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SlotPool:
    """The slots no POST has booked yet: draw at random, remove once booked (O(1) each)."""

    def __init__(self, slots: list[tuple[str, datetime]]):
        self.slots = list(slots)
        self.index = {slot: n for n, slot in enumerate(self.slots)}

    def draw(self, rng: random.Random) -> tuple[str, datetime]:
        return self.slots[rng.randrange(len(self.slots))]

    def booked(self, slot: tuple[str, datetime]) -> None:
        n = self.index.pop(slot, None)
        if n is None:
            return
        last = self.slots.pop()
        if n < len(self.slots):
            self.slots[n] = last
            self.index[last] = n


class _Lane:
    """One client connection's worth of load: it POSTs BookingRequests back to back until the
    deadline, on one keep-alive connection, or on a new connection per request when the server
    closes each one. Latency counts from the request's send, or from
    the connect when the request needs a new connection.

    A protocol rather than asyncio streams, and responses read by their Content-Length and
    one substring instead of a JSON parse: the load generator shares the 2 cores with the
    server, and with streams it took ~0.22 ms of CPU per request, ~5% of the machine."""

    def __init__(self, run: _PostRun, n: int, port: int):
        self.run, self.n, self.port, self.rng = run, n, port, random.Random(n)
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()

    def connect(self) -> None:
        if time.perf_counter() >= self.run.deadline:
            self.done.set_result(None)
            return
        self.began = time.perf_counter()
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            await self.loop.create_connection(lambda: _LaneProtocol(self), "127.0.0.1", self.port)
        except OSError as error:
            self.done.set_exception(error)

    def send(self, transport: asyncio.Transport, *, fresh: bool = False) -> None:
        if time.perf_counter() >= self.run.deadline:
            transport.close()
            self.done.set_result(None)
            return
        self.slot = self.run.pool.draw(self.rng)
        transport.write(self.run.request(self.n, self.slot))
        if not fresh:
            self.began = time.perf_counter()


class _LaneProtocol(asyncio.Protocol):
    def __init__(self, lane: _Lane):
        self.lane, self.buffer = lane, b""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.lane.send(transport, fresh=True)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:") + len(b"content-length:")
        length = int(head[at : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None])
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        self.lane.run.answered(self.lane, int(head[9:12]), body)
        if b"connection: close" in head:
            self.transport.close()
            self.lane.connect()
        else:
            self.lane.send(self.transport)


class _PostRun:
    def __init__(self, seconds: float, pool: SlotPool):
        self.deadline = time.perf_counter() + seconds
        self.pool = pool
        self.latencies: list[float] = []
        self.outcomes: dict[str, int] = {}
        self.counter = 0
        auth = base64.b64encode(TOKEN.encode()).decode()
        self.head = (
            "POST /ocpi/cpo/2.3.0/bookings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Token {auth}\r\nContent-Type: application/json\r\n"
            "Content-Length: {}\r\n\r\n"
        )

    def request(self, n: int, slot: tuple[str, datetime]) -> bytes:
        self.counter += 1
        c, (evse, start) = self.counter, slot
        end = start + timedelta(hours=1)
        body = (
            f'{{"country_code":"DE","party_id":"BEN","request_id":"B-{n}-{c}",'
            f'"location_id":"{LOCATION_ID}","evse_uid":"{evse}",'
            f'"period":{{"start_from":"{z(start)}","end_before":"{z(end)}"}},'
            f'"authorization_reference":"A{c}","tokens":[{{"country_code":"DE","party_id":"BEN",'
            f'"uid":"T{c}","type":"RFID","contract_id":"DE-BEN-C{c:08d}"}}]}}'
        ).encode()
        return self.head.format(len(body)).encode() + body

    def answered(self, conn: _Lane, status: int, body: bytes) -> None:
        self.latencies.append(time.perf_counter() - conn.began)
        if b'"reservation_status":"RESERVED"' in body:
            key = "RESERVED"
            self.pool.booked(conn.slot)
        elif b'"reservation_status":"REJECTED"' in body:
            key = "REJECTED"
        else:
            key = f"HTTP {status}: {body[:120]!r}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


async def post_load(port: int, seconds: float, connections: int, pool: SlotPool) -> dict:
    run = _PostRun(seconds, pool)
    began = time.perf_counter()
    lanes = [_Lane(run, n, port) for n in range(connections)]
    for lane in lanes:
        lane.connect()
    await asyncio.gather(*(lane.done for lane in lanes))
    elapsed = time.perf_counter() - began
    return {"requests": len(run.latencies), "elapsed": elapsed, "latencies": run.latencies,
            "outcomes": run.outcomes}  # fmt: skip


async def calibrate(port: int, count: int) -> list[float]:
    """The cheapest authenticated OCPI request (one query): a yardstick for this machine now."""
    conn = Connection("127.0.0.1", port)
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        status, _ = await conn.request("GET", "/ocpi/versions")
        latencies.append(time.perf_counter() - began)
        assert status == 200
    return latencies


async def get_load(port: int, count: int) -> list[float]:
    conn = Connection("127.0.0.1", port)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    path = (f"/ocpi/cpo/2.3.0/bookings/booking_locations?limit=100&timeslot_from={z(start)}"
            f"&timeslot_to={z(start + timedelta(days=7))}")  # fmt: skip
    status, data = await conn.request("GET", path)
    body = json.loads(data)
    assert status == 200 and len(body["data"]) == EVSES, (status, data[:300])
    calendars = sum(len(bl["calendars"]) for bl in body["data"])
    print(f"booking_locations: {len(body['data'])} BookingLocations, {calendars} calendars, "
          f"{len(data) / 1024:.0f} KiB")  # fmt: skip
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        status, _ = await conn.request("GET", path)
        latencies.append(time.perf_counter() - began)
        assert status == 200
    return latencies


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by the web server's processes and by PostgreSQL."""
    from urllib.parse import urlparse

    import psutil

    database = urlparse(os.environ["DATABASE_URL"]).path.lstrip("/")
    totals = {"web": 0.0, "postgres": 0.0}
    for proc in psutil.Process(server_pid).children(recursive=True):
        times = proc.cpu_times()
        totals["web"] += times.user + times.system
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            title = " ".join(proc.info["cmdline"] or ())
            if proc.info["name"] == "postgres" and f" {database} " in f"{title} ":
                times = proc.cpu_times()
                totals["postgres"] += times.user + times.system
        except psutil.Error:
            continue
    return totals


def connections_per_worker(server_pid: int, port: int) -> list[int]:
    """How many of the load generator's connections each web worker process holds."""
    import psutil

    return [
        sum(1 for c in worker.net_connections("tcp") if c.laddr and c.laddr.port == port
            and c.status == psutil.CONN_ESTABLISHED)
        for worker in psutil.Process(server_pid).children()
    ]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def machine_yardstick() -> float:
    """Seconds of `sum(range(10**7))` on one core, best of three: how fast this machine is now,
    whatever our code does (the same code gave 383 and 725 POST/s on 2026-11-30, 50 minutes
    apart)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        sum(range(10**7))
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=9210)
    # The production command (the Procfile's web line) unless told otherwise: the candidates
    # docs/adr/0001-web-server.md compared (benchmarks/servers.py); --threads applies to
    # gthread and granian.
    parser.add_argument("--server", default="production", choices=servers.SERVERS)
    parser.add_argument("--threads", type=int, default=8, help="threads per worker")
    parser.add_argument("--gets", type=int, default=200)
    args = parser.parse_args()
    setup_database()
    # The load is one party's: its rate limit would answer most of it with 429.
    server = servers.start(
        args.server, args.port, args.threads, OCPI_RATE_LIMIT_PER_MINUTE="100000000"
    )
    try:
        time.sleep(1.5)
        pool = SlotPool(free_slots())
        asyncio.run(post_load(args.port, 2, 4, pool))  # warm up both workers
        machine_before = machine_yardstick()
        cpu_before = cpu_seconds(server.pid)
        calibration = asyncio.run(calibrate(args.port, 200))
        cpu_after = cpu_seconds(server.pid)
        print(
            f"yardstick GET /ocpi/versions (1 query), sequential: p50 "
            f"{percentile(calibration, 50):.1f} ms, web CPU "
            f"{(cpu_after['web'] - cpu_before['web']) / 200 * 1000:.1f} ms per request"
        )
        load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        cpu_before = cpu_seconds(server.pid)
        import psutil

        sys_before, own_before = psutil.cpu_times(), time.process_time()
        spread: list[int] = []
        sampler = threading.Timer(
            min(5.0, args.seconds / 2),
            lambda: spread.extend(connections_per_worker(server.pid, args.port)),
        )
        sampler.start()
        result = asyncio.run(post_load(args.port, args.seconds, args.connections, pool))
        sampler.cancel()
        cpu_after = cpu_seconds(server.pid)
        sys_after, own_after = psutil.cpu_times(), time.process_time()
        busy = sum(sys_after) - sum(sys_before) - (sys_after.idle - sys_before.idle)
        print(
            f"machine: {busy / result['elapsed']:.2f} cores busy of {os.cpu_count()}; "
            f"load generator {(own_after - own_before) / result['requests'] * 1000:.2f} ms CPU"
            " per request"
        )
        print(
            f"machine speed: sum(range(10**7)) {machine_before:.3f} s before the run, "
            f"{machine_yardstick():.3f} s after (lower is faster)"
        )
        lat = result["latencies"]
        print(
            f"load average before/after: {load_before} / "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
        )
        print(f"server: {args.server}; {args.connections} connections for "
              f"{args.seconds:.0f} s")  # fmt: skip
        print(f"POST BookingRequest: {result['requests']} requests, "
              f"{result['requests'] / result['elapsed']:.0f} req/s, "
              f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms "
              f"(p90 {percentile(lat, 90):.1f}, max {max(lat) * 1000:.1f})")  # fmt: skip
        print(f"outcomes: {result['outcomes']}")
        print(f"connections per worker (sampled during the run): {sorted(spread)}")
        n = result["requests"]
        web_ms = (cpu_after["web"] - cpu_before["web"]) / n * 1000
        pg_ms = (cpu_after["postgres"] - cpu_before["postgres"]) / n * 1000
        print(f"CPU per POST: web workers {web_ms:.1f} ms, PostgreSQL {pg_ms:.1f} ms "
              f"(its backends serving this database)")  # fmt: skip
        overlaps, counts = overlapping_bookings()
        print(f"bookings by status: {counts}; overlapping blocking bookings: {overlaps}")
        gets = asyncio.run(get_load(args.port, args.gets))
        print(f"GET booking_locations (50 EVSEs, 7 days): {len(gets)} sequential requests, "
              f"p50 {percentile(gets, 50):.1f} ms, p99 {percentile(gets, 99):.1f} ms")  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
