"""Locations module, Sender interface: only published locations, with EVSEs and connectors."""

import pytest

from tests.locations.factories import EVSEFactory, LocationFactory

pytestmark = pytest.mark.django_db

BASE = "/ocpi/cpo/2.3.0/locations"


def test_locations_list_only_published_with_evses(client, emsp, site):
    LocationFactory(ocpi_id="HIDDEN", publish=False)
    response = client.get(BASE, HTTP_AUTHORIZATION=emsp.auth)
    data = response.json()["data"]
    assert [loc["id"] for loc in data] == ["LOC-AMS-001"]
    assert response["X-Total-Count"] == "1"
    location = data[0]
    assert location["country_code"] == "NL" and location["party_id"] == "CBK"
    assert location["time_zone"] == "Europe/Amsterdam"
    assert location["coordinates"] == {"latitude": "52.370216", "longitude": "4.895168"}
    assert [e["uid"] for e in location["evses"]] == ["EVSE-1", "EVSE-2"]
    connector = location["evses"][0]["connectors"][0]
    assert connector["standard"] == "IEC_62196_T2" and connector["max_electric_power"] == 22000
    assert "RESERVABLE" in location["evses"][0]["capabilities"]


def test_locations_detail_evse_connector_and_unknown(client, emsp, site):
    auth = {"HTTP_AUTHORIZATION": emsp.auth}
    assert client.get(f"{BASE}/LOC-AMS-001", **auth).json()["data"]["id"] == "LOC-AMS-001"
    assert client.get(f"{BASE}/LOC-AMS-001/EVSE-2", **auth).json()["data"]["uid"] == "EVSE-2"
    assert client.get(f"{BASE}/LOC-AMS-001/EVSE-2/1", **auth).json()["data"]["id"] == "1"
    unknown = client.get(f"{BASE}/NOPE", **auth)
    assert unknown.status_code == 404 and unknown.json()["status_code"] == 2003
    hidden = LocationFactory(ocpi_id="HIDDEN", publish=False)
    EVSEFactory(charge_point__location=hidden)
    assert client.get(f"{BASE}/HIDDEN", **auth).status_code == 404


def test_locations_last_updated_includes_evse_changes(client, emsp, site):
    before = client.get(f"{BASE}/LOC-AMS-001", HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    evse = site.charge_points.first().evses.get(uid="EVSE-2")
    evse.status = "CHARGING"
    evse.save()
    after = client.get(BASE, {"date_from": before["last_updated"]}, HTTP_AUTHORIZATION=emsp.auth)
    data = after.json()["data"]
    assert [loc["id"] for loc in data] == ["LOC-AMS-001"]
    assert data[0]["last_updated"] >= before["last_updated"]
    assert client.get(BASE, {"date_to": "2000-01-01T00:00:00Z"},
                      HTTP_AUTHORIZATION=emsp.auth).json()["data"] == []  # fmt: skip


def test_locations_limit_above_maximum_is_capped(client, emsp, site):
    response = client.get(BASE, {"limit": 5000}, HTTP_AUTHORIZATION=emsp.auth)
    assert response["X-Limit"] == "100"
    bad = client.get(BASE, {"limit": "many"}, HTTP_AUTHORIZATION=emsp.auth)
    assert bad.json()["status_code"] == 2001 and "limit" in bad.json()["status_message"]
