"""The two vendor workflows end to end over HTTP: the booking API's eight steps and the depot
API's reserve/remove."""

from datetime import timedelta

import pytest

from bookings.models import Booking, BookingTransition, Status

pytestmark = pytest.mark.django_db


def test_booking_api_eight_steps(api, site, driver, tomorrow_10):
    # 1. locations
    locations = api.get("/api/v1/locations").json()
    assert [loc["id"] for loc in locations["data"]] == ["SITE-1"]
    # 2. charge points at the site
    cps = api.get("/api/v1/charge-points", {"locationId": "SITE-1"}).json()["data"]
    assert [c["id"] for c in cps] == ["DEPOT-CP1"]
    # 3. EVSEs of the charge point, bookable ones
    evses = api.get("/api/v1/charge-points/DEPOT-CP1/evses", {"bookable": "true"}).json()["data"]
    assert {e["id"]: e["currentType"] for e in evses} == {"SITE-1-E1": "ac", "SITE-1-E2": "dc"}
    assert evses[1]["connectors"][0]["maxPowerKw"] == 150.0
    # 4. availability, DC only
    start, end = tomorrow_10, tomorrow_10 + timedelta(hours=8)
    avail = api.get(
        "/api/v1/locations/SITE-1/availability",
        {"startAfter": start.isoformat(), "endBefore": end.isoformat(), "currentType": "dc"},
    ).json()["data"]
    assert [a["evseId"] for a in avail] == ["SITE-1-E2"]
    assert avail[0]["availableSlots"][0]["startAt"] == start.isoformat().replace("+00:00", "Z")
    # 5. the driver by email
    found = api.get("/api/v1/drivers", {"email": "ANA@example.com"}).json()["data"]
    assert [d["id"] for d in found] == [driver.pk]
    # 6. booking request, EVSE by criteria
    response = api.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": driver.pk, "locationId": "SITE-1",
         "startAt": start.isoformat(), "endAt": (start + timedelta(hours=1)).isoformat(),
         "evseCriteria": {"currentType": "dc", "minPower": 50}, "externalId": "dispatch-1"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    request = response.json()["data"]
    assert request["status"] == "approved" and request["rejection"] is None
    assert response["Location"] == f"/api/v1/booking-requests/{request['id']}"
    # 7. read the request back
    again = api.get(f"/api/v1/booking-requests/{request['id']}").json()["data"]
    assert again["bookingId"] == request["bookingId"]
    # 8. the confirmed booking
    bookings = api.get("/api/v1/bookings", {"driverId": driver.pk}).json()["data"]
    assert len(bookings) == 1
    booking = bookings[0]
    assert booking["id"] == request["bookingId"]
    assert booking["status"] == "reserved" and booking["channel"] == "api"
    assert booking["evseId"] == "SITE-1-E2"
    assert [t["uid"] for t in booking["tokens"]] == ["89C4704A"]
    assert [r["id"] for r in booking["requests"]] == [request["id"]]
    row = Booking.objects.get(uid=request["bookingId"])
    assert row.channel == Booking.Channel.API
    audit = BookingTransition.objects.get(booking=row)
    assert audit.actor_type == BookingTransition.ActorType.API


def test_booking_request_rejected_with_reason_and_slot_now_busy(api, site, driver, tomorrow_10):
    body = {"type": "create", "driverId": driver.pk, "locationId": "SITE-1", "evseId": site.ac.uid,
            "startAt": tomorrow_10.isoformat(),
            "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()}  # fmt: skip
    assert api.post("/api/v1/booking-requests", body, format="json").status_code == 201
    other = {**body, "startAt": (tomorrow_10 + timedelta(minutes=30)).isoformat(),
             "endAt": (tomorrow_10 + timedelta(minutes=90)).isoformat()}  # fmt: skip
    response = api.post("/api/v1/booking-requests", other, format="json")
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["status"] == "rejected" and data["bookingId"] is None
    # The driver's one token already holds the first booking at that time.
    assert data["rejection"]["code"] in {"slot_unavailable", "token_overlap"}
    assert data["rejection"]["message"]
    rejected = api.get("/api/v1/booking-requests", {"status": "rejected"}).json()["data"]
    assert [r["id"] for r in rejected] == [data["id"]]


def test_booking_update_then_cancel(api, site, driver, tomorrow_10):
    created = api.post(
        "/api/v1/booking-requests",
        {"type": "create", "driverId": driver.pk, "locationId": "SITE-1", "evseId": site.ac.uid,
         "startAt": tomorrow_10.isoformat(),
         "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()},
        format="json",
    ).json()["data"]  # fmt: skip
    later = tomorrow_10 + timedelta(hours=2)
    moved = api.post(
        "/api/v1/booking-requests",
        {"type": "update", "bookingId": created["bookingId"], "startAt": later.isoformat(),
         "endAt": (later + timedelta(hours=1)).isoformat(), "evseId": site.dc.uid},
        format="json",
    ).json()["data"]  # fmt: skip
    assert moved["status"] == "approved"
    booking = api.get(f"/api/v1/bookings/{created['bookingId']}").json()["data"]
    assert booking["evseId"] == site.dc.uid
    assert booking["startAt"] == later.isoformat().replace("+00:00", "Z")
    canceled = api.post(
        "/api/v1/booking-requests",
        {"type": "cancel", "bookingId": created["bookingId"], "canceledReason": "traffic"},
        format="json",
    ).json()["data"]  # fmt: skip
    assert canceled["status"] == "approved"
    booking = api.get(f"/api/v1/bookings/{created['bookingId']}").json()["data"]
    assert booking["status"] == "canceled" and booking["canceledReason"] == "traffic"
    assert [r["type"] for r in booking["requests"]] == ["create", "update", "cancel"]
    again = api.post(
        "/api/v1/booking-requests", {"type": "cancel", "bookingId": created["bookingId"]},
        format="json",
    ).json()["data"]  # fmt: skip
    assert again["status"] == "rejected"
    assert again["rejection"]["code"] == "invalid_transition"


def test_depot_reserve_and_remove(api, site, driver, tomorrow_10):
    response = api.post(
        "/api/v1/reservations/chargers/DEPOT-CP1/connectors/2",
        {"reservationStart": tomorrow_10.isoformat(),
         "reservationEnd": (tomorrow_10 + timedelta(hours=3)).isoformat(),
         "authorizationType": "RFID", "authorizationValue": "89c4704a"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    reservation_id = response.json()["reservationId"]
    booking = Booking.objects.get(uid=reservation_id)
    assert booking.status == Status.RESERVED and booking.evse.uid == "SITE-1-E2"
    assert booking.driver == driver
    assert list(booking.tokens.values_list("uid", flat=True)) == ["89C4704A"]
    # The same connector and time again: taken.
    clash = api.post(
        "/api/v1/reservations/chargers/DEPOT-CP1/connectors/2",
        {"reservationStart": tomorrow_10.isoformat(),
         "reservationEnd": (tomorrow_10 + timedelta(hours=1)).isoformat(),
         "authorizationValue": "04AABBCCDD"},
        format="json",
    )  # fmt: skip
    assert clash.status_code == 409
    assert clash.json()["code"] == "slot_unavailable"
    removed = api.delete(f"/api/v1/reservations/{reservation_id}")
    assert removed.status_code == 200
    booking.refresh_from_db()
    assert booking.status == Status.CANCELED
    assert api.delete(f"/api/v1/reservations/{reservation_id}").status_code == 409
    assert api.delete("/api/v1/reservations/not-a-uuid").status_code == 404


def test_depot_reserve_unknown_connector_is_404(api, site, tomorrow_10):
    response = api.post(
        "/api/v1/reservations/chargers/DEPOT-CP1/connectors/9",
        {"reservationStart": tomorrow_10.isoformat(),
         "reservationEnd": (tomorrow_10 + timedelta(hours=1)).isoformat(),
         "authorizationValue": "04AABBCCDD"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 404
    assert response.json()["message"]
