"""Every staff page checked by axe-core (the engine browsers' accessibility tools use) in real
Chromium, on a desk and on a phone: no violation of the WCAG 2.x A and AA rules it tests."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from tests.bookings.factories import BookingFactory, DriverFactory
from tests.e2e.test_staff_ui import htmx_idle, log_in
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        "resultTypes": ["violations"]}  # fmt: skip


@pytest.fixture
def site(staff_user):
    location = LocationFactory(name="Axe Hub", ocpi_id="AXE", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location)
    evses = []
    for n in (1, 2):
        cp = ChargePointFactory(location=location, identity=f"AX-CP0{n}")
        evse = EVSEFactory(charge_point=cp, uid=f"AX-{n}", physical_reference=f"{n}A",
                           connectors=[])  # fmt: skip
        ConnectorFactory(evse=evse, dc=n == 1, connector_id="1")
        evses.append(evse)
    tomorrow = timezone.now().astimezone(location.zone).date() + timedelta(days=1)
    start = datetime.combine(tomorrow, time(10), location.zone)
    driver = DriverFactory(name="Ada Lovelace", license_plate="AX-12-BC")
    booking = BookingFactory(evse=evses[0], start=start, driver=driver)
    return location, booking, tomorrow


def pages(location, booking, day) -> dict[str, str]:
    at = f"?date={day.isoformat()}"
    return {
        "locations": "/",
        "day view": f"/locations/{location.pk}/{at}",
        "week view": f"/locations/{location.pk}/week/{at}",
        "booking panel": f"/bookings/{booking.uid}/{at}",
        "new booking": f"/locations/{location.pk}/bookings/new/?start="
        + f"{day.isoformat()}T14:00%2B01:00&evse={booking.evse.uid}",
        "arrivals": f"/locations/{location.pk}/arrivals/{at}",
        "needs attention": f"/locations/{location.pk}/attention/",
        "out of order": f"/locations/{location.pk}/out-of-order/",
        "insights": f"/locations/{location.pk}/insights/",
        "search": "/search/?q=AX-12",
    }


@pytest.mark.parametrize("width,height", [(1440, 900), (390, 844)])
def test_staff_pages_have_no_axe_violations(page, site, width, height):
    location, booking, day = site
    page.set_viewport_size({"width": width, "height": height})
    log_in(page)
    axe = Axe()
    found = {}
    for name, path in pages(location, booking, day).items():
        response = page.goto(page.base_url + path)
        assert response is not None and response.status == 200, (name, path)
        htmx_idle(page)
        results = axe.run(page, options=WCAG)
        if results.violations_count:
            found[name] = results.generate_report()
    assert not found, "\n\n".join(f"{name}:\n{report}" for name, report in found.items())


def test_the_log_in_page_has_no_axe_violations(page):
    page.goto(page.base_url + "/accounts/login/")
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
