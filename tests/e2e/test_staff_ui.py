"""The staff slot picker in a real browser: log in, find a location, change day, filter, click
free time, book for a driver found by search, move, extend and cancel; the conflict path; and a
booking made elsewhere showing up without a reload."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from bookings.models import Booking, ChargerReservation, Status
from bookings.services import Actor, booking_create
from tests.bookings.factories import BookingFactory, DriverFactory, DriverTokenFactory
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def hub(staff_user):
    """A 24/7 site with four EVSEs (one charger offline) and a few bookings over the week."""
    location = LocationFactory(name="Harbour Hub", city="Rotterdam", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location, min_duration_minutes=30, max_duration_minutes=240)
    cp1 = ChargePointFactory(location=location, identity="HH-CP01")
    cp2 = ChargePointFactory(location=location, identity="HH-CP02", is_connected=False)
    evses = {
        "1A": EVSEFactory(charge_point=cp1, uid="HH-1A", physical_reference="1A"),
        "1B": EVSEFactory(charge_point=cp1, uid="HH-1B", physical_reference="1B"),
        "2A": EVSEFactory(charge_point=cp2, uid="HH-2A", physical_reference="2A", connectors=[]),
        "2B": EVSEFactory(charge_point=cp2, uid="HH-2B", physical_reference="2B", connectors=[]),
    }
    ConnectorFactory(evse=evses["2A"], dc=True, connector_id="1")
    ConnectorFactory(evse=evses["2B"], dc=True, connector_id="1")
    anna = DriverFactory(name="Anna de Vries", email="anna@example.com")
    DriverTokenFactory(driver=anna, uid="04A1B2C3D4E5F6")
    tomorrow = timezone.now().astimezone(location.zone).date() + timedelta(days=1)

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(tomorrow + timedelta(days=days), time(hour, minute), location.zone)

    others = [DriverFactory(name=n) for n in ("Ben Carter", "Chiara Rossi", "Daiki Tanaka")]
    BookingFactory(
        evse=evses["1A"],
        start=at(0, 9),
        driver=others[0],
        charger_reservation=ChargerReservation.HELD,
    )
    BookingFactory(evse=evses["2A"], start=at(0, 11), duration=timedelta(hours=2), driver=others[1])
    BookingFactory(
        evse=evses["2B"],
        start=at(0, 7, 30),
        duration=timedelta(minutes=90),
        driver=others[2],
        status=Status.PENDING,
    )
    for day in range(1, 6):
        BookingFactory(
            evse=evses["1A" if day % 2 else "1B"],
            start=at(day, 8 + day),
            duration=timedelta(hours=3),
            driver=others[day % 3],
        )
        BookingFactory(evse=evses["2B"], start=at(day, 17), duration=timedelta(hours=2),
                       driver=others[(day + 1) % 3])  # fmt: skip
    return location, evses, anna, tomorrow, at


def log_in(page: Page, path: str = "/") -> None:
    page.goto(page.base_url + path)
    expect(page.get_by_role("heading", name="Staff log in")).to_be_visible()
    page.get_by_label("Username").fill("desk")
    page.get_by_label("Password").fill("desk-pass-123")
    page.get_by_role("button", name="Log in").click()


def htmx_idle(page: Page) -> None:
    """Wait until htmx has settled what it swapped in: it wires the new elements' triggers in
    the settle step (20 ms after the swap), so typing right after a swap can go unheard."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def row(page: Page, uid: str):
    return page.locator(f'.row[data-evse="{uid}"]')


def click_free_at(page: Page, uid: str, moment: datetime) -> None:
    """Click the free time of an EVSE's row where `moment` lies on the axis."""
    stamp = moment.timestamp()
    for link in row(page, uid).locator("a.free").all():
        start, end = float(link.get_attribute("data-start")), float(link.get_attribute("data-end"))
        if start <= stamp < end:
            box = link.bounding_box()
            x = box["x"] + box["width"] * (stamp - start) / (end - start) + 2
            page.mouse.click(x, box["y"] + box["height"] / 2)
            return
    raise AssertionError(f"{moment} is not free on {uid}")


def test_staff_books_moves_and_cancels_in_the_browser(page: Page, hub, screenshot):
    _location, evses, anna, tomorrow, at = hub
    log_in(page)
    expect(page.get_by_role("heading", name="Locations")).to_be_visible()
    page.get_by_role("link", name="Harbour Hub", exact=True).click()
    expect(page.get_by_role("heading", name="Harbour Hub")).to_be_visible()

    # Change day: the URL follows (push URL), so back and new tabs work.
    page.get_by_role("link", name="Next day →").click()
    expect(page.locator("#view-title")).to_contain_text(f"{tomorrow:%A} {tomorrow.day}")
    expect(page).to_have_url(re.compile(rf"date={tomorrow.isoformat()}"))
    expect(page.locator(".row")).to_have_count(4)

    # Filters narrow the rows without a page load.
    page.evaluate("window.__samePage = true")
    page.get_by_label("Current").select_option("DC")
    expect(page.locator(".row")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"current=DC"))
    htmx_idle(page)
    page.get_by_label("Minimum power (kW)").fill("200")
    expect(page.locator(".row")).to_have_count(0)
    expect(page.get_by_text("No EVSE matches these filters.")).to_be_visible()
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"min_kw=200"))
    expect(page.locator(".row")).to_have_count(2)
    page.get_by_label("Current").select_option("")
    expect(page.locator(".row")).to_have_count(4)
    assert page.evaluate("window.__samePage") is True

    # Click free time at 14:00 on 1B: the form opens in place with EVSE and start prefilled.
    click_free_at(page, "HH-1B", at(0, 14))
    form = page.locator("#booking-form")
    expect(form).to_be_visible()
    expect(form.get_by_label("EVSE")).to_have_value("HH-1B")
    expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value(f"{tomorrow}T14:00")
    form.get_by_label("Find by email, name or token uid").press_sequentially("anna@", delay=40)
    expect(form.locator("#driver-results input[name=driver]")).to_have_count(1)
    form.get_by_label(re.compile("Anna de Vries")).check()
    form.get_by_label("1 h 30 min").check()
    screenshot(page, "booking-form")
    form.get_by_role("button", name="Book").click()

    panel = page.locator("#panel")
    expect(panel.get_by_role("status")).to_have_text("✓ Booked.".removeprefix("✓ "))
    block = row(page, "HH-1B").locator("a.block")
    expect(block).to_have_count(1)
    expect(block).to_contain_text("Anna de Vries")
    expect(block).to_contain_text("14:00–15:30")
    booking = Booking.objects.get(driver=anna)
    assert booking.status == Status.RESERVED
    assert (booking.period.lower, booking.period.upper) == (at(0, 14), at(0, 15, 30))
    assert [t.uid for t in booking.tokens.all()] == ["04A1B2C3D4E5F6"]

    panel.get_by_role("link", name="Close").click()
    expect(panel).to_be_empty()

    # Move it to 2A at 16:00 from its detail panel.
    block.click()
    expect(panel.locator("#booking-detail")).to_contain_text("Created: reserved")
    panel.locator("#chg-evse").select_option("HH-2A")
    panel.locator("#chg-start_0").fill(f"{tomorrow}T16:00")
    panel.get_by_role("button", name="Save change").click()
    expect(panel.get_by_role("status")).to_have_text("Changed.")
    expect(row(page, "HH-1B").locator("a.block")).to_have_count(0)
    moved = row(page, "HH-2A").locator("a.block", has_text="Anna de Vries")
    expect(moved).to_contain_text("16:00–17:30")

    # Extend by one step.
    panel.get_by_role("button", name="Extend 15 min").click()
    expect(moved).to_contain_text("16:00–17:45")
    booking.refresh_from_db()
    assert booking.evse == evses["2A"] and booking.period.upper == at(0, 17, 45)

    # Cancel with a reason, after confirming: the block stays on the day, muted, as canceled.
    panel.get_by_label("Reason", exact=True).select_option("BROKEN_VEHICLE")
    panel.get_by_role("button", name="Cancel booking").click()
    confirm = page.get_by_role("dialog", name="Cancel this booking?")
    expect(confirm).to_contain_text("Its slot is released and the driver is told.")
    confirm.get_by_role("button", name="Yes, cancel it").click()
    expect(panel.get_by_role("status")).to_have_text("Canceled.")
    expect(panel).to_contain_text("Broken vehicle")
    expect(panel.locator(".changes").first).to_contain_text("EVSE: 1B → 2A")
    expect(panel.locator(".changes").first).to_contain_text(
        re.compile(r"14:00–15:30 \(CES?T, UTC\+[12]\) → 16:00")
    )
    expect(panel.locator(".changes").last).to_contain_text("Duration: 1 h 30 min → 1 h 45 min")
    expect(row(page, "HH-2A").locator("a.block-canceled", has_text="Anna de Vries")).to_have_count(
        1
    )
    booking.refresh_from_db()
    assert booking.status == Status.CANCELED and booking.canceled_reason == "BROKEN_VEHICLE"
    assert booking.transitions.count() == 4  # created, moved, extended, canceled

    # The week view of the same location.
    panel.get_by_role("link", name="Close").click()
    page.get_by_role("link", name="Week", exact=True).click()
    expect(page.locator(".tick.day")).to_have_count(7)
    expect(page).to_have_url(re.compile(r"/week/\?"))
    expect(page.locator("a.block")).to_have_count(14)
    expect(page.locator("a.block-canceled")).to_have_count(1)


def test_staff_booking_a_slot_taken_after_the_page_loaded_is_told_so(page: Page, hub, screenshot):
    location, evses, anna, tomorrow, at = hub
    page.set_viewport_size({"width": 1024, "height": 768})
    log_in(page, f"/locations/{location.pk}/?date={tomorrow.isoformat()}")
    expect(page.locator(".row")).to_have_count(4)
    # Tablet width: nothing overflows sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024

    # Keyboard: focus the free time and press Enter; the form opens at its first free slot
    # in the hours shown (06:00-22:00 at this 24/7 site).
    row(page, "HH-1B").locator("a.free").first.focus()
    page.keyboard.press("Enter")
    form = page.locator("#booking-form")
    expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value(f"{tomorrow}T06:00")
    form.get_by_label("Start (Europe/Amsterdam)").fill(f"{tomorrow}T11:00")
    form.get_by_label("Find by email, name or token uid").press_sequentially("de vries", delay=40)
    form.get_by_label(re.compile("Anna de Vries")).check()
    screenshot(page, "booking-form-1024")

    # Meanwhile an eMSP books 11:00-12:00 on the same EVSE.
    booking_create(
        evse=evses["1B"], start=at(0, 11), end=at(0, 12), actor=Actor.emsp("NL", "EMS"),
        request_id="REQ-1", authorization_reference="AUTH-1",
    )  # fmt: skip
    form.get_by_role("button", name="Book").click()
    expect(form.get_by_role("alert")).to_contain_text("1B is already booked around")
    # The row shows who took it, without a reload; nothing was written for Anna.
    expect(row(page, "HH-1B").locator("a.block")).to_contain_text("NL*EMS")
    assert not Booking.objects.filter(driver=anna).exists()
    (taken,) = Booking.objects.filter(evse=evses["1B"], period__overlap=(at(0, 11), at(0, 12)))
    assert taken.emsp_party_id == "EMS"


def test_staff_timeline_shows_bookings_made_elsewhere_without_reload(page: Page, hub):
    location, evses, _, tomorrow, at = hub
    log_in(page, f"/locations/{location.pk}/?date={tomorrow.isoformat()}")
    expect(page.locator(".row")).to_have_count(4)
    page.evaluate("window.__samePage = true")
    expect(row(page, "HH-1A").locator("a.block")).to_have_count(1)
    booking_create(
        evse=evses["1A"], start=at(0, 20), end=at(0, 21), actor=Actor.emsp("DE", "EMP"),
        request_id="REQ-2", authorization_reference="AUTH-2",
    )  # fmt: skip
    expect(row(page, "HH-1A").locator("a.block")).to_have_count(2)
    expect(row(page, "HH-1A")).to_contain_text("DE*EMP")
    assert page.evaluate("window.__samePage") is True
    # Opening the block in a new tab works: the detail URL is a full page.
    href = row(page, "HH-1A").locator("a.block", has_text="DE*EMP").get_attribute("href")
    other = page.context.new_page()
    other.goto(page.base_url + href)
    expect(other.locator("#booking-detail")).to_contain_text("eMSP (OCPI booking)")
    expect(other.locator(".row")).to_have_count(4)
    other.get_by_role("button", name="Log out").click()
    expect(other.get_by_role("heading", name="Staff log in")).to_be_visible()
