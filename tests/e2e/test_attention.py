"""What the desk must not miss (issue 15) in a real browser: a booking made over OCPI while the
day view is open shows a notice (a polite live region, dismissible) from the grid's own poll;
the needs-attention list and a flagged booking on the grid after a policy was tightened."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from bookings.services import Actor, RequestData, TokenData, booking_request_submit
from locations.models import BookingPolicy
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

WIDTHS = ((1440, 900), (1024, 768), (390, 844))


@pytest.fixture
def quay(staff_user):
    location = LocationFactory(name="Quay Hub", ocpi_id="QUAY", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location, min_duration_minutes=30, max_duration_minutes=240)
    evses = []
    for n in (1, 2):
        cp = ChargePointFactory(location=location, identity=f"QH-CP0{n}")
        for side in "AB":
            evse = EVSEFactory(charge_point=cp, uid=f"QH-{n}{side}",
                               physical_reference=f"{n}{side}", connectors=[])  # fmt: skip
            ConnectorFactory(evse=evse, dc=n == 1, connector_id="1")
            evses.append(evse)
    tomorrow = timezone.now().astimezone(location.zone).date() + timedelta(days=1)

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(tomorrow, time(hour, minute), location.zone)

    return location, evses, tomorrow, at


def test_a_booking_made_over_ocpi_shows_a_notice_on_the_open_day(page, quay, screenshot):
    location, _, tomorrow, at = quay
    log_in(page, f"/locations/{location.pk}/?date={tomorrow.isoformat()}")
    expect(page.get_by_role("heading", name=location.name)).to_be_visible()
    notices = page.locator("#notices")
    expect(notices).to_have_attribute("aria-live", "polite")
    token = TokenData("NL", "EMS", "04EMS0001", "RFID", "NL-EMS-1")
    data = RequestData(request_id="R-1", location_id="QUAY", evse_uid="QH-1A", start=at(10),
                       end=at(11, 30), authorization_reference="A1", tokens=(token,))  # fmt: skip
    booking_request_submit(actor=Actor.emsp("NL", "EMS"), data=data, payload={})
    notice = notices.locator(".notice")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("New booking from eMSP NL*EMS: 1A")
    expect(notice).to_contain_text("10:00–11:30 (CE")
    # The grid's same poll drew the booking.
    expect(page.locator("#grid a.block")).to_have_count(1)
    htmx_idle(page)
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        suffix = "" if width == 1440 else f"-{width}"
        screenshot(page, f"notice{suffix}")
    page.set_viewport_size({"width": 1440, "height": 900})
    # Shown once: later polls do not repeat it.
    page.wait_for_timeout(2500)
    expect(notice).to_have_count(1)
    notice.get_by_role("button", name="Dismiss").click()
    expect(notices.locator(".notice")).to_have_count(0)
    # Its link opens the booking's panel.
    booking_request_submit(
        actor=Actor.emsp("NL", "EMS"),
        data=RequestData(**{**data.__dict__, "request_id": "R-2", "evse_uid": "QH-2A",
                            "authorization_reference": "A2",
                            "tokens": (TokenData("NL", "EMS", "04EMS0002", "RFID", "NL-EMS-2"),)}),
        payload={},
    )  # fmt: skip
    expect(notices.locator(".notice")).to_have_count(1)
    notices.get_by_role("link", name="Open booking").click()
    expect(page.locator("#booking-detail")).to_contain_text("eMSP NL*EMS")


def test_needs_attention_after_a_policy_was_tightened(page, quay, screenshot):
    location, evses, tomorrow, at = quay
    names = ["Anna de Vries", "Ben Carter", "Chiara Rossi"]
    long = BookingFactory(evse=evses[0], start=at(9), duration=timedelta(hours=3),
                          driver=DriverFactory(name=names[0]))  # fmt: skip
    BookingFactory(evse=evses[1], start=at(13), duration=timedelta(hours=4),
                   driver=DriverFactory(name=names[1]))  # fmt: skip
    fine = BookingFactory(evse=evses[2], start=at(10), duration=timedelta(hours=1),
                          driver=DriverFactory(name=names[2]))  # fmt: skip
    BookingFactory(evse=evses[3], start=at(15), duration=timedelta(hours=1),
                   driver=DriverFactory(name="Daiki Tanaka"), needs_attention=True)  # fmt: skip
    BookingPolicy.objects.filter(location=location).update(max_duration_minutes=120)
    log_in(page, f"/locations/{location.pk}/?date={tomorrow.isoformat()}")
    flagged = page.locator(f'#grid a.block[data-booking="{long.uid}"]')
    expect(flagged).to_contain_text("Outside the rules")
    expect(page.locator("#grid a.block.outside-rules")).to_have_count(2)
    # The toolbar's link counts them, loaded after the page by its own small request.
    link = page.get_by_role("link", name="Needs attention: 3 bookings", exact=True)
    expect(link).to_have_text("Needs attention · 3")
    expect(link.locator(".attention-count")).to_be_visible()
    htmx_idle(page)
    screenshot(page, "outside-rules-day")
    screenshot(page, "needs-attention-count", clip=page.locator(".view-head").bounding_box())
    # The charger could not hold another one: the grid's poll redraws it, and the count follows.
    fine.needs_attention = True
    fine.save()
    expect(page.get_by_role("link", name="Needs attention: 4 bookings", exact=True)).to_be_visible()
    fine.needs_attention = False  # and held after all
    fine.save()
    expect(link).to_be_visible()
    page.get_by_role("link", name="Needs attention").click()
    expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
    rows = page.locator("table.attention-list tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Anna de Vries")
    expect(rows.nth(0)).to_contain_text("A booking here lasts at most 120 minutes.")
    expect(rows.nth(2)).to_contain_text("could not hold it")
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        suffix = "" if width == 1440 else f"-{width}"
        screenshot(page, f"needs-attention{suffix}", full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    rows.nth(0).get_by_role("link", name="Open booking").click()
    expect(page.locator("#booking-detail")).to_contain_text("Anna de Vries")
    expect(page.get_by_role("heading", name="Move, extend or shorten")).to_be_visible()
