"""Sixteen concurrent creates with one external id make one booking and one request."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from api.models import BookingRequest
from bookings.models import Booking
from tests.api.conftest import api_for
from tests.api.factories import ClientFactory
from tests.bookings.factories import DriverFactory, DriverTokenFactory
from tests.locations.factories import ChargePointFactory, EVSEFactory, LocationFactory

THREADS = 16


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_external_id_make_one_booking(tomorrow_10):
    location = LocationFactory(ocpi_id="RACE")
    cp = ChargePointFactory(location=location)
    for n in (1, 2, 3):
        EVSEFactory(charge_point=cp, uid=f"RACE-E{n}", ocpp_evse_id=n)
    driver = DriverFactory()
    DriverTokenFactory(driver=driver)
    client = ClientFactory(scopes=["read", "book", "drivers"])
    https = [api_for(client) for _ in range(THREADS)]
    body = {"type": "create", "driverId": driver.pk, "locationId": "RACE",
            "startAt": tomorrow_10.isoformat(), "externalId": "job-42",
            "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()}  # fmt: skip
    barrier = threading.Barrier(THREADS)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def send(http):
        try:
            barrier.wait()
            response = http.post("/api/v1/booking-requests", body, format="json")
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(http,)) for http in https]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in answers) == [200] * (THREADS - 1) + [201]
    assert {a["data"]["id"] for _, a in answers} == {BookingRequest.objects.get().pk}
    assert {a["data"]["bookingId"] for _, a in answers} == {str(Booking.objects.get().uid)}
    assert Booking.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_slot_raced_through_this_api_and_ocpi_makes_one_booking(tomorrow_10):
    from rest_framework.test import APIClient

    from tests.ocpi.factories import PartyFactory
    from tests.ocpi.test_bookings import BOOKINGS, request_body

    location = LocationFactory(ocpi_id="LOC-AMS-001")
    cp = ChargePointFactory(location=location)
    EVSEFactory(charge_point=cp, uid="EVSE-1", ocpp_evse_id=1)
    client = ClientFactory(scopes=["read", "book", "drivers"])
    party = PartyFactory(country_code="DE", party_id="XMS")
    drivers = [DriverFactory() for _ in range(THREADS)]
    for driver in drivers:
        DriverTokenFactory(driver=driver)
    api_calls = [
        (api_for(client), "/api/v1/booking-requests",
         {"type": "create", "driverId": d.pk, "locationId": "LOC-AMS-001", "evseId": "EVSE-1",
          "startAt": tomorrow_10.isoformat(), "externalId": f"api-{n}",
          "endAt": (tomorrow_10 + timedelta(hours=1)).isoformat()})
        for n, d in enumerate(drivers)
    ]  # fmt: skip
    ocpi_calls = []
    for n in range(THREADS):
        body = request_body(tomorrow_10, request_id=f"OCPI-{n}")
        body["tokens"][0]["uid"] = f"04OCPI{n:08X}"
        http = APIClient()
        http.credentials(HTTP_AUTHORIZATION=party.auth)
        ocpi_calls.append((http, BOOKINGS, body))
    calls = api_calls + ocpi_calls
    barrier = threading.Barrier(len(calls))
    codes: list[int] = []
    lock = threading.Lock()

    def send(http, url, body):
        try:
            barrier.wait()
            response = http.post(url, body, format="json")
            with lock:
                codes.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code < 500 for code in codes), codes
    assert Booking.objects.blocking().count() == 1
    assert (
        BookingRequest.objects.filter(status="approved").count()
        + Booking.objects.filter(channel=Booking.Channel.OCPI, status="RESERVED").count()
        == 1
    )
