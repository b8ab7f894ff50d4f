"""Slow-client benchmark: is the web server still answering while clients trickle their headers?

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_slow_bench
    export REDIS_URL=redis://127.0.0.1:6379/3 SECRET_KEY=bench
    .venv/bin/python benchmarks/slow_clients.py [--seconds 30] [--slow 10] [--server production]

It migrates the database named by DATABASE_URL (it must be named cb_*_bench), starts the web
server as production does (the Procfile's `web:` line; `--server` picks a candidate instead,
see benchmarks/servers.py), and opens `--slow` connections that each send a request's headers
at one byte per second (a new connection when the server closes one). Meanwhile another client
opens a new connection every `--interval` seconds and sends GET /ocpi/versions (without a token:
a quick 401), one probe at a time. It prints the probes' p50/p95/max latency, the probes that
failed or took longer than `--probe-timeout`, and how often the server closed a trickling
connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import servers  # noqa: E402

PROBE = b"GET /ocpi/versions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
# Headers long enough never to end during a run at one byte per second.
SLOW_HEAD = b"GET /ocpi/versions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self.slow_opened = 0
        self.slow_closed_by_server = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def trickle(port: int, until: float, stats: Stats) -> None:
    """Send SLOW_HEAD one byte a second, reconnecting when the server closes the connection."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats.error("slow client could not connect")
            await asyncio.sleep(1)
            continue
        stats.slow_opened += 1
        closed = asyncio.ensure_future(reader.read(65536))
        try:
            for byte in SLOW_HEAD:
                if closed.done() or time.monotonic() >= until:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait([closed], timeout=1.0)
        except OSError:
            pass
        if closed.done():
            stats.slow_closed_by_server += 1
        closed.cancel()
        writer.close()


async def probe(port: int, timeout: float, stats: Stats) -> None:
    began = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(PROBE)
            await writer.drain()
            response = await reader.read()  # Connection: close, so up to EOF
            writer.close()
    except TimeoutError:
        stats.error(f"no answer within {timeout:.0f} s")
        return
    except OSError as error:
        stats.error(f"{type(error).__name__}: {error}")
        return
    if not response.startswith(b"HTTP/1."):
        stats.error("connection closed without an answer")
        return
    stats.latencies.append(time.monotonic() - began)
    status = int(response[9:12])
    stats.statuses[status] = stats.statuses.get(status, 0) + 1


async def run(port: int, args: argparse.Namespace) -> Stats:
    warm = Stats()
    for _ in range(20):  # reach every worker process once before measuring
        await probe(port, args.probe_timeout, warm)
    stats = Stats()
    until = time.monotonic() + args.seconds + 2
    slow = [asyncio.create_task(trickle(port, until, stats)) for _ in range(args.slow)]
    await asyncio.sleep(2)  # every slow client connected and trickling
    while time.monotonic() < until:
        began = time.monotonic()
        await probe(port, args.probe_timeout, stats)
        await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - began)))
    await asyncio.gather(*slow)
    return stats


def ms(values: list[float], q: int) -> str:
    if len(values) < 2:
        return "n/a"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[q - 1] * 1000:.1f} ms"


def migrate() -> None:
    name = urlparse(os.environ["DATABASE_URL"]).path.lstrip("/")
    if not name.startswith("cb_") or "bench" not in name:
        raise SystemExit(f"Refusing to use {name!r}: use a database named like cb_*_bench.")
    import psycopg

    admin = urlparse(os.environ["DATABASE_URL"])._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True,
                   env={**os.environ, "DEBUG": "1"})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30, help="how long to probe")
    parser.add_argument("--slow", type=int, default=10, help="clients trickling headers")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--probe-timeout", type=float, default=10)
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--server", default="production", choices=servers.SERVERS)
    parser.add_argument("--threads", type=int, default=8, help="for gthread and granian")
    args = parser.parse_args()
    migrate()
    server = servers.start(args.server, args.port, args.threads)
    try:
        stats = asyncio.run(run(args.port, args))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    lat = stats.latencies
    print(f"{args.slow} clients trickling headers at 1 byte/s; GET /ocpi/versions probes for "
          f"{args.seconds:.0f} s, one every {args.interval} s on a new connection")  # fmt: skip
    print(f"probes answered: {len(lat)} (status {stats.statuses}); p50 {ms(lat, 50)}, "
          f"p95 {ms(lat, 95)}, max {max(lat, default=0) * 1000:.1f} ms")  # fmt: skip
    print(f"probe errors: {stats.errors or 0}")
    print(f"slow connections opened {stats.slow_opened}, closed by the server "
          f"{stats.slow_closed_by_server}")  # fmt: skip


if __name__ == "__main__":
    main()
