"""What chargers report about themselves, applied to locations."""

from datetime import timedelta

import pytest
from django.utils import timezone

from locations.models import EVSEStatus
from locations.services import charge_points_touch, evse_set_status
from tests.locations.factories import ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db


def test_evse_set_status_ignores_older_reports_and_operator_statuses():
    evse = EVSEFactory(ocpp_evse_id=1)
    cp = evse.charge_point
    now = timezone.now()
    assert evse_set_status(charge_point=cp, ocpp_evse_id=1, status=EVSEStatus.CHARGING, at=now)
    assert not evse_set_status(
        charge_point=cp, ocpp_evse_id=1, status=EVSEStatus.AVAILABLE,
        at=now - timedelta(seconds=5),
    )  # fmt: skip
    evse.refresh_from_db()
    assert evse.status == EVSEStatus.CHARGING
    evse.status = EVSEStatus.REMOVED
    evse.save()
    assert not evse_set_status(
        charge_point=cp, ocpp_evse_id=1, status=EVSEStatus.AVAILABLE,
        at=now + timedelta(seconds=5),
    )  # fmt: skip


def test_charge_points_touch_sets_last_seen():
    a, b = ChargePointFactory(), ChargePointFactory()
    now = timezone.now()
    assert charge_points_touch(identities=[a.identity], at=now) == 1
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.last_seen == now
    assert b.last_seen is None
