"""Errors with field paths, cursor pagination, rate limits, the schema and its page."""

from datetime import timedelta

import pytest

from tests.locations.factories import EVSEFactory

pytestmark = pytest.mark.django_db


def test_validation_errors_name_field_paths(api, site):
    response = api.post(
        "/api/v1/booking-requests",
        {"type": "create", "locationId": "SITE-1", "startAt": "tomorrow",
         "evseCriteria": {"minPower": -1, "currentType": "xx"}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "The given data was invalid."
    assert set(body["errors"]) >= {"startAt", "evseCriteria.minPower", "evseCriteria.currentType"}


def test_required_fields_per_type(api, site):
    response = api.post("/api/v1/booking-requests", {"type": "create"}, format="json")
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"driverId", "locationId", "startAt", "endAt"}
    response = api.post("/api/v1/booking-requests", {"type": "cancel"}, format="json")
    assert set(response.json()["errors"]) == {"bookingId"}


def test_malformed_json_is_400(api):
    response = api.post("/api/v1/booking-requests", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_rules_refusal_is_a_rejected_request(api, site, driver, tomorrow_10):
    response = api.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": driver.pk, "locationId": "SITE-1",
         "startAt": (tomorrow_10 + timedelta(minutes=7)).isoformat(),
         "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201
    assert response.json()["data"]["rejection"]["code"] == "misaligned_slot"


def test_availability_window_over_seven_days_is_422(api, site, tomorrow_10):
    response = api.get(
        "/api/v1/locations/SITE-1/availability",
        {"startAfter": tomorrow_10.isoformat(),
         "endBefore": (tomorrow_10 + timedelta(days=8)).isoformat()},
    )  # fmt: skip
    assert response.status_code == 422
    assert "endBefore" in response.json()["errors"]
    assert api.get("/api/v1/locations/NOPE/availability").status_code == 422
    response = api.get(
        "/api/v1/locations/NOPE/availability",
        {"startAfter": tomorrow_10.isoformat(), "endBefore": tomorrow_10.isoformat()},
    )
    assert response.status_code == 404


def test_cursor_pagination_walks_every_row_once(api, site):
    for n in range(3, 8):
        EVSEFactory(charge_point=site.cp, uid=f"SITE-1-E{n}", ocpp_evse_id=n)
    seen, url = [], "/api/v1/evses?per_page=2"
    while url:
        page = api.get(url).json()
        assert len(page["data"]) <= 2
        seen += [e["id"] for e in page["data"]]
        if len(seen) == 2:  # a row inserted meanwhile comes last, and once
            EVSEFactory(charge_point=site.cp, uid="SITE-1-E9", ocpp_evse_id=9)
        url = page["links"]["next"]
    assert seen == [f"SITE-1-E{n}" for n in (1, 2, 3, 4, 5, 6, 7, 9)]
    for bad in ("0", "101", "x"):
        response = api.get("/api/v1/evses", {"per_page": bad})
        assert response.status_code == 422
        assert "per_page" in response.json()["errors"]


def test_rate_limit_is_429_with_headers(api, site, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    for remaining in (2, 1, 0):
        response = api.get("/api/v1/locations")
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        assert response["X-RateLimit-Remaining"] == str(remaining)
        assert int(response["X-RateLimit-Reset"]) > 0
    response = api.get("/api/v1/locations")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response["X-RateLimit-Remaining"] == "0"
    assert response.json()["message"]


def test_schema_and_docs_page(client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Chargebook operator API"
    assert "/api/v1/booking-requests" in schema["paths"]
    token = schema["paths"]["/api/v1/oauth/token"]["post"]  # how to get a token, too
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    assert all(path.startswith("/api/v1/") for path in schema["paths"])
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert client.get("/api/docs").status_code == 200
    missing = client.get("/api/v2/anything")
    assert missing.status_code == 404 and missing.json()["message"]
    assert b"swagger-ui" in page.content and b"cdn" not in page.content.lower()
    ocpi = client.get("/ocpi/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert not any(path.startswith("/api/") for path in ocpi.json()["paths"])


@pytest.mark.parametrize(
    "start,end",
    [("0001-01-01T00:00:00Z", "0001-01-01T01:00:00Z"),
     ("9999-12-31T10:00:00Z", "9999-12-31T11:00:00Z")],
)  # fmt: skip
def test_times_at_the_ends_of_the_calendar_are_422(api, site, driver, start, end):
    response = api.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": driver.pk, "locationId": "SITE-1", "startAt": start,
         "endAt": end},
        format="json",
    )  # fmt: skip
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"startAt", "endAt"}
    response = api.get(
        "/api/v1/locations/SITE-1/availability", {"startAfter": start, "endBefore": end}
    )
    assert response.status_code == 422


def test_the_database_away_is_503_with_retry_after(api, site, monkeypatch):
    from django.db import OperationalError

    def away(**kwargs):  # fault injection: the connection was cut mid-request
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("api.selectors.client_locations", away)
    response = api.get("/api/v1/locations")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["code"] == "unavailable"


def test_rate_limit_of_a_client_set_in_the_admin(api, api_client_row, site, settings, admin_client):
    settings.API_RATE_LIMIT_PER_MINUTE = 100
    response = admin_client.post(
        f"/admin/api/client/{api_client_row.pk}/change/",
        {"application": api_client_row.application_id, "scopes": ",".join(api_client_row.scopes),
         "rate_limit_per_minute": "2"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:3000]
    statuses = [api.get("/api/v1/locations").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
