"""Benchmark: 1,000 simulated chargers each charging a session and sending a meter value every
10 s for 5 minutes through one csms, with the Sessions pushes to a real eMSP HTTP receiver; then
every session stops and its CDR is pushed. Reports the csms CPU, meter values stored against
sent, the push lag (the receiver's clock minus the pushed session's last_updated) and what was
lost.

    DATABASE_URL=... REDIS_URL=... SECRET_KEY=x .venv/bin/python benchmarks/csms_meter.py
    (or: .venv/bin/python -m config.stack exec --run-dir .run/bench -- \\
         .venv/bin/python benchmarks/csms_meter.py)

Processes: the csms, the simulator and two Celery workers (the default queue and the `ocpi`
push queue), started here. A database of its own (`<name>_meter`), dropped at the end.
Options: --chargers 1000 --minutes 5 --meter-seconds 10 --port 9170
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from csms_common import (
    PREFIX,
    Processes,
    cpu_seconds,
    csms_env,
    drop_database,
    own_database,
    provision,
    simulator_args,
    wait,
)

BENCH_DB = own_database("meter")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db.models import Count, Max, Min  # noqa: E402
from django.utils import timezone  # noqa: E402

from chargers import gateway  # noqa: E402
from chargers.models import ChargeDetailRecord, ChargingSession, MeterReading  # noqa: E402
from chargers.simulator import control_channel, encode_control  # noqa: E402
from locations.models import ChargePoint  # noqa: E402
from ocpi.models import Party, Push, Token, token_digest  # noqa: E402
from ocpi.services import new_token  # noqa: E402

TOKEN = "BENCHTAG01"


class Receiver:
    """The eMSP's Sessions and CDRs receivers: records each push with its arrival time."""

    def __init__(self) -> None:
        self.sessions: list[tuple[float, dict]] = []
        self.cdrs: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                now = time.time()
                with receiver.lock:
                    if "/cdrs" in self.path:
                        receiver.cdrs.append(body)
                    elif "/sessions/" in self.path:
                        receiver.sessions.append((now, body))
                answer = json.dumps({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())

            do_PUT = do_POST = _serve

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/ocpi/emsp/2.3.0"


def tell(**message) -> None:
    gateway.client().publish(control_channel(PREFIX), encode_control(**message))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--meter-seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=9170)
    parser.add_argument(
        "--with-passwords",
        action="store_true",
        help="chargers authenticate (slow on first connect, on purpose)",
    )
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    location = provision(args.chargers, passwords=args.with_passwords)
    receiver = Receiver()
    party = Party.objects.create(
        country_code="DE", party_id="BEN", name="Benchmark eMSP", role=Party.Role.EMSP,
        state=Party.State.REGISTERED, token_b=new_token(), version="2.3.0",
        token_c_digest=token_digest(new_token()),
        endpoints=[{"identifier": "sessions", "role": "RECEIVER",
                    "url": f"{receiver.url}/sessions"},
                   {"identifier": "cdrs", "role": "RECEIVER", "url": f"{receiver.url}/cdrs"}],
    )  # fmt: skip
    Token.objects.create(owner=party, country_code="DE", party_id="BEN", uid=TOKEN,
                         type="RFID", contract_id="DE-BEN-C1", issuer="Bench", valid=True,
                         whitelist="ALWAYS", last_updated=timezone.now())  # fmt: skip

    env = csms_env(args.with_passwords)
    py = sys.executable
    with Processes(env) as procs:
        csms = procs.start("csms", [py, "manage.py", "run_csms", "--port", str(args.port)])
        procs.start("worker", [py, "-m", "celery", "-A", "config", "worker", "-Q", "celery",
                               "-c", "2", "-n", "bench-worker@%h", "--without-mingle",
                               "--without-gossip"])  # fmt: skip
        procs.start("ocpi", [py, "-m", "celery", "-A", "config", "worker", "-Q", "ocpi", "-c",
                             "2", "-n", "bench-ocpi@%h", "--without-mingle",
                             "--without-gossip"])  # fmt: skip
        procs.start("simulator", [py, "manage.py", "simulate_chargers",
                                  *simulator_args(args.port, args.with_passwords),
                                  "--meter-seconds", str(args.meter_seconds)])  # fmt: skip
        booted = ChargePoint.objects.filter(location=location, last_boot__isnull=False)
        wait(lambda: booted.count() >= args.chargers, 300, "boots")
        print(f"chargers connected and booted: {args.chargers}")

        tell(cp="*", action="start", token=TOKEN, evse=1)
        running = ChargingSession.objects.filter(stopped_at__isnull=True)
        wait(lambda: running.count() >= args.chargers, 120, "every session started")
        began, cpu0 = time.monotonic(), cpu_seconds(csms.pid)
        started_at = datetime.now(UTC)
        time.sleep(args.minutes * 60)
        cpu = cpu_seconds(csms.pid) - cpu0
        wall = time.monotonic() - began

        tell(cp="*", action="stop_all")
        wait(lambda: not running.exists(), 120, "every session stopped")
        cdrs = ChargeDetailRecord.objects.all()
        wait(lambda: len(receiver.cdrs) >= args.chargers, 300, "every CDR pushed")
        unsent = Push.objects.filter(state="PENDING")
        wait(lambda: not unsent.exists(), 120, "every push sent")

        sessions = ChargingSession.objects.annotate(
            n=Count("meter_readings"), first=Min("meter_readings__at"),
            last=Max("meter_readings__at"),
        )  # fmt: skip
        readings = MeterReading.objects.filter(at__gte=started_at).count()
        expected = args.chargers * int(wall // args.meter_seconds)
        short = [s for s in sessions if s.n and s.last and s.first and
                 s.n < int((s.last - s.first).total_seconds() // args.meter_seconds)]  # fmt: skip
        lags = [now - datetime.fromisoformat(body["last_updated"].replace("Z", "+00:00"))
                .timestamp() for now, body in receiver.sessions]  # fmt: skip
        pending = Push.objects.filter(state="PENDING").count()
        print(f"measured for {wall:.0f} s: csms CPU {cpu:.1f} s ({100 * cpu / wall:.1f}% of one "
              f"core), {1000 * cpu / max(readings, 1):.2f} ms per meter value")  # fmt: skip
        print(f"meter values stored: {readings} (about {expected} sent at one per "
              f"{args.meter_seconds:g} s); sessions with a gap: {len(short)}")  # fmt: skip
        print(f"Session pushes received: {len(receiver.sessions)}; lag p50 "
              f"{statistics.median(lags):.2f} s, p99 {percentile(lags, 99):.2f} s, "
              f"max {max(lags):.2f} s")  # fmt: skip
        print(f"CDRs issued {cdrs.count()}, pushed {len(receiver.cdrs)}; pushes still pending "
              f"{pending}")  # fmt: skip
        lost = args.chargers - len({c["id"] for c in receiver.cdrs}) + len(short)
        print(f"lost: {lost}")
        by_state = Push.objects.values_list("kind", "state").annotate(n=Count("id"))
        print("push rows:", ", ".join(f"{k} {st}: {n}" for k, st, n in sorted(by_state)))
    from django.db import connections

    for key in gateway.client().scan_iter(f"{PREFIX}:*"):
        gateway.client().delete(key)
    connections.close_all()
    drop_database(BENCH_DB)
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
