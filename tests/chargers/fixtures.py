"""A real csms on an ephemeral port, in an event loop on a background thread, with real Redis
(a command bus prefix per test) and simulated chargers built on the ocpp library. Registered
for every test module in tests/conftest.py (pytest_plugins): bookings' and OCPI's tests drive
chargers too."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from chargers.csms import Csms
from chargers.simulator import SimulatedCharger
from config.celery import app as celery_app
from tests.locations.factories import CHARGER_PASSWORD


class LoopThread:
    """An asyncio loop on its own thread; `run` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Stack:
    """The running csms processes (as objects) and helpers to attach simulated chargers."""

    def __init__(self, loop: LoopThread, prefix: str) -> None:
        self.loop = loop
        self.prefix = prefix
        self.nodes: list[Csms] = []

    def start_csms(self) -> Csms:
        async def start() -> Csms:
            csms = Csms(port=0, bus_prefix=self.prefix, command_timeout=3, db_threads=2)
            await csms.start()
            return csms

        csms = self.loop.run(start())
        self.nodes.append(csms)
        return csms

    def url(self, csms: Csms | None = None) -> str:
        return f"ws://127.0.0.1:{(csms or self.nodes[0]).port}/ocpp"

    def charger(self, charge_point, *, csms: Csms | None = None, **kwargs) -> SimulatedCharger:
        """Connect and boot a simulated charger for a provisioned ChargePoint row (with the
        factories' password unless given)."""
        kwargs.setdefault("password", CHARGER_PASSWORD)
        sim = SimulatedCharger(
            self.url(csms),
            charge_point.identity,
            version=charge_point.ocpp_version,
            evses=max(charge_point.evses.count(), 1),
            **kwargs,
        )
        self.loop.run(sim.connect())
        return sim

    def run(self, coro: Coroutine, timeout: float = 20) -> Any:
        return self.loop.run(coro, timeout)

    def stop(self) -> None:
        for csms in self.nodes:
            self.loop.run(csms.stop(), timeout=30)


def wait_for(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy (something another thread or process does)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


@pytest.fixture
def bus_prefix(settings) -> str:
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    settings.CSMS_BUS_PREFIX = prefix
    settings.CSMS_COMMAND_TIMEOUT_SECONDS = 3
    return prefix


@pytest.fixture
def eager_celery():
    """Tasks enqueued on commit run in-process, as a worker would run them."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def stack(transactional_db, bus_prefix, eager_celery):
    loop = LoopThread()
    stack = Stack(loop, bus_prefix)
    stack.start_csms()
    sims: list[SimulatedCharger] = []
    original = stack.charger

    def charger(*args, **kwargs) -> SimulatedCharger:
        sim = original(*args, **kwargs)
        sims.append(sim)
        return sim

    stack.charger = charger
    try:
        yield stack
    finally:
        for sim in sims:
            loop.run(sim.disconnect())
        stack.stop()
        loop.close()
