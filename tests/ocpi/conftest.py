from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tests.locations.factories import BookingPolicyFactory, EVSEFactory, LocationFactory
from tests.ocpi.factories import PartyFactory


@pytest.fixture
def emsp(db):
    return PartyFactory(country_code="DE", party_id="XMS")


@pytest.fixture
def other_emsp(db):
    return PartyFactory(country_code="FR", party_id="OTH")


@pytest.fixture
def site(db):
    location = LocationFactory(ocpi_id="LOC-AMS-001")
    BookingPolicyFactory(location=location, change_until_minutes=15, cancel_until_minutes=15)
    cp_evse = EVSEFactory(charge_point__location=location, uid="EVSE-1")
    EVSEFactory(charge_point=cp_evse.charge_point, uid="EVSE-2")
    return location


@pytest.fixture
def tomorrow_10():
    day = timezone.now().date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
