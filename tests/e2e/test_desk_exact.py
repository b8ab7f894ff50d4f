"""The staff desk in a real browser on the days and failures that used to go wrong (issue 15):
booking, extending and moving in the repeated hour of a fall-back day, a stale CSRF token after
signing in again in another tab, a server error and a lost connection, each shown where the
user is looking with what they typed kept."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import Page, expect

import bookings.views
from bookings.models import Booking, CanceledReason, Status
from bookings.services import Actor, booking_change, booking_create
from tests.bookings.factories import BookingFactory, DriverFactory, DriverTokenFactory
from tests.e2e.test_staff_ui import click_free_at, htmx_idle, log_in, row
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

FALL_BACK = "2027-10-31"  # Europe/Amsterdam: 03:00 CEST becomes 02:00 CET


@pytest.fixture
def polder(staff_user):
    location = LocationFactory(name="Polder Hub", city="Delft", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location, min_duration_minutes=30, max_duration_minutes=240)
    cp = ChargePointFactory(location=location, identity="PH-CP01")
    evses = [EVSEFactory(charge_point=cp, uid=f"PH-{n}", physical_reference=str(n)) for n in (1, 2)]
    anna = DriverFactory(name="Anna de Vries", email="anna@example.com")
    DriverTokenFactory(driver=anna, uid="04A1B2C3D4E5F6")
    return location, evses, anna


def choose_anna(form) -> None:
    form.get_by_label("Find by email, name or token uid").press_sequentially("anna@", delay=40)
    form.get_by_label(re.compile("Anna de Vries")).check()


def test_staff_books_extends_and_moves_in_the_repeated_hour(page: Page, polder, screenshot):
    location, evses, anna = polder
    with time_machine.travel(datetime(2027, 10, 30, 12, tzinfo=UTC), tick=True):
        # The whole night on the axis (hours=all): the day view opens on 06:00-22:00.
        log_in(page, f"/locations/{location.pk}/?date={FALL_BACK}&hours=all")
        expect(page.locator(".row")).to_have_count(2)
        # The second 02:30 of the night: 02:30 CET is 01:30 UTC.
        click_free_at(page, "PH-1", datetime(2027, 10, 31, 1, 30, tzinfo=UTC))
        form = page.locator("#booking-form")
        expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value(f"{FALL_BACK}T02:30")
        # Whatever the browser's locale, the time is echoed 24-hour, day first.
        expect(form.locator(".when-echo")).to_have_text("Sun 31 Oct 2027, 02:30")
        clock = form.get_by_label("Which clock: this time happens twice")
        expect(clock.locator("option:checked")).to_have_text("CET, UTC+1")
        choose_anna(form)
        form.get_by_label("1 h", exact=True).check()
        form.get_by_role("button", name="Book").click()

        panel = page.locator("#panel")
        expect(panel.get_by_role("status")).to_have_text("Booked.")
        expect(panel).to_contain_text("Sun 31 Oct 2027, 02:30–03:30 (CET, UTC+1)")
        booking = Booking.objects.get(driver=anna)
        assert booking.period.lower == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
        assert booking.period.upper == datetime(2027, 10, 31, 2, 30, tzinfo=UTC)
        screenshot(page, "dst-repeated-hour")

        panel.get_by_role("button", name="Extend 15 min").click()
        expect(panel).to_contain_text("02:30–03:45 (CET, UTC+1)")
        booking.refresh_from_db()
        assert booking.period.upper == datetime(2027, 10, 31, 2, 45, tzinfo=UTC)

        # Move to the first 02:15 (summer time) on the other EVSE.
        panel.locator("#chg-evse").select_option("PH-2")
        panel.locator("#chg-start_0").fill(f"{FALL_BACK}T02:15")
        panel.locator("#chg-start_1").select_option("+02:00")
        panel.get_by_role("button", name="Save change").click()
        expect(panel.get_by_role("status")).to_have_text("Changed.")
        expect(panel).to_contain_text("02:15 (CEST, UTC+2) – 02:30 (CET, UTC+1)")
        booking.refresh_from_db()
        assert booking.evse == evses[1]
        assert booking.period.lower == datetime(2027, 10, 31, 0, 15, tzinfo=UTC)
        assert booking.period.upper == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
        expect(row(page, "PH-2").locator("a.block")).to_have_count(1)


def test_staff_books_two_real_hours_across_the_spring_forward_gap(page: Page, polder):
    location, _evses, anna = polder
    with time_machine.travel(datetime(2027, 3, 27, 12, tzinfo=UTC), tick=True):
        log_in(page, f"/locations/{location.pk}/?date=2027-03-28&hours=all")
        expect(page.locator(".tick:not(.day)")).to_have_count(23)  # a 23-hour day
        click_free_at(page, "PH-1", datetime(2027, 3, 28, 0, 30, tzinfo=UTC))  # 01:30 CET
        form = page.locator("#booking-form")
        expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value("2027-03-28T01:30")
        choose_anna(form)
        form.get_by_label("2 h", exact=True).check()
        form.get_by_role("button", name="Book").click()
        panel = page.locator("#panel")
        expect(panel).to_contain_text("01:30 (CET, UTC+1) – 04:30 (CEST, UTC+2)")
        booking = Booking.objects.get(driver=anna)
        assert booking.period.upper - booking.period.lower == timedelta(hours=2)


def tomorrow_url(location) -> str:
    tomorrow = timezone.now().astimezone(location.zone).date() + timedelta(days=1)
    return f"/locations/{location.pk}/?date={tomorrow}"


def test_staff_stale_csrf_token_is_explained_and_the_retry_books(page: Page, polder, settings):
    # No poll meanwhile: one while signed out would (rightly) send this tab to the login page.
    settings.STAFF_TIMELINE_POLL_SECONDS = 600
    location, _evses, anna = polder
    log_in(page, tomorrow_url(location))  # today may have no free time left late at night
    row(page, "PH-1").locator("a.free").last.focus()
    page.keyboard.press("Enter")
    form = page.locator("#booking-form")
    choose_anna(form)
    form.get_by_label("Notes (optional)").fill("Fleet van, needs the long cable")

    # Sign out and in again in another tab: the session and its CSRF token change.
    other = page.context.new_page()
    other.base_url = page.base_url  # type: ignore[attr-defined]
    other.goto(page.base_url + "/")
    other.get_by_role("button", name="Log out").click()
    log_in(other)
    expect(other.get_by_role("heading", name="Locations")).to_be_visible()
    other.close()

    form.get_by_role("button", name="Book").click()
    alert = form.locator(".request-error")
    expect(alert).to_contain_text("security token is out of date")
    expect(alert).to_be_in_viewport()
    expect(form.get_by_label("Notes (optional)")).to_have_value("Fleet van, needs the long cable")
    assert not Booking.objects.exists()

    form.get_by_role("button", name="Book").click()
    expect(page.locator("#panel").get_by_role("status")).to_have_text("Booked.")
    assert Booking.objects.get().driver == anna
    page.keyboard.press("Escape")  # closes the panel
    expect(page.locator("#panel")).to_be_empty()


def test_staff_server_error_and_lost_connection_are_shown(page: Page, polder, monkeypatch):
    location, _evses, _anna = polder
    log_in(page, tomorrow_url(location))  # today may have no free time left late at night
    row(page, "PH-1").locator("a.free").last.focus()
    page.keyboard.press("Enter")
    form = page.locator("#booking-form")
    choose_anna(form)
    form.get_by_label("Notes (optional)").fill("Keep me")

    def broken(**kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(bookings.views, "booking_create", broken)
    form.get_by_role("button", name="Book").click()
    expect(form.locator(".request-error")).to_contain_text("The server failed (error 500)")
    expect(form.get_by_label("Notes (optional)")).to_have_value("Keep me")

    # Network down: the grid's poll says so in a banner, which goes once it answers again.
    htmx_idle(page)
    page.context.set_offline(True)
    banner = page.locator("#request-error")
    expect(banner).to_contain_text("No connection to the server")
    page.context.set_offline(False)
    expect(banner).to_be_hidden()
    monkeypatch.undo()
    form.get_by_role("button", name="Book").click()
    expect(page.locator("#panel").get_by_role("status")).to_have_text("Booked.")
    assert Booking.objects.get().notes == "Keep me"


def test_staff_choose_a_driver_error_goes_once_one_is_chosen(page: Page, polder):
    location, _evses, _anna = polder
    log_in(page, tomorrow_url(location))  # today may have no free time left late at night
    row(page, "PH-1").locator("a.free").last.focus()
    page.keyboard.press("Enter")
    form = page.locator("#booking-form")
    form.get_by_role("button", name="Book").click()
    expect(form).to_contain_text("Choose a driver: search by email, name or token uid.")
    htmx_idle(page)
    choose_anna(form)
    expect(form).not_to_contain_text("Choose a driver: search by email")


def test_staff_day_shows_what_happened_at_three_widths(page: Page, polder, screenshot):
    """Today's cancelled and no-show bookings stay drawn, an offline charger says since when, and
    a changed booking's history says what changed: looked at on a desk, a tablet and a phone."""
    location, evses, anna = polder
    tz = location.zone
    now = timezone.now()
    today = now.astimezone(tz).date()
    offline = ChargePointFactory(location=location, identity="PH-CP02", is_connected=False)
    offline.last_seen = now - timedelta(hours=3)
    offline.save()
    EVSEFactory(charge_point=offline, uid="PH-3", physical_reference="3")
    ben = DriverFactory(name="Ben Carter")

    def at(day, hour):
        return datetime.combine(day, time(hour), tz)

    BookingFactory(evse=evses[0], start=at(today, 7), driver=ben, status=Status.NO_SHOW)
    BookingFactory(
        evse=evses[1], start=at(today, 8), driver=ben, status=Status.CANCELED,
        canceled_reason=CanceledReason.BROKEN_CHARGER, canceled_by_role="CPO", canceled_at=now,
    )  # fmt: skip
    BookingFactory(evse=evses[1], start=at(today, 8), driver=anna, status=Status.FULFILLED)
    start = at(today + timedelta(days=1), 10)
    booking = booking_create(
        evse=evses[0], start=start, end=start + timedelta(hours=1), actor=Actor.system("desk"),
        driver=anna,
    )  # fmt: skip
    booking_change(
        booking=booking, actor=Actor.system("desk"), evse=evses[1],
        start=start + timedelta(hours=2), end=start + timedelta(hours=3, minutes=30),
    )  # fmt: skip

    log_in(page, f"/locations/{location.pk}/")
    for width, height in ((1440, 900), (1024, 768), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(page.base_url + f"/locations/{location.pk}/")
        expect(page.locator("a.block-no_show")).to_have_count(1)
        expect(page.locator("a.block-canceled")).to_have_count(1)
        expect(row(page, "PH-3")).to_contain_text("Offline since")
        screenshot(page, f"day-what-happened-{width}", full_page=True)
        page.goto(page.base_url + f"/bookings/{booking.uid}/")
        history = page.locator(".changes")
        expect(history).to_contain_text("EVSE: 1 → 2")
        expect(history).to_contain_text("Duration: 1 h → 1 h 30 min")
        screenshot(page, f"booking-history-{width}", full_page=True)


def midday(location) -> datetime:
    """Noon today on the location's clock."""
    today = timezone.now().astimezone(location.zone).date()
    return datetime.combine(today, time(12), tzinfo=location.zone)


def test_staff_checks_a_driver_in_from_the_arrivals_list(page: Page, polder, screenshot):
    # At midday on the location's clock: the bookings placed minutes around "now" stay on
    # today's list whatever the time the test runs (around midnight they fell on another day).
    with time_machine.travel(midday(polder[0]), tick=True):
        _test_staff_checks_a_driver_in_from_the_arrivals_list(page, polder, screenshot)


def _test_staff_checks_a_driver_in_from_the_arrivals_list(page: Page, polder, screenshot):
    location, evses, anna = polder
    now = timezone.now().replace(second=0, microsecond=0)
    anna.license_plate = "GX-123-B"
    anna.save()
    booking = BookingFactory(
        evse=evses[0], start=now - timedelta(minutes=10), duration=timedelta(hours=1), driver=anna
    )
    BookingFactory(
        evse=evses[1], start=now - timedelta(minutes=52), duration=timedelta(hours=1),
        driver=DriverFactory(name="Ben Carter"), status=Status.FULFILLED,
    )  # fmt: skip
    log_in(page, f"/locations/{location.pk}/")
    page.get_by_role("link", name="Arrivals & departures").click()
    expect(page.get_by_role("heading", name="Arrivals and departures")).to_be_visible()
    entry = page.locator("tr.entry-arrives", has_text="Anna de Vries")
    expect(entry).to_contain_text("◷ Late")
    expect(page.locator("tr.entry-leaves", has_text="Ben Carter")).to_contain_text("Ends in")
    entry.get_by_role("button", name="Driver arrived").click()
    expect(page.get_by_role("status")).to_have_text("Anna de Vries: checked in.")
    expect(page.locator("tr.entry-arrives", has_text="Anna de Vries")).to_contain_text("Arrived")
    booking.refresh_from_db()
    assert booking.checked_in_at is not None
    for width, height in ((1440, 900), (1024, 768), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"arrivals-{width}", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_staff_marks_a_no_show_from_the_arrivals_list_after_the_pages_own_question(
    page: Page, polder
):
    location, evses, anna = polder
    with time_machine.travel(midday(location), tick=True):
        now = timezone.now().replace(second=0, microsecond=0)
        booking = BookingFactory(evse=evses[0], start=now - timedelta(minutes=20), driver=anna)
        log_in(page, f"/locations/{location.pk}/arrivals/")
        entry = page.locator("tr.entry-arrives", has_text="Anna de Vries")
        entry.get_by_role("button", name="No-show").click()
        dialog = page.get_by_role("dialog", name="Mark a no-show?")
        expect(dialog).to_contain_text("Anna de Vries")
        expect(dialog.get_by_role("button", name="Keep the booking")).to_be_focused()
        dialog.get_by_role("button", name="Keep the booking").click()  # changes nothing
        expect(dialog).to_be_hidden()
        booking.refresh_from_db()
        assert booking.status == Status.RESERVED
        entry.get_by_role("button", name="No-show").click()
        dialog.get_by_role("button", name="Yes, a no-show").click()
        expect(page.get_by_role("status")).to_contain_text("no-show")
        booking.refresh_from_db()
        assert booking.status == Status.NO_SHOW


def test_staff_finds_a_booking_by_plate_from_any_page(page: Page, polder, screenshot):
    location, evses, anna = polder
    anna.license_plate = "GX-123-B"
    anna.save()
    start = datetime.combine(
        timezone.now().astimezone(location.zone).date(), time(23), location.zone
    )
    booking = BookingFactory(evse=evses[1], start=start, driver=anna)
    log_in(page, f"/locations/{location.pk}/")
    page.get_by_role("searchbox", name=re.compile("Search plate")).fill("gx 123b")
    page.keyboard.press("Enter")
    results = page.locator("#search-results")
    expect(results).to_contain_text("Polder Hub · EVSE 2")
    expect(results).to_contain_text(re.compile(r"23:00–\w{3} \d+ \w{3} 00:00 \(CES?T"))
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"search-{width}", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    results.get_by_role("link", name=re.compile("23:00")).click()
    expect(page.locator("#booking-detail")).to_contain_text("Anna de Vries")
    assert str(booking.uid) in page.url
