"""Redis stopped under the csms and the simulator, as real processes (issue 18, finding 3):
chargers still connect and report while Redis is away, the csms publishes its routes again
once Redis is back so that commands reach them, and the simulator outlives the restart.

Each test runs its own redis-server on a port in 7200-7299, a `run_csms` process and, for the
simulator, a `simulate_chargers` process, all on the test database."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chargers import gateway
from chargers.simulator import SimulatedCharger
from locations.models import ChargePoint, EVSEStatus
from tests.chargers.fixtures import LoopThread, wait_for
from tests.faults.chargers_processes import ROUTE_WAIT_SECONDS
from tests.locations.factories import CHARGER_PASSWORD, ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _charge_point(identity: str):
    cp = ChargePointFactory(identity=identity, is_connected=False)
    EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    return cp


def _reserve(cp) -> gateway.Reply:
    return gateway.reserve_now(
        charge_point_id=cp.identity, reservation_id=41, evse_id=1,
        expires_at=timezone.now() + timedelta(minutes=20), id_tag="TAG-41",
    )  # fmt: skip


def test_chargers_connect_and_report_while_redis_is_down_and_commands_resume(charger_world):
    server, processes, csms_port = charger_world
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


def test_simulator_outlives_a_redis_restart_and_obeys_tell_again(charger_world, tmp_path):
    server, processes, csms_port = charger_world
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
