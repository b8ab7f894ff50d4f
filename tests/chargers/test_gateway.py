"""The worker-to-csms command bus over real Redis: routing, offline, timeouts."""

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from chargers import gateway
from tests.chargers.fixtures import wait_for
from tests.locations.factories import ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _cp(version="1.6"):
    cp = ChargePointFactory(ocpp_version=version)
    EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    return cp


def _reserve(cp, **kwargs):
    return gateway.reserve_now(
        charge_point_id=cp.identity, reservation_id=7, evse_id=1,
        expires_at=timezone.now() + timedelta(minutes=20), id_tag="TAG-7", **kwargs,
    )  # fmt: skip


def test_gateway_reports_offline_for_charger_no_csms_holds(stack):
    cp = _cp()
    reply = _reserve(cp)
    assert reply.status == gateway.OFFLINE
    assert not gateway.is_connected(cp.identity)


def test_gateway_reaches_charger_and_route_goes_with_the_connection(stack):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    assert gateway.is_connected(cp.identity)
    reply = _reserve(cp, token_type="ISO14443")
    assert (reply.status, reply.node) == ("Accepted", stack.nodes[0].node)
    assert sim.received[-1].payload["id_token"] == {"id_token": "TAG-7", "type": "ISO14443"}
    assert gateway.cancel_reservation(charge_point_id=cp.identity, reservation_id=7).accepted
    assert gateway.cancel_reservation(charge_point_id=cp.identity, reservation_id=7).status == (
        "Rejected"
    )
    stack.run(sim.disconnect())
    wait_for(lambda: not gateway.is_connected(cp.identity))
    assert _reserve(cp).status == gateway.OFFLINE


def test_gateway_times_out_when_charger_does_not_answer(stack):
    cp = _cp()
    sim = stack.charger(cp)

    async def hang(**kwargs):
        # Long past the 1 s the gateway waits, and over well before the teardown's 30 s budget
        # for stopping the csms (a 30 s hang raced it and sometimes lost).
        await asyncio.sleep(5)

    sim.cp.route_map["ReserveNow"]["_on_action"] = hang
    reply = _reserve(cp, timeout=1)
    assert reply.status == gateway.TIMEOUT


def test_gateway_reports_call_error_from_charger(stack):
    cp = _cp()
    sim = stack.charger(cp)
    del sim.cp.route_map["ReserveNow"]  # a charger without the Reservation profile
    reply = _reserve(cp)
    assert reply.status == gateway.CALL_ERROR
    assert "NotImplemented" in reply.detail


def test_gateway_send_batch_gets_every_reply(stack):
    cps = [_cp("1.6" if n % 2 else "2.0.1") for n in range(6)]
    sims = [stack.charger(cp) for cp in cps]
    commands = [
        gateway.reserve_now_command(
            charge_point_id=cp.identity,
            reservation_id=n,
            evse_id=1,
            expires_at=timezone.now() + timedelta(minutes=20),
            id_tag=f"T{n}",
        )
        for n, cp in enumerate(cps)
    ]
    replies = gateway.send(commands)
    assert [replies[c.id].status for c in commands] == ["Accepted"] * 6
    assert all(len(sim.reservations) == 1 for sim in sims)
