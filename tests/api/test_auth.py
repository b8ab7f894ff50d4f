"""Tokens, scopes, location limits and isolation between clients."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from api.models import Client
from tests.api.conftest import api_for, token_for
from tests.api.factories import ClientFactory
from tests.bookings.factories import DriverFactory
from tests.locations.factories import ChargePointFactory, EVSEFactory, LocationFactory

pytestmark = pytest.mark.django_db


def test_token_with_credentials_in_the_body(api_client_row):
    response = APIClient().post(
        "/api/v1/oauth/token",
        f"grant_type=client_credentials&client_id={api_client_row.application.client_id}"
        f"&client_secret={api_client_row.secret}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == {"read", "book", "drivers"}


def test_token_with_a_wrong_secret_is_refused(api_client_row):
    response = APIClient().post(
        "/api/v1/oauth/token",
        f"grant_type=client_credentials&client_id={api_client_row.application.client_id}"
        "&client_secret=wrong",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_no_or_bad_token_is_401(site):
    response = APIClient().get("/api/v1/locations")
    assert response.status_code == 401
    assert response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION="Bearer nonsense")
    assert http.get("/api/v1/locations").status_code == 401


def test_scope_missing_is_403(site, driver, tomorrow_10):
    reader = api_for(ClientFactory(scopes=["read"]))
    assert reader.get("/api/v1/locations").status_code == 200
    response = reader.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": driver.pk, "locationId": "SITE-1",
         "startAt": tomorrow_10.isoformat(),
         "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()},
        format="json",
    )  # fmt: skip
    assert response.status_code == 403
    assert "book" in response.json()["message"]
    assert reader.post("/api/v1/drivers", {"name": "X"}, format="json").status_code == 403


def test_location_limits(site, driver, tomorrow_10):
    other = LocationFactory(ocpi_id="OTHER")
    other_cp = ChargePointFactory(location=other, identity="OTHER-CP")
    EVSEFactory(charge_point=other_cp, uid="OTHER-E1")
    limited = api_for(ClientFactory(scopes=["read", "book", "drivers"], locations=[other]))
    assert [x["id"] for x in limited.get("/api/v1/locations").json()["data"]] == ["OTHER"]
    assert [x["id"] for x in limited.get("/api/v1/evses").json()["data"]] == ["OTHER-E1"]
    assert limited.get("/api/v1/locations/SITE-1").status_code == 404
    assert limited.get("/api/v1/charge-points/DEPOT-CP1").status_code == 404
    assert limited.get(f"/api/v1/evses/{site.ac.uid}").status_code == 404
    response = limited.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": driver.pk, "locationId": "SITE-1",
         "startAt": tomorrow_10.isoformat(),
         "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()},
        format="json",
    )  # fmt: skip
    assert response.status_code == 403


def test_without_drivers_scope_a_client_sees_no_other_driver(site, tomorrow_10):
    first = ClientFactory(scopes=["read", "book"])
    manager = api_for(ClientFactory(scopes=["read", "drivers"]))
    driver_id = manager.post(
        "/api/v1/drivers", {"name": "Bo", "email": "bo@example.com",
                            "tokens": [{"uid": "04BB00000001"}]}, format="json",
    ).json()["data"]["id"]  # fmt: skip
    a = api_for(first)
    # Without the drivers scope a client sees no driver it did not create or book.
    assert a.get("/api/v1/drivers", {"email": "bo@example.com"}).json()["data"] == []
    response = a.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": driver_id, "locationId": "SITE-1",
         "startAt": tomorrow_10.isoformat(),
         "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()},
        format="json",
    )  # fmt: skip
    assert response.status_code == 422
    assert "driverId" in response.json()["errors"]


def test_isolation_of_requests_and_bookings(site, tomorrow_10):
    first, second = ClientFactory(scopes=["read", "book", "drivers"]), ClientFactory()
    a, b = api_for(first), api_for(second)
    ana = DriverFactory(email="x@example.com")
    made = a.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": ana.pk, "locationId": "SITE-1",
         "startAt": tomorrow_10.isoformat(),
         "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat(), "externalId": "same"},
        format="json",
    ).json()["data"]  # fmt: skip
    assert made["status"] == "approved"
    assert b.get("/api/v1/bookings").json()["data"] == []
    assert b.get("/api/v1/booking-requests").json()["data"] == []
    assert b.get(f"/api/v1/bookings/{made['bookingId']}").status_code == 404
    assert b.get(f"/api/v1/booking-requests/{made['id']}").status_code == 404
    assert b.delete(f"/api/v1/reservations/{made['bookingId']}").status_code == 404
    cancel = b.post(
        "/api/v1/booking-requests", {"type": "cancel", "bookingId": made["bookingId"]},
        format="json",
    )  # fmt: skip
    assert cancel.status_code == 422
    # The same external id is another client's own.
    assert b.get("/api/v1/booking-requests", {"externalId": "same"}).json()["data"] == []
    # The driver now holds a booking of the first client: it sees them without the scope.
    assert [d["id"] for d in a.get("/api/v1/drivers").json()["data"]] == [ana.pk]


def test_api_add_client_prints_id_then_secret(site, capsys):
    call_command("api_add_client", "Fleet", "--scopes", "read,book", "--locations", "site-1")
    lines = capsys.readouterr().out.strip().splitlines()
    client_id, secret = lines[-2], lines[-1]
    client = Client.objects.get(application__client_id=client_id)
    assert client.scopes == ["read", "book"]
    assert [loc.ocpi_id for loc in client.locations.all()] == ["SITE-1"]
    client.secret = secret
    assert token_for(client)
