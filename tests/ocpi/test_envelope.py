"""Transport rules every OCPI endpoint shares: auth, envelope, headers, errors."""

import base64
import re

import pytest

from ocpi.models import Party
from ocpi.services import party_add
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db

VERSIONS = "/ocpi/versions"
LOCATIONS = "/ocpi/cpo/2.3.0/locations"
DATETIME_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_envelope_missing_token_is_401_with_ocpi_body(client):
    response = client.get(VERSIONS)
    assert response.status_code == 401
    body = response.json()
    assert body["status_code"] == 2000 and "Authorization" in body["status_message"]
    assert DATETIME_Z.match(body["timestamp"])


def test_envelope_unknown_token_is_401(client):
    response = client.get(
        LOCATIONS, HTTP_AUTHORIZATION="Token " + base64.b64encode(b"nope").decode()
    )
    assert response.status_code == 401
    assert response.json()["status_code"] == 2000


def test_envelope_accepts_base64_token_with_trailing_newline(client):
    party = PartyFactory(token="example-token")
    header = "Token " + base64.b64encode(b"example-token\n").decode()
    response = client.get(VERSIONS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 200
    assert response.json()["data"][0]["version"] == "2.3.0"
    assert party.auth != header


def test_envelope_raw_token_only_for_legacy_parties(client):
    PartyFactory(token="raw-token-1")
    assert client.get(VERSIONS, HTTP_AUTHORIZATION="Token raw-token-1").status_code == 401
    PartyFactory(token="raw-token-2", legacy_raw_token=True)
    assert client.get(VERSIONS, HTTP_AUTHORIZATION="Token raw-token-2").status_code == 200


def test_envelope_token_a_opens_only_versions_and_credentials(client):
    _, token_a = party_add(country_code="DE", party_id="AAA")
    header = "Token " + base64.b64encode(token_a.encode()).decode()
    assert client.get(VERSIONS, HTTP_AUTHORIZATION=header).status_code == 200
    assert client.get("/ocpi/2.3.0/", HTTP_AUTHORIZATION=header).status_code == 200
    denied = client.get(LOCATIONS, HTTP_AUTHORIZATION=header)
    assert denied.status_code == 401
    assert denied.json()["status_code"] == 2000
    assert client.get("/ocpi/cpo/2.3.0/bookings", HTTP_AUTHORIZATION=header).status_code == 401


def test_envelope_echoes_request_and_correlation_ids_and_routing_headers(client):
    party = PartyFactory(country_code="DE", party_id="XMS")
    response = client.get(
        LOCATIONS, HTTP_AUTHORIZATION=party.auth, HTTP_X_REQUEST_ID="req-1",
        HTTP_X_CORRELATION_ID="corr-1",
    )  # fmt: skip
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-1"
    assert response["X-Correlation-ID"] == "corr-1"
    assert response["OCPI-from-country-code"] == "NL"
    assert response["OCPI-to-party-id"] == "XMS"
    body = response.json()
    assert body["status_code"] == 1000 and DATETIME_Z.match(body["timestamp"])


def test_envelope_configuration_modules_carry_no_routing_headers(client):
    party = PartyFactory()
    response = client.get(VERSIONS, HTTP_AUTHORIZATION=party.auth)
    assert "OCPI-from-party-id" not in response


def test_envelope_unknown_path_is_ocpi_404(client):
    party = PartyFactory()
    response = client.get("/ocpi/cpo/2.3.0/nothing-here", HTTP_AUTHORIZATION=party.auth)
    assert response.status_code == 404
    assert response.json()["status_code"] == 2000


def test_envelope_malformed_json_is_400_with_2001(client):
    party = PartyFactory()
    response = client.post(
        "/ocpi/cpo/2.3.0/bookings", data="{not json", content_type="application/json",
        HTTP_AUTHORIZATION=party.auth,
    )  # fmt: skip
    assert response.status_code == 400
    body = response.json()
    assert body["status_code"] == 2001 and "JSON" in body["status_message"]


def test_envelope_unregistered_party_token_is_refused(client):
    party = PartyFactory(state=Party.State.UNREGISTERED)
    assert client.get(VERSIONS, HTTP_AUTHORIZATION=party.auth).status_code == 401


def test_envelope_version_details_list_our_modules(client, settings):
    settings.PUBLIC_BASE_URL = "https://cpo.example.com"
    party = PartyFactory()
    data = client.get("/ocpi/2.3.0/", HTTP_AUTHORIZATION=party.auth).json()["data"]
    assert data["version"] == "2.3.0"
    endpoints = {(e["identifier"], e["role"]): e["url"] for e in data["endpoints"]}
    assert endpoints[("Booking", "SENDER")] == "https://cpo.example.com/ocpi/cpo/2.3.0/bookings"
    assert ("locations", "SENDER") in endpoints
    assert ("tokens", "RECEIVER") in endpoints
    assert ("commands", "RECEIVER") in endpoints
    assert endpoints[("credentials", "SENDER")] == "https://cpo.example.com/ocpi/2.3.0/credentials"


def test_envelope_non_ascii_or_nul_in_ids_is_2001_not_a_crash(client):
    party = PartyFactory()
    response = client.get("/ocpi/cpo/2.3.0/locations/%00abc", HTTP_AUTHORIZATION=party.auth)
    assert response.status_code == 400 and response.json()["status_code"] == 2001
    body = '{"country_code": "DE", "note": "\\u0000"}'
    posted = client.post("/ocpi/cpo/2.3.0/bookings", data=body, content_type="application/json",
                         HTTP_AUTHORIZATION=party.auth)  # fmt: skip
    assert posted.json()["status_code"] == 2001
