"""A charger out of order, in a real browser: from the day view, pick the charge point, see its
bookings, move them (or cancel those that cannot move) with one reason."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from bookings.models import Booking, Status
from tests.e2e.test_staff_ui import hub, log_in  # noqa: F401  (the fixture and the login step)
from tests.locations.factories import ChargePointFactory, EVSEFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_staff_move_the_bookings_of_a_broken_charger_in_one_go(page: Page, hub, screenshot):  # noqa: F811
    location, evses, _anna, _tomorrow, _at = hub
    spare = EVSEFactory(charge_point=ChargePointFactory(location=location, identity="HH-CP03"),
                        uid="HH-3A", physical_reference="3A")  # fmt: skip
    broken = [evses["1A"].pk, evses["1B"].pk]
    before = set(Booking.objects.filter(evse__in=broken, status=Status.RESERVED)
                 .values_list("pk", flat=True))  # fmt: skip
    log_in(page, f"/locations/{location.pk}/")
    page.get_by_role("link", name="Charger out of order").click()
    expect(page.get_by_role("heading", name="A charger out of order")).to_be_visible()
    page.get_by_label("Charge point").select_option(label="HH-CP01")
    page.get_by_label("For the next 7 days").check()
    page.get_by_role("button", name="Show its bookings").click()
    heading = page.get_by_role("heading", name=f"HH-CP01: {len(before)} bookings until")
    expect(heading).to_be_visible()
    screenshot(page, "out-of-order-preview", full_page=True)

    page.get_by_label("Move each booking to a free EVSE").check()
    page.get_by_label("Reason").fill("Display broken, technician on Thursday")
    page.get_by_role("button", name="Move or cancel these bookings").click()
    expect(page.get_by_role("status")).to_contain_text("moved")
    screenshot(page, "out-of-order-done", full_page=True)

    after = Booking.objects.filter(pk__in=before)
    # Every booking left the broken charger: to the spare AC EVSE, or cancelled (the DC ones
    # of HH-CP02 are no place for an AC booking).
    assert not after.filter(evse__in=broken, status=Status.RESERVED).exists()
    assert after.filter(evse=spare, status=Status.RESERVED).exists()
