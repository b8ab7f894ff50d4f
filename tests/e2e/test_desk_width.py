"""The staff desk readable at every width (issue 15) in a real browser: blocks that say who and
when at 1440 px, a day that scrolls sideways with its EVSE labels kept and starts at now, zoom
and the hours shown, a week of readable chips, 24 px tap targets on a 390 px phone, the side
panel beside (not over) the slot being booked at 1024 px and kept in the address, keyboard
shortcuts, and the print stylesheet of the shift sheet."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from bookings.models import Booking, Status
from tests.bookings.factories import BookingFactory, DriverFactory, DriverTokenFactory
from tests.e2e.test_staff_ui import click_free_at, htmx_idle, log_in, row
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
def dock(staff_user):
    """A 24/7 hub with six EVSEs (three DC), bookings tomorrow from 07:00 to 21:00, and one
    running over now today."""
    location = LocationFactory(name="Dock Hub", city="Rotterdam", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location, min_duration_minutes=30, max_duration_minutes=240)
    evses = {}
    for n in (1, 2, 3):
        cp = ChargePointFactory(location=location, identity=f"DH-CP0{n}")
        for side in "AB":
            ref = f"{n}{side}"
            evse = EVSEFactory(
                charge_point=cp, uid=f"DH-{ref}", physical_reference=ref, connectors=[]
            )
            ConnectorFactory(evse=evse, dc=n < 3, connector_id="1")
            evses[ref] = evse
    anna = DriverFactory(name="Anna de Vries", email="anna@example.com")
    DriverTokenFactory(driver=anna, uid="04A1B2C3D4E5F6")
    names = ["Ben Carter", "Chiara Rossi", "Daiki Tanaka", "Eva Jansen", "Farid Haddad"]
    drivers = [DriverFactory(name=n) for n in names]
    tomorrow = timezone.now().astimezone(location.zone).date() + timedelta(days=1)

    def at(hour: int, minute: int = 0, day=tomorrow) -> datetime:
        return datetime.combine(day, time(hour, minute), location.zone)

    BookingFactory(evse=evses["1A"], start=at(9), driver=anna)  # the 1-hour block to read
    plan = [
        ("1A", 12, 90, 0), ("1A", 16, 60, 1), ("1B", 7, 120, 2), ("1B", 13, 45, 3),
        ("2A", 8, 60, 4), ("2A", 11, 180, 0), ("2B", 10, 30, 1), ("2B", 18, 120, 2),
        ("3A", 9, 240, 3), ("3B", 15, 60, 4), ("3B", 19, 120, 0),
    ]  # fmt: skip
    for ref, hour, minutes, who in plan:
        status = Status.PENDING if who == 3 else Status.RESERVED
        BookingFactory(evse=evses[ref], start=at(hour), duration=timedelta(minutes=minutes),
                       driver=drivers[who], status=status)  # fmt: skip
    BookingFactory(evse=evses["3B"], start=at(12), driver=drivers[1], status=Status.CANCELED)
    for day in range(1, 6):  # the rest of the week
        for k, ref in enumerate(("1A", "1B", "2A", "2B", "3B")):
            if (day + k) % 3:
                start = at(8 + 2 * k + day % 3, day=tomorrow + timedelta(days=day))
                BookingFactory(evse=evses[ref], start=start, driver=drivers[(day + k) % 5],
                               duration=timedelta(minutes=60 + 30 * (k % 3)))  # fmt: skip
    # Today: a booking over now, so the day opens on now.
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=now.minute % 15 + 30)
    BookingFactory(evse=evses["2B"], start=start, duration=timedelta(hours=1), driver=drivers[0])
    return location, evses, anna, tomorrow, at


def day_url(location, day=None, extra: str = "") -> str:
    query = f"?date={day.isoformat()}" if day else ""
    if extra:
        query += ("&" if query else "?") + extra
    return f"/locations/{location.pk}/{query}"


def visible_span(page: Page) -> tuple[float, float]:
    """Left and right edge, in viewport px, of the timeline's visible track (right of the
    sticky EVSE labels)."""
    return page.evaluate(
        """() => {
            const s = document.querySelector('[data-scroller]').getBoundingClientRect();
            const l = document.querySelector('#grid .axis .label-col').getBoundingClientRect();
            return [l.right, Math.min(s.right, window.innerWidth)];
        }"""
    )


def x_of(page: Page, moment: datetime) -> float:
    return page.evaluate(
        """(at) => {
            const grid = document.getElementById('grid');
            const track = grid.querySelector('.track-col').getBoundingClientRect();
            const start = Number(grid.dataset.start), end = Number(grid.dataset.end);
            return track.left + (at - start) / (end - start) * track.width;
        }""",
        moment.timestamp(),
    )


def test_day_view_blocks_say_who_and_when_and_the_day_scrolls(page: Page, dock, screenshot):
    location, _evses, _anna, tomorrow, _at = dock
    log_in(page, day_url(location, tomorrow))
    expect(page.locator(".row")).to_have_count(6)
    # A 24/7 site shows 06:00-22:00 first (its bookings run 07:00-21:00).
    expect(page.get_by_role("link", name="06:00–22:00")).to_have_attribute("aria-current", "true")
    expect(page.locator("#grid .axis .tick")).to_have_count(16)
    screenshot(page, "day-view", full_page=True)

    # A 1-hour block at 1440 px reads the driver's whole name and the time.
    block = row(page, "DH-1A").locator("a.block", has_text="Anna de Vries")
    expect(block.locator(".who")).to_have_text("✓ Anna de Vries")
    expect(block.locator(".what")).to_contain_text("09:00–10:00")
    who = block.locator(".who")
    assert who.evaluate("w => w.scrollWidth <= w.clientWidth && w.scrollHeight <= w.clientHeight")
    time_box = block.evaluate(
        """b => { const r = document.createRange(); const t = b.querySelector('.what').firstChild;
                  r.setStart(t, 0); r.setEnd(t, 11); const box = r.getBoundingClientRect();
                  return box.right <= b.getBoundingClientRect().right; }"""
    )
    assert time_box, "the block's time is cut off"

    # The day scrolls sideways inside its box; the EVSE labels stay put.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    scroller = page.locator("[data-scroller]")
    scroller.evaluate("s => { s.scrollLeft = s.scrollWidth; }")
    label = row(page, "DH-3B").locator(".label-col")
    box, frame = label.bounding_box(), scroller.bounding_box()
    assert abs(box["x"] - frame["x"]) < 2
    expect(label).to_be_in_viewport()

    # Zoom in: hours get wider, and the choice is remembered.
    before = row(page, "DH-1A").locator(".track").bounding_box()["width"]
    page.get_by_role("button", name="+ Zoom in").click()
    after = row(page, "DH-1A").locator(".track").bounding_box()["width"]
    assert after > before * 1.3
    page.reload()
    assert row(page, "DH-1A").locator(".track").bounding_box()["width"] == pytest.approx(
        after, abs=2
    )
    page.get_by_role("button", name="− Zoom out").click()

    # All 24 hours on request, kept in the address.
    page.get_by_role("link", name="All 24 h").click()
    expect(page).to_have_url(re.compile(r"hours=all"))
    expect(page.locator("#grid .axis .tick")).to_have_count(24)

    # Today opens on now: the now line is in view, not hours off to the side.
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(page.base_url + day_url(location))
        expect(page.locator("#grid .now").first).to_be_attached()
        left, right = visible_span(page)
        now_x = page.locator("#grid .now").first.bounding_box()["x"]
        assert left <= now_x <= right, (width, left, now_x, right)
        page.goto(page.base_url + day_url(location, tomorrow))
        expect(page.locator(".row")).to_have_count(6)
        if width != 1440:
            screenshot(page, f"day-view-{width}", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_week_view_shows_readable_chips_per_day(page: Page, dock, screenshot):
    location, _evses, _anna, tomorrow, _at = dock
    for width, height in WIDTHS:
        if width == 1440:
            log_in(page, f"/locations/{location.pk}/week/?date={tomorrow.isoformat()}")
        else:
            page.set_viewport_size({"width": width, "height": height})
            page.reload()
        expect(page.locator(".tick.day")).to_have_count(7)
        chip = row(page, "DH-1A").locator("a.block", has_text="Anna de Vries")
        expect(chip).to_contain_text("09:00–10:00")
        assert chip.evaluate("b => [...b.children].every(s => s.scrollWidth <= s.clientWidth)")
        assert chip.bounding_box()["height"] >= 24
        # Each day of each EVSE offers its free time as one link.
        expect(row(page, "DH-3A").locator("a.free")).to_have_count(7)
        expect(row(page, "DH-3A").locator("a.free").first).to_contain_text("h free")
        screenshot(page, "week-view" if width == 1440 else f"week-view-{width}", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    row(page, "DH-1A").locator("a.free").nth(1).click()
    expect(page.locator("#booking-form").get_by_label("EVSE")).to_have_value("DH-1A")


def test_tap_targets_are_at_least_24_px_on_a_phone(page: Page, dock):
    location, _evses, _anna, tomorrow, _at = dock
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (day_url(location, tomorrow), f"/locations/{location.pk}/week/?date={tomorrow}"):
        if path.endswith(f"?date={tomorrow.isoformat()}") and "week" not in path:
            log_in(page, path)
        else:
            page.goto(page.base_url + path)
        expect(page.locator(".row")).to_have_count(6)
        small = page.evaluate(
            """() => [...document.querySelectorAll(
                    '#grid a, .datenav a, .timebar a, .timebar button, .toggle a')]
                .filter(el => el.offsetParent !== null)
                .map(el => [el.className + ' ' + el.textContent.trim().slice(0, 20),
                            el.getBoundingClientRect()])
                .filter(([, r]) => r.width < 24 || r.height < 24)
                .map(([name, r]) => `${name}: ${r.width.toFixed(0)}x${r.height.toFixed(0)}`)"""
        )
        assert small == [], small
    # The date and filters fold away on a phone; opened, they stay open from day to day.
    current = page.get_by_label("Current", exact=True)
    expect(current).to_be_hidden()
    page.get_by_text("Date and filters").click()
    expect(current).to_be_visible()
    page.get_by_role("link", name="Next week →").click()
    expect(page).to_have_url(re.compile(rf"date={tomorrow + timedelta(days=7)}"))
    expect(page.get_by_label("Current", exact=True)).to_be_visible()


def test_panel_leaves_the_slot_in_view_at_1024_and_stays_in_the_address(
    page: Page, dock, screenshot
):
    location, evses, anna, tomorrow, at = dock
    page.set_viewport_size({"width": 1024, "height": 768})
    log_in(page, day_url(location, tomorrow))
    expect(page.locator(".row")).to_have_count(6)
    # A slot at the right of the day, where a drawer over the page would cover it.
    page.locator("[data-scroller]").evaluate("s => { s.scrollLeft = s.scrollWidth; }")
    row(page, "DH-3A").locator(".label-col").scroll_into_view_if_needed()
    click_free_at(page, "DH-3A", at(20))
    form = page.locator("#booking-form")
    expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value(f"{tomorrow}T20:00")
    htmx_idle(page)
    page.wait_for_timeout(100)  # the reveal runs on the next frame
    panel_left = page.locator("#panel").bounding_box()["x"]
    left, right = visible_span(page)
    slot = x_of(page, at(20))
    assert left <= slot and x_of(page, at(20, 30)) <= min(right, panel_left), (slot, panel_left)
    # The form's URL keeps the day under it (issue 15), then names the slot.
    expect(page).to_have_url(re.compile(rf"/bookings/new/\?date={tomorrow}&evse=DH-3A&start="))
    screenshot(page, "panel-beside-slot-1024")

    # Reload: the form is still open on the same slot, and in view.
    page.reload()
    expect(form.get_by_label("EVSE")).to_have_value("DH-3A")
    expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value(f"{tomorrow}T20:00")
    page.wait_for_timeout(100)
    left, right = visible_span(page)
    assert left <= x_of(page, at(20)) <= page.locator("#panel").bounding_box()["x"]

    # Book: the address names the booking; Esc closes the panel and the address follows.
    form.get_by_label("Find by email, name or token uid").press_sequentially("anna@", delay=40)
    form.get_by_label(re.compile("Anna de Vries")).check()
    form.get_by_role("button", name="Book").click()
    expect(page.locator("#panel").get_by_role("status")).to_have_text("Booked.")
    booking = Booking.objects.get(driver=anna, evse=evses["3A"])
    expect(page).to_have_url(re.compile(rf"/bookings/{booking.uid}/\?date={tomorrow}$"))
    page.reload()
    expect(page.locator("#booking-detail")).to_contain_text("Anna de Vries")
    page.locator("#booking-detail h2").click()
    page.keyboard.press("Escape")
    expect(page.locator("#panel")).to_be_empty()
    expect(page).to_have_url(re.compile(rf"/locations/{location.pk}/\?date={tomorrow}$"))
    # Back from an open panel goes to the page before it.
    row(page, "DH-1A").locator("a.block", has_text="Anna de Vries").click()
    expect(page.locator("#booking-detail")).to_contain_text("09:00")
    expect(page).to_have_url(re.compile(rf"/bookings/[0-9a-f-]+/\?date={tomorrow}$"))
    page.go_back()
    expect(page).to_have_url(re.compile(rf"/locations/{location.pk}/\?date={tomorrow}$"))
    expect(page.locator("#panel")).to_be_empty()


def test_keyboard_shortcuts_move_days_open_the_form_and_never_fire_while_typing(
    page: Page, dock, screenshot
):
    location, _evses, _anna, tomorrow, _at = dock
    today = tomorrow - timedelta(days=1)
    log_in(page, day_url(location, tomorrow))
    expect(page.locator(".row")).to_have_count(6)
    htmx_idle(page)
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(rf"date={tomorrow + timedelta(days=1)}"))
    htmx_idle(page)
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(rf"date={tomorrow}"))
    htmx_idle(page)
    page.keyboard.press("t")
    expect(page).to_have_url(re.compile(rf"date={today}"))
    expect(page.locator("#view-title")).to_contain_text("today")
    htmx_idle(page)

    # Typing in a field is typing: no shortcut fires.
    page.get_by_label("Minimum power (kW)").focus()
    page.keyboard.type("t")
    page.keyboard.press("ArrowRight")
    page.get_by_role("searchbox", name=re.compile("Search plate")).press_sequentially("nt?")
    expect(page).to_have_url(re.compile(rf"date={today}"))
    expect(page.locator("#panel")).to_be_empty()
    expect(page.locator("#shortcuts")).not_to_be_visible()

    # n: a new booking, at the next step from now on an EVSE the engine proposes.
    page.locator("#view-title").click()
    page.keyboard.press("n")
    form = page.locator("#booking-form")
    expect(form).to_be_visible()
    expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value(
        re.compile(rf"^{today}T|^{tomorrow}T")
    )
    # The driver search has the focus: typing there does not navigate.
    form.get_by_label("Find by email, name or token uid").press_sequentially("t", delay=20)
    expect(page).to_have_url(re.compile(r"/bookings/new/"))
    page.locator("#booking-form h2").click()
    page.keyboard.press("Escape")
    expect(page.locator("#panel")).to_be_empty()

    # ?: the help lists them; Esc closes it.
    hint = page.get_by_role("button", name=re.compile("Keyboard shortcuts"))
    expect(hint).to_be_visible()
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("New booking")
    screenshot(page, "shortcuts-help")
    page.keyboard.press("Escape")
    expect(help_dialog).not_to_be_visible()


def test_print_stylesheet_makes_a_shift_sheet(page: Page, dock, screenshot):
    location, _evses, _anna, tomorrow, _at = dock
    log_in(page, day_url(location, tomorrow))
    expect(page.locator(".row")).to_have_count(6)
    page.emulate_media(media="print")
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator("form.filters")).to_be_hidden()
    expect(page.locator(".datenav")).to_be_hidden()
    # The whole day on the sheet: nothing scrolls, every booking's driver is printed.
    scroller = page.locator("[data-scroller]")
    assert scroller.evaluate("s => s.scrollWidth <= s.clientWidth + 1")
    expect(page.locator("#grid a.block", has_text="Anna de Vries")).to_be_visible()
    screenshot(page, "print-day", full_page=True)
    page.goto(page.base_url + f"/locations/{location.pk}/arrivals/?date={tomorrow}")
    expect(page.locator("table.arrivals")).to_be_visible()
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator("table.arrivals th", has_text="Actions")).to_be_hidden()
    screenshot(page, "print-arrivals", full_page=True)


def test_quick_book_opens_the_next_free_dc_slot_in_the_form(page: Page, dock, screenshot):
    location, _evses, _anna, _tomorrow, _at = dock
    log_in(page, day_url(location))
    expect(page.locator(".row")).to_have_count(6)
    quick = page.locator("form.quickbook")
    expect(quick.get_by_label("Quick book: AC or DC")).to_have_value("DC")
    expect(quick.get_by_label("Quick book: at least, in kW")).to_have_value("100")
    quick.get_by_label("for how long (quick book)").select_option("60")
    quick.get_by_role("button", name="Find next free").click()
    result = page.locator("#quick-result")
    expect(result.get_by_role("link").filter(has_text=" · ")).to_have_count(4)
    screenshot(page, "quick-book")
    first = result.get_by_role("link").filter(has_text=" · ").first
    evse = first.inner_text().split(" · ")[0]
    first.click()
    form = page.locator("#booking-form")
    expect(form.get_by_label("EVSE")).to_have_value(f"DH-{evse}")
    assert evse[0] in "12"  # a DC EVSE (1A-2B are CCS2 150 kW)
    expect(form.get_by_label("1 h", exact=True)).to_be_checked()


def test_a_taken_slot_offers_other_evses_and_the_next_free_time(page: Page, dock):
    location, evses, anna, tomorrow, at = dock
    page.set_viewport_size({"width": 1024, "height": 768})
    log_in(page, day_url(location, tomorrow))
    page.locator("[data-scroller]").evaluate("s => { s.scrollLeft = s.scrollWidth; }")
    row(page, "DH-3A").locator(".label-col").scroll_into_view_if_needed()
    click_free_at(page, "DH-3A", at(20))
    form = page.locator("#booking-form")
    form.get_by_label("Find by email, name or token uid").press_sequentially("anna@", delay=40)
    form.get_by_label(re.compile("Anna de Vries")).check()
    BookingFactory(evse=evses["3A"], start=at(20))  # taken meanwhile
    form.get_by_role("button", name="Book").click()
    expect(form.get_by_role("alert")).to_contain_text("3A is already booked")
    expect(form.get_by_role("link", name="1A at 20:00 (same time)")).to_be_visible()
    form.get_by_role("link", name="3A at 21:00 (next free on 3A)").click()
    expect(form.get_by_label("Start (Europe/Amsterdam)")).to_have_value(f"{tomorrow}T21:00")
    expect(form.get_by_label(re.compile("Anna de Vries"))).to_be_checked()
    form.get_by_role("button", name="Book").click()
    expect(page.locator("#panel").get_by_role("status")).to_have_text("Booked.")
    booking = Booking.objects.get(driver=anna, evse=evses["3A"])
    assert booking.period.lower == at(21)
