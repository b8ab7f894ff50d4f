"""The admin's delete pages in a real browser: an EVSE that an active booking holds cannot be
deleted (the page lists the booking with a link to its panel on the desk), and deleting an
EVSE's policy override that would leave a booking outside the rules asks first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from bookings.models import Booking, Status
from locations.models import EVSE, BookingPolicy
from tests.bookings.factories import BookingFactory, DriverFactory, tomorrow_at
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_the_admin_refuses_an_evse_with_bookings_and_asks_before_a_policy_delete(
    page, admin_user, screenshot
):
    location = LocationFactory(name="Harbour Hub", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location, max_duration_minutes=120)
    evse = EVSEFactory(charge_point=ChargePointFactory(location=location, identity="HH-CP01"),
                       physical_reference="1A")  # fmt: skip
    override = BookingPolicyFactory(location=None, evse=evse, max_duration_minutes=240)
    booking = BookingFactory(evse=evse, start=tomorrow_at(location, 9),
                             duration=timedelta(hours=3),
                             driver=DriverFactory(name="Anna de Vries"))  # fmt: skip
    page.goto(page.base_url + f"/admin/locations/evse/{evse.pk}/delete/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-pass-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errornote")).to_contain_text("The EVSE “1A” cannot be deleted.")
    held = page.locator("#held-bookings li")
    expect(held).to_have_count(1)
    expect(held).to_contain_text("Anna de Vries")
    screenshot(page, "admin-delete-evse-refused", full_page=True)
    assert EVSE.objects.filter(pk=evse.pk).exists()

    page.goto(page.base_url + f"/admin/locations/bookingpolicy/{override.pk}/delete/")
    expect(page.locator(".errornote")).to_contain_text("Nothing has been deleted yet.")
    expect(page.locator("#outside-bookings li")).to_contain_text(
        "A booking here lasts at most 120 minutes."
    )
    screenshot(page, "admin-delete-policy-asks", full_page=True)
    page.get_by_role("button", name="Delete anyway").click()
    expect(page.locator(".messagelist")).to_contain_text("1 active booking is now outside")
    screenshot(page, "admin-delete-policy-done", full_page=True)
    assert not BookingPolicy.objects.filter(pk=override.pk).exists()
    assert Booking.objects.get(pk=booking.pk).status == Status.RESERVED
    # The booking's link opens its panel on the desk, where it is moved or cancelled.
    page.locator(".messagelist a").first.click()
    expect(page.locator("#booking-detail")).to_contain_text("Anna de Vries")
