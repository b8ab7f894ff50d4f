"""Operator API benchmark: availability of a 50-EVSE location over 7 days, then booking request
creates at 32 connections (issue 16: p50 <= 30 ms; p99 <= 200 ms).

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_api_bench
    export REDIS_URL=redis://127.0.0.1:6379/3 SECRET_KEY=bench
    .venv/bin/python benchmarks/api.py [--seconds 20] [--connections 32] [--port 7390]

Like benchmarks/ocpi_bookings.py (whose database setup it reuses), it drops and creates the
database named by DATABASE_URL (cb_*_bench), seeds the 50-EVSE location, an API client and one
driver with a token of its own per request to come, starts the web server as production does,
and drives it over keep-alive HTTP/1.1 from this process. Each create names an EVSE and a
one-hour slot drawn from the slots no create has booked yet, for a fresh driver, so parallel
requests sometimes race for a slot (the losers are rejected). Afterwards it counts
overlapping blocking bookings in PostgreSQL (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from benchmarks import servers  # noqa: E402
from benchmarks.ocpi_bookings import (  # noqa: E402
    LOCATION_ID,
    SlotPool,
    free_slots,
    overlapping_bookings,
    percentile,
    setup_database,
    z,
)

DRIVERS = 20000  # one per create to come: a token holds one booking at a time


def seed_api() -> tuple[str, str, list[int]]:
    from django.db import transaction

    from api.services import client_create
    from bookings.models import Driver, DriverToken

    client, secret = client_create(name="bench", scopes=["read", "book", "drivers"])
    with transaction.atomic():
        drivers = Driver.objects.bulk_create(
            Driver(name=f"Driver {n}", email=f"d{n}@bench.example") for n in range(DRIVERS)
        )
        DriverToken.objects.bulk_create(
            DriverToken(driver=d, country_code="NL", party_id="CBK", uid=f"B{d.pk:010d}",
                        contract_id=f"NL-CBK-B{d.pk:010d}")
            for d in drivers
        )  # fmt: skip
    return client.application.client_id, secret, [d.pk for d in drivers]


class Connection:
    """A minimal HTTP/1.1 keep-alive client with a Bearer token."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status, data


def token_for(port: int, client_id: str, secret: str) -> str:
    import httpx

    response = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    response.raise_for_status()
    return response.json()["access_token"]


async def availability(port: int, token: str, count: int) -> list[float]:
    conn = Connection(port, token)
    start = free_slots()[0][1]
    path = (f"/api/v1/locations/{LOCATION_ID}/availability?startAfter={z(start)}"
            f"&endBefore={z(start + timedelta(days=7))}")  # fmt: skip
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        status, body = await conn.request("GET", path)
        latencies.append(time.perf_counter() - began)
        assert status == 200 and len(json.loads(body)["data"]) == 50, (status, body[:200])
    return latencies


async def creates(port: int, token: str, seconds: float, connections: int,
                  drivers: list[int]) -> dict:  # fmt: skip
    pool = SlotPool(free_slots())
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    queue = iter(drivers)

    async def lane(n: int) -> None:
        conn, rng = Connection(port, token), random.Random(n)
        while time.perf_counter() < deadline:
            evse, start = slot = pool.draw(rng)
            body = json.dumps({
                "type": "create", "driverId": next(queue), "locationId": LOCATION_ID,
                "evseId": evse, "startAt": z(start), "endAt": z(start + timedelta(hours=1)),
            }).encode()  # fmt: skip
            began = time.perf_counter()
            status, data = await conn.request("POST", "/api/v1/booking-requests", body)
            latencies.append(time.perf_counter() - began)
            key = json.loads(data)["data"]["status"] if status == 201 else f"HTTP {status}"
            if key == "approved":
                pool.booked(slot)
            outcomes[key] = outcomes.get(key, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(lane(n) for n in range(connections)))
    return {"latencies": latencies, "outcomes": outcomes, "elapsed": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=7390)
    parser.add_argument("--gets", type=int, default=200)
    args = parser.parse_args()
    setup_database()
    client_id, secret, drivers = seed_api()
    server = servers.start("production", args.port, API_RATE_LIMIT_PER_MINUTE="1000000")
    try:
        time.sleep(1.5)
        token = token_for(args.port, client_id, secret)
        asyncio.run(availability(args.port, token, 10))  # warm up
        gets = asyncio.run(availability(args.port, token, args.gets))
        print(f"GET availability (50 EVSEs, 7 days): {len(gets)} sequential requests, "
              f"p50 {percentile(gets, 50):.1f} ms, p99 {percentile(gets, 99):.1f} ms")  # fmt: skip
        result = asyncio.run(creates(args.port, token, args.seconds, args.connections, drivers))
        lat = result["latencies"]
        print(f"POST booking-requests (create): {len(lat)} requests at {args.connections} "
              f"connections, {len(lat) / result['elapsed']:.0f} req/s, "
              f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms")  # fmt: skip
        print(f"outcomes: {result['outcomes']}")
        overlaps, counts = overlapping_bookings()
        print(f"bookings by status: {counts}; overlapping blocking bookings: {overlaps}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
