"""The simulator's control messages (what `simulate_chargers --tell` publishes)."""

import pytest

from chargers.models import ChargingSession
from chargers.simulator import handle_control
from tests.locations.factories import ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_control_sets_mode_and_starts_a_session(stack):
    cp = ChargePointFactory(ocpp_version="2.0.1")
    EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    sim = stack.charger(cp)
    sims = {cp.identity: sim}
    answer = stack.run(handle_control(sims, {"cp": "*", "action": "mode", "mode": "faulted"}))
    assert answer == f"{cp.identity}: mode faulted"
    assert sim.mode == "faulted"
    answer = stack.run(
        handle_control(sims, {"cp": cp.identity, "action": "start", "token": "T-1", "evse": 1})
    )
    session = ChargingSession.objects.get(charge_point=cp)
    assert answer == f"{cp.identity}: session {session.transaction_id} started"
    assert session.id_tag == "T-1"
    stack.run(handle_control(sims, {"cp": cp.identity, "action": "mode", "mode": "offline"}))
    assert not sim.connected
    assert stack.run(handle_control(sims, {"cp": "NOPE", "action": "mode"})) == "no such charger"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_running_simulator_reports_its_meter_while_a_session_charges(stack, version):
    import asyncio

    from tests.chargers.fixtures import wait_for

    cp = ChargePointFactory(ocpp_version=version)
    EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    sim = stack.charger(cp, meter_seconds=0.2, power_w=36_000_000)  # 10 kWh a second
    runner = asyncio.run_coroutine_threadsafe(
        sim.run_forever(heartbeat_seconds=300), stack.loop.loop
    )
    try:
        # The session starts while run_forever waits: it still reports within a meter interval.
        stack.run(handle_control({cp.identity: sim}, {"cp": cp.identity, "action": "start",
                                                      "token": "T-MV", "evse": 1}))  # fmt: skip
        session = ChargingSession.objects.get(charge_point=cp)
        wait_for(lambda: session.meter_readings.count() >= 2, timeout=10)
        session.refresh_from_db()
        assert session.meter_last_wh is not None and session.energy_wh > 0
    finally:
        runner.cancel()
