"""Charger-side tasks."""

import pytest

from chargers.tasks import mark_lost_connections
from tests.locations.factories import ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_chargers_left_connected_by_a_crashed_csms_are_marked_offline(stack):
    online, stale = ChargePointFactory(), ChargePointFactory()  # the factory says connected
    EVSEFactory(charge_point=online, ocpp_evse_id=1)
    stack.charger(online)
    assert mark_lost_connections() == 1
    online.refresh_from_db()
    stale.refresh_from_db()
    assert (online.is_connected, stale.is_connected) == (True, False)
