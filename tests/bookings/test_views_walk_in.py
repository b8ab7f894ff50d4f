"""Booking for a walk-in driver from the desk (issue 15): the driver is registered through
driver_create in the booking's own transaction; what is missing or taken is said on the form
and nothing is written."""

import pytest
from django.urls import reverse

from bookings.models import Booking, Driver, Status
from tests.bookings.factories import BookingFactory, DriverTokenFactory, tomorrow_at
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


@pytest.fixture
def site():
    location = LocationFactory(name="Harbour Hub")
    BookingPolicyFactory(location=location, min_duration_minutes=30, max_duration_minutes=240)
    evse = EVSEFactory(charge_point=ChargePointFactory(location=location), uid="HH-1")
    return location, evse


def _post(client, location, evse, start, **walk_in):
    data = {"evse": evse.uid, "start": start.strftime("%Y-%m-%dT%H:%M"), "duration": 60,
            "driver": "new", "guest_name": "", "guest_plate": "", "guest_phone": "",
            "guest_token": "", **walk_in}  # fmt: skip
    return client.post(reverse("bookings:booking_new", args=[location.pk]), data, headers=HX)


def test_the_form_offers_a_walk_in_driver(staff_client, site):
    location, _ = site
    html = staff_client.get(reverse("bookings:booking_new", args=[location.pk])).content.decode()
    assert 'name="driver" value="new"' in html
    for label in ("Driver&#x27;s name", "Licence plate", "Phone", "Charging card uid (optional)"):
        assert f">{label}</label>" in html


def test_a_walk_in_driver_is_registered_with_the_booking(staff_client, staff_user, site):
    location, evse = site
    start = tomorrow_at(location, 10)
    response = _post(staff_client, location, evse, start, guest_name="Sam Visser",
                     guest_plate="GX-123-B", guest_phone="+31 6 1234 5678",
                     guest_token="04AB12CD34EF56")  # fmt: skip
    assert response.status_code == 200
    html = response.content.decode()
    assert "Booked." in html and "Sam Visser" in html
    driver = Driver.objects.get()
    assert (driver.name, driver.license_plate, driver.phone) == (
        "Sam Visser", "GX-123-B", "+31 6 1234 5678",
    )  # fmt: skip
    booking = Booking.objects.get()
    assert booking.driver == driver and booking.status == Status.RESERVED
    assert booking.created_by == staff_user
    assert [t.uid for t in driver.tokens.all()] == ["04AB12CD34EF56"]
    assert [t.uid for t in booking.tokens.all()] == ["04AB12CD34EF56"]


def test_a_walk_in_with_a_phone_and_no_card_is_enough(staff_client, site):
    location, evse = site
    response = _post(staff_client, location, evse, tomorrow_at(location, 10),
                     guest_name="Sam Visser", guest_phone="0612345678")  # fmt: skip
    assert "Booked." in response.content.decode()
    assert Booking.objects.get().driver.tokens.count() == 0


def test_a_name_typed_in_without_choosing_means_the_walk_in(staff_client, site):
    location, evse = site
    response = _post(staff_client, location, evse, tomorrow_at(location, 10), driver="",
                     guest_name="Sam Visser", guest_plate="GX123B")  # fmt: skip
    assert "Booked." in response.content.decode()
    assert Booking.objects.get().driver.name == "Sam Visser"


def test_a_walk_in_without_name_or_plate_or_phone_is_told_on_the_form(staff_client, site):
    location, evse = site
    response = _post(staff_client, location, evse, tomorrow_at(location, 10))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Give the walk-in driver&#x27;s name." in html
    assert "Give a licence plate or a phone number (or both)." in html
    assert not Booking.objects.exists() and not Driver.objects.exists()


def test_a_card_another_driver_holds_is_told_and_nothing_is_written(staff_client, site):
    location, evse = site
    DriverTokenFactory(uid="04AB12CD34EF56", country_code="NL", party_id="CBK")
    response = _post(staff_client, location, evse, tomorrow_at(location, 10),
                     guest_name="Sam Visser", guest_plate="GX123B",
                     guest_token="04AB12CD34EF56")  # fmt: skip
    html = response.content.decode()
    assert "Another driver holds this card already" in html
    assert 'value="Sam Visser"' in html  # what was typed is kept
    assert not Booking.objects.exists()
    assert not Driver.objects.filter(name="Sam Visser").exists()


def test_a_refused_slot_registers_no_walk_in_driver(staff_client, site):
    location, evse = site
    start = tomorrow_at(location, 10)
    BookingFactory(evse=evse, start=start)
    response = _post(staff_client, location, evse, start, guest_name="Sam Visser",
                     guest_plate="GX123B")  # fmt: skip
    assert "is already booked around" in response.content.decode()
    assert not Driver.objects.filter(name="Sam Visser").exists()  # one transaction: no orphan
