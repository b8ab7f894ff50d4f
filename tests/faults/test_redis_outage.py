"""Redis away while users write (issue 18, finding 6): a write that committed answers as
committed; what could not be queued is left to the beat sweeps, which read the database."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from bookings.models import Booking, ChargerReservation, Status
from ocpi.models import Command
from tests.bookings.factories import BookingFactory
from tests.faults.conftest import start_web
from tests.locations.factories import EVSEFactory, LocationFactory
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_ocpi_reserve_now_during_a_redis_outage_answers_accepted(processes, redis_server):
    base = start_web(processes, redis_server.url)
    location = LocationFactory(ocpi_id="LOC-OUT-1")
    EVSEFactory(charge_point__location=location, uid="EVSE-OUT-1")
    party = PartyFactory(country_code="DE", party_id="XMS")
    redis_server.stop()
    body = {
        "response_url": "http://127.0.0.1:9/ocpi/emsp/2.3.0/commands/RESERVE_NOW/R1",
        "token": {"country_code": "DE", "party_id": "XMS", "uid": "APP-1", "type": "APP_USER",
                  "contract_id": "DE-XMS-C12345678-9", "issuer": "eMSP", "valid": True,
                  "whitelist": "NEVER", "last_updated": "2026-01-01T00:00:00Z"},
        "expiry_date": (timezone.now() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reservation_id": "R1", "location_id": "LOC-OUT-1", "evse_uid": "EVSE-OUT-1",
    }  # fmt: skip
    response = httpx.post(
        f"{base}/ocpi/cpo/2.3.0/commands/RESERVE_NOW", json=body,
        headers={"Authorization": party.auth}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["status_code"] == 1000
    assert response.json()["data"]["result"] == "ACCEPTED"
    booking = Booking.objects.get()
    assert booking.status == Status.RESERVED
    # Not sent to the charger yet: the reservation sweep finds it NOT_SENT and sends it.
    assert booking.charger_reservation == ChargerReservation.NOT_SENT
    assert Command.objects.get().result_sent_at is None  # the command-results sweep's job
    assert "its sweep will pick it up" in processes.log("web")
    assert "Rate limit not counted" in processes.log("web")  # served, not refused, without Redis


def test_staff_cancel_during_a_redis_outage_shows_the_cancel(processes, redis_server, staff_client):
    base = start_web(processes, redis_server.url)
    booking = BookingFactory(
        start=timezone.now() + timedelta(hours=2), charger_reservation=ChargerReservation.HELD
    )
    redis_server.stop()
    with httpx.Client(base_url=base, timeout=30) as web:
        web.cookies.set("sessionid", staff_client.cookies["sessionid"].value)
        web.get(f"/bookings/{booking.uid}/")  # the CSRF cookie
        response = web.post(
            f"/bookings/{booking.uid}/cancel/",
            data={"reason": "UNKNOWN", "note": "", "override_reason": "",
                  "csrfmiddlewaretoken": web.cookies["csrftoken"]},
        )  # fmt: skip
    assert response.status_code == 302, response.text[:500]
    assert response.headers["location"] == f"/bookings/{booking.uid}/"
    booking.refresh_from_db()
    assert booking.status == Status.CANCELED
    # The reservation sweep cancels the hold: it still shows as held at the charger.
    assert booking.charger_reservation == ChargerReservation.HELD
