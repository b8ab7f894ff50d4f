"""What a csms counts for Prometheus (chargers.metrics), read from the process's registry as its
metrics port serves it: ReserveNow outcomes and answer times, connected chargers."""

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from chargers import gateway
from tests.chargers.fixtures import wait_for
from tests.locations.factories import ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db(transaction=True)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _reserve(cp, **kwargs):
    return gateway.reserve_now(
        charge_point_id=cp.identity, reservation_id=7, evse_id=1,
        expires_at=timezone.now() + timedelta(minutes=20), id_tag="TAG-7", **kwargs,
    )  # fmt: skip


def test_csms_counts_reserve_now_outcomes_and_answer_times(stack):
    cp = ChargePointFactory(ocpp_version="1.6")
    EVSEFactory(charge_point=cp, ocpp_evse_id=1)
    sim = stack.charger(cp)
    wait_for(lambda: value("chargebook_csms_connected_chargers") == 1)
    accepted = value("chargebook_csms_commands_total", action="ReserveNow", outcome="Accepted")
    timeouts = value("chargebook_csms_commands_total", action="ReserveNow", outcome="Timeout")
    timed = value("chargebook_csms_command_seconds_count", action="ReserveNow")
    quick = value("chargebook_csms_command_seconds_bucket", action="ReserveNow", le="0.5")

    assert _reserve(cp).accepted
    assert _reserve(cp).accepted

    async def hang(**kwargs):
        await asyncio.sleep(3)

    sim.cp.route_map["ReserveNow"]["_on_action"] = hang
    assert _reserve(cp, timeout=1).status == gateway.TIMEOUT
    wait_for(
        lambda: (
            value("chargebook_csms_commands_total", action="ReserveNow", outcome="Timeout")
            == timeouts + 1
        )
    )
    assert (
        value("chargebook_csms_commands_total", action="ReserveNow", outcome="Accepted")
        == accepted + 2
    )
    assert value("chargebook_csms_command_seconds_count", action="ReserveNow") == timed + 3
    # The timed-out call took its whole second: never in the 0.5 s bucket.
    assert value("chargebook_csms_command_seconds_bucket", action="ReserveNow", le="0.5") <= (
        quick + 2
    )
