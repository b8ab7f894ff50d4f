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
