"""Redis stopped under the csms and the simulator, as real processes (issue 18, finding 3):
chargers still connect and report while Redis is away, the csms publishes its routes again
once Redis is back so that commands reach them, and the simulator outlives the restart.

Each test runs its own redis-server on a port in 7200-7299, a `run_csms` process and, for the
simulator, a `simulate_chargers` process, all on the test database."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import global_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from chargers import gateway
from chargers.simulator import SimulatedCharger
from locations.models import ChargePoint, EVSEStatus
from tests.chargers.fixtures import LoopThread, wait_for
from tests.locations.factories import CHARGER_PASSWORD, ChargePointFactory, EVSEFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
]

BASE_DIR = Path(__file__).resolve().parents[2]
PORTS = range(7200, 7300)  # the ports these tests may use
ROUTE_WAIT_SECONDS = 30  # the csms refreshes its routes every 10 s


def _free_port(taken: set[int] = set()) -> int:  # noqa: B006 (shared on purpose: one test run)
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                taken.add(port)
                return port
    raise RuntimeError("no free port in 7200-7299")


class RedisServer:
    """A redis-server of this test's own, stopped (killed) and started again on one port."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(self.log)],
        )  # fmt: skip
        wait_for(self._answers, timeout=10)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # a crash, not a clean shutdown
            self.proc.wait(10)


def _database_url() -> str:
    db = connection.settings_dict
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"


class Processes:
    """Our manage.py processes, with their output in files, stopped at the end."""

    def __init__(self, tmp_path: Path, redis_url: str, prefix: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": redis_url,
            "CSMS_BUS_PREFIX": prefix, "CSMS_COMMAND_TIMEOUT_SECONDS": "5",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "faults-test-key", "DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        out = (self.tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def output(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
def world(tmp_path, settings) -> Iterator[tuple[RedisServer, Processes, int]]:
    server = RedisServer(_free_port(), tmp_path / "redis.log")
    server.start()
    prefix = f"faults:{uuid.uuid4().hex[:8]}"
    settings.REDIS_URL = server.url  # this process's gateway and --tell use the same Redis
    settings.CSMS_BUS_PREFIX = prefix
    settings.CSMS_COMMAND_TIMEOUT_SECONDS = 5
    # The processes check passwords with the default hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    processes = Processes(tmp_path, server.url, prefix)
    csms_port = _free_port()
    csms = processes.start("csms", "run_csms", "--host", "127.0.0.1", "--port", str(csms_port))
    try:
        wait_for(lambda: _listening(csms_port) or csms.poll() is not None, timeout=60)
        assert csms.poll() is None, processes.output("csms")
        yield server, processes, csms_port
    finally:
        processes.stop()
        server.kill()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _charge_point(identity: str):
    cp = ChargePointFactory(identity=identity, is_connected=False)
    EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    return cp


def _reserve(cp) -> gateway.Reply:
    return gateway.reserve_now(
        charge_point_id=cp.identity, reservation_id=41, evse_id=1,
        expires_at=timezone.now() + timedelta(minutes=20), id_tag="TAG-41",
    )  # fmt: skip


def test_chargers_connect_and_report_while_redis_is_down_and_commands_resume(world):
    server, processes, csms_port = world
    cp = _charge_point("REDIS-DOWN-1")
    server.kill()

    loop = LoopThread()
    sim = SimulatedCharger(f"ws://127.0.0.1:{csms_port}/ocpp", cp.identity,
                           password=CHARGER_PASSWORD)  # fmt: skip
    try:
        loop.run(sim.connect())  # before: closed with 1011 while Redis was away
        loop.run(sim.cp.report(1, "Faulted"))
        cp.refresh_from_db()
        assert sim.connected and cp.is_connected and cp.last_boot is not None
        assert cp.evses.get().status == EVSEStatus.OUTOFORDER

        server.start()
        # The csms publishes its route again, and a worker's command reaches the charger.
        wait_for(lambda: gateway.is_connected(cp.identity), timeout=ROUTE_WAIT_SECONDS)
        assert _reserve(cp).status == "Accepted"
        assert list(sim.reservations) == [41]
        assert sim.connected
        assert processes.procs[0].poll() is None, processes.output("csms")
    finally:
        loop.run(sim.disconnect())
        loop.close()


def test_simulator_outlives_a_redis_restart_and_obeys_tell_again(world, tmp_path):
    server, processes, csms_port = world
    cp = _charge_point("REDIS-SIM-1")
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({cp.identity: CHARGER_PASSWORD}))
    simulator = processes.start(
        "simulator", "simulate_chargers", "--match", "REDIS-SIM-",
        "--url", f"ws://127.0.0.1:{csms_port}/ocpp", "--passwords", str(passwords),
    )  # fmt: skip
    wait_for(lambda: ChargePoint.objects.get(pk=cp.pk).is_connected, timeout=60)

    server.kill()
    time.sleep(2)  # long enough for the simulator's control channel to notice
    assert simulator.poll() is None, processes.output("simulator")
    server.start()

    def told() -> bool:
        out = io.StringIO()
        call_command("simulate_chargers", "--tell", cp.identity, "mode", "occupied", stdout=out)
        return "sent to 1 " in out.getvalue()

    wait_for(told, timeout=ROUTE_WAIT_SECONDS, interval=0.5)
    wait_for(lambda: gateway.is_connected(cp.identity), timeout=ROUTE_WAIT_SECONDS)
    wait_for(lambda: _reserve(cp).status == "Occupied", timeout=10, interval=0.5)
    assert simulator.poll() is None, processes.output("simulator")
    assert ChargePoint.objects.get(pk=cp.pk).is_connected
