"""An API client with a real token from the token endpoint, and a site to book at."""

import base64
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.api.factories import ClientFactory
from tests.bookings.factories import DriverFactory, DriverTokenFactory
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    LocationFactory,
)


def token_for(client, http=None) -> str:
    """A Bearer token from POST /api/v1/oauth/token (client credentials by HTTP Basic)."""
    http = http or APIClient()
    basic = base64.b64encode(f"{client.application.client_id}:{client.secret}".encode()).decode()
    response = http.post(
        "/api/v1/oauth/token",
        "grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Basic {basic}",
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def api_for(client) -> APIClient:
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(client)}")
    return http


@pytest.fixture
def site(db):
    """A 24/7 site with one charge point of two EVSEs (AC 22 kW, DC 150 kW)."""
    location = LocationFactory(ocpi_id="SITE-1", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location, min_duration_minutes=30)
    cp = ChargePointFactory(location=location, identity="DEPOT-CP1")
    ac = EVSEFactory(charge_point=cp, uid="SITE-1-E1", ocpp_evse_id=1)
    dc = EVSEFactory(charge_point=cp, uid="SITE-1-E2", ocpp_evse_id=2, connectors=[])
    ConnectorFactory(evse=dc, connector_id="1", dc=True)
    return SimpleNamespace(location=location, cp=cp, ac=ac, dc=dc)


@pytest.fixture
def driver(db):
    driver = DriverFactory(email="ana@example.com", name="Ana")
    DriverTokenFactory(driver=driver, uid="89C4704A")
    return driver


@pytest.fixture
def api_client_row(db):
    return ClientFactory(scopes=["read", "book", "drivers"])


@pytest.fixture
def api(api_client_row):
    return api_for(api_client_row)


@pytest.fixture
def tomorrow_10():
    """Tomorrow 10:00 UTC, on every grid."""
    return (timezone.now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
