"""Dragging on the week view in a real browser, and Undo after a drag (both views): a booking to
another day and EVSE, to another time the same day, its end edge to resize it, a refused drop that
goes back with the reason, and Undo that puts it back (or says why not)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

import pytest
from playwright.sync_api import Page, expect

from bookings.models import Booking
from locations.models import BookingPolicy
from tests.bookings.factories import BookingFactory, DriverFactory
from tests.e2e import test_desk_drag as day_drag
from tests.e2e.test_staff_ui import htmx_idle, log_in, row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

desk = day_drag.desk  # the day drag's site: 1A and 1B, Ben 09:00 on 1A, Chiara 13:00 on 1B
open_day, x_at = day_drag.open_day, day_drag.x_at

MAGNET_PX = 10  # staff.js: level with the grab point (this close) keeps the time of day


def open_week(page: Page, location, day: date) -> None:
    log_in(page, f"/locations/{location.pk}/week/?date={day.isoformat()}")
    expect(page.locator("#grid.is-week .tick.day")).to_have_count(7)
    htmx_idle(page)


def cell(page: Page, uid: str, index: int):
    return row(page, uid).locator(".week-cells > .cell").nth(index)


def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"  # as the desk writes it: "Tue 8 Dec"


def day_hours(page: Page, index: int) -> float:
    """How long the week's day column `index` is on the clock: 24, or 23 or 25 on a DST day."""
    return page.evaluate(
        """(i) => {
            const grid = document.getElementById('grid');
            const starts = [...grid.querySelectorAll('.tick.day')].map(t => +t.dataset.start);
            const end = i + 1 < starts.length ? starts[i + 1] : +grid.dataset.end;
            return (end - starts[i]) / 3600;
        }""",
        index,
    )


def grab(page: Page, chip) -> tuple[float, float]:
    """Press the mouse on a chip, 20 px in from its left edge."""
    chip.scroll_into_view_if_needed()
    box = chip.bounding_box()
    x, y = box["x"] + 20, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    return x, y


def test_week_drag_to_another_day_and_evse_then_undo_puts_it_back(page: Page, desk, screenshot):
    location, evses, bookings, tomorrow, at = desk
    open_week(page, location, tomorrow)
    ben = cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")
    expect(ben).to_have_attribute("data-change", re.compile("/change/"))
    x, _y = grab(page, ben)
    # Level with the grab point, two columns on, in 1B's row: the same time two days later.
    target = cell(page, "HH-1B", 2).bounding_box()
    column = cell(page, "HH-1A", 1).bounding_box()["x"] - cell(page, "HH-1A", 0).bounding_box()["x"]
    page.mouse.move(x + 2 * column + 4, target["y"] + 16, steps=16)
    later = tomorrow + timedelta(days=2)
    tip = page.locator(".drag-tip")
    expect(tip).to_have_text(f"{day_label(later)} 09:00–10:00 · 1B")
    expect(cell(page, "HH-1B", 2)).to_have_class(re.compile("drop-target"))
    screenshot(page, "week-drag-move")
    page.mouse.up()

    notice = page.locator("#notices .notice")
    expect(notice).to_contain_text("Ben Carter: moved to")
    expect(notice).to_contain_text("09:00–10:00")
    moved = cell(page, "HH-1B", 2).locator("a.block", has_text="Ben Carter")
    expect(moved).to_contain_text("09:00–10:00")
    expect(cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")).to_have_count(0)
    ben_db = Booking.objects.get(pk=bookings["ben"].pk)
    two_days_on = datetime.combine(later, time(9), location.zone)
    assert (ben_db.evse, ben_db.period.lower, ben_db.period.upper) == (
        evses["1B"],
        two_days_on,
        two_days_on + timedelta(hours=1),
    )
    assert page.locator("#panel").inner_html().strip() == ""  # a drag opens no panel

    undo = notice.get_by_role("button", name="Undo")
    undo.hover()  # the notice stays while the pointer is on it
    screenshot(page, "drag-undo-notice")
    undo.click()
    expect(notice).to_contain_text("Move undone: Ben Carter is back at")
    expect(notice.get_by_role("button", name="Undo")).to_have_count(0)  # once only
    expect(cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")).to_have_count(1)
    ben_db.refresh_from_db()
    assert (ben_db.evse, ben_db.period.lower, ben_db.period.upper) == (evses["1A"], at(9), at(10))


def test_week_drag_to_another_time_the_same_day_and_resize_by_the_end(page: Page, desk):
    location, evses, bookings, tomorrow, at = desk
    open_week(page, location, tomorrow)
    ben = cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")
    width = cell(page, "HH-1A", 0).bounding_box()["width"]
    x, y = grab(page, ben)
    # A column is its day's 24 hours: 3 h to the right, past the grab point's magnet.
    page.mouse.move(x + MAGNET_PX + width * 3 / day_hours(page, 0) + 0.5, y, steps=8)
    expect(page.locator(".drag-tip")).to_have_text("12:00–13:00")
    page.mouse.up()
    expect(page.locator("#notices .notice")).to_contain_text("Ben Carter: moved to")
    expect(cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")).to_contain_text(
        "12:00–13:00"
    )
    ben_db = Booking.objects.get(pk=bookings["ben"].pk)
    assert (ben_db.evse, ben_db.period.lower) == (evses["1A"], at(12))

    # The end edge: a chip is not drawn to scale, so it reads the day view's hour (120 px).
    htmx_idle(page)
    chiara = cell(page, "HH-1B", 0).locator("a.block", has_text="Chiara Rossi")
    chiara.scroll_into_view_if_needed()
    box = chiara.locator("[data-resize]").bounding_box()
    gx, gy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(gx, gy)
    page.mouse.down()
    page.mouse.move(gx + 60 + 4, gy, steps=8)  # 30 minutes
    expect(page.locator(".drag-tip")).to_have_text("13:00–15:30")
    page.mouse.up()
    expect(page.locator("#notices .notice")).to_contain_text("13:00–15:30")
    expect(cell(page, "HH-1B", 0).locator("a.block", has_text="Chiara Rossi")).to_contain_text(
        "13:00–15:30"
    )
    assert Booking.objects.get(pk=bookings["chiara"].pk).period.upper == at(15, 30)

    # A click (no drag) still opens the booking.
    htmx_idle(page)
    cell(page, "HH-1B", 0).locator("a.block", has_text="Chiara Rossi").click()
    expect(page.locator("#booking-detail")).to_contain_text("Chiara Rossi")


def test_a_refused_week_drop_says_why_and_the_chip_goes_back(page: Page, desk):
    location, _evses, bookings, tomorrow, at = desk
    open_week(page, location, tomorrow)
    ben = cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")
    width = cell(page, "HH-1A", 0).bounding_box()["width"]
    x, _y = grab(page, ben)
    # Onto Chiara's 13:00 to 15:00 on 1B, the same day: 4 h 30 min later.
    target = row(page, "HH-1B").bounding_box()
    page.mouse.move(
        x + MAGNET_PX + width * 4.5 / day_hours(page, 0) + 0.5, target["y"] + 16, steps=12
    )
    expect(page.locator(".drag-tip")).to_have_text("13:30–14:30 · 1B")
    page.keyboard.press("Escape")  # Esc puts it back, nothing is sent
    expect(page.locator(".drag-tip")).to_have_count(0)
    page.mouse.up()
    expect(ben).not_to_have_class(re.compile("dragging"))
    assert page.locator("#notices .notice").count() == 0

    x, _y = grab(page, ben)
    page.mouse.move(
        x + MAGNET_PX + width * 4.5 / day_hours(page, 0) + 0.5, target["y"] + 16, steps=12
    )
    expect(page.locator(".drag-tip")).to_have_text("13:30–14:30 · 1B")
    page.mouse.up()
    alert = page.locator("#notices").get_by_role("alert")
    expect(alert).to_contain_text("Not moved: 1B is already booked around")
    expect(alert.get_by_role("button", name="Undo")).to_have_count(0)
    back = cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")
    expect(back).to_contain_text("09:00–10:00")
    expect(back).not_to_have_attribute("style", re.compile("translate"))
    assert Booking.objects.get(pk=bookings["ben"].pk).period.lower == at(9)


def test_undo_after_a_day_drag_when_the_old_slot_was_taken_says_why(page: Page, desk):
    location, evses, bookings, tomorrow, at = desk
    open_day(page, location, tomorrow)
    ben = row(page, "HH-1A").locator("a.block", has_text="Ben Carter")
    ben.scroll_into_view_if_needed()
    grab_x = x_at(page, at(9)) + 30
    offset = x_at(page, at(11)) - x_at(page, at(9))
    box, target = ben.bounding_box(), row(page, "HH-1B").bounding_box()
    page.mouse.move(grab_x, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(grab_x + offset + 6, target["y"] + 30, steps=14)
    expect(page.locator(".drag-tip")).to_have_text("11:00–12:00 · 1B")
    page.mouse.up()
    notice = page.locator("#notices .notice")
    expect(notice).to_contain_text("Ben Carter: moved to")

    # Someone books Ben's old slot meanwhile.
    BookingFactory(evse=evses["1A"], start=at(9, 15))
    notice.get_by_role("button", name="Undo").click()
    alert = page.locator("#notices").get_by_role("alert")
    expect(alert).to_contain_text("Could not undo the move: 1A is already booked around")
    ben_db = Booking.objects.get(pk=bookings["ben"].pk)
    assert (ben_db.evse, ben_db.period.lower, ben_db.period.upper) == (evses["1B"], at(11), at(12))
    expect(row(page, "HH-1B").locator("a.block", has_text="Ben Carter")).to_contain_text(
        "11:00–12:00"
    )


def test_undo_refreshes_the_open_panel_of_the_booking(page: Page, desk):
    location, _evses, bookings, tomorrow, at = desk
    open_week(page, location, tomorrow)
    cell(page, "HH-1B", 0).locator("a.block", has_text="Chiara Rossi").click()
    panel = page.locator("#booking-detail")
    expect(panel).to_contain_text("Chiara Rossi")
    htmx_idle(page)
    chiara = cell(page, "HH-1B", 0).locator("a.block", has_text="Chiara Rossi")
    x, y = grab(page, chiara)
    column = cell(page, "HH-1B", 1).bounding_box()["x"] - cell(page, "HH-1B", 0).bounding_box()["x"]
    page.mouse.move(x + column + 3, y, steps=10)
    next_day = tomorrow + timedelta(days=1)
    expect(page.locator(".drag-tip")).to_have_text(f"{day_label(next_day)} 13:00–15:00")
    page.mouse.up()
    when = panel.locator(".facts dd").first  # "When"
    expect(when).to_contain_text(f"{next_day:%a} {next_day.day} {next_day:%b %Y}, 13:00–15:00")
    page.locator("#notices .notice").get_by_role("button", name="Undo").click()
    expect(page.locator("#notices .notice")).to_contain_text("Move undone")
    expect(when).to_contain_text(f"{tomorrow:%a} {tomorrow.day} {tomorrow:%b %Y}, 13:00–15:00")
    assert Booking.objects.get(pk=bookings["chiara"].pk).period.lower == at(13)


def test_week_drag_by_finger_and_undo_on_a_phone(
    browser, live_server, e2e_settings, desk, screenshot
):
    """A finger holds a chip still to pick it up (a swipe still scrolls the week), drags it to the
    next day on 1B, and Undo in the notice across the foot of the phone puts it back."""
    location, evses, bookings, tomorrow, at = desk
    context = browser.new_context(
        viewport={"width": 390, "height": 860}, locale="en-GB", has_touch=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.base_url = live_server.url.replace("localhost", "127.0.0.1")
    try:
        open_week(page, location, tomorrow)
        ben = cell(page, "HH-1A", 0).locator("a.block", has_text="Ben Carter")
        ben.scroll_into_view_if_needed()
        box = ben.bounding_box()
        x, y = box["x"] + 20, box["y"] + box["height"] / 2
        column = (
            cell(page, "HH-1A", 1).bounding_box()["x"] - cell(page, "HH-1A", 0).bounding_box()["x"]
        )
        target = cell(page, "HH-1B", 1).bounding_box()
        cdp = context.new_cdp_session(page)
        day_drag.touch(cdp, "touchStart", x, y)
        expect(ben).to_have_class(re.compile("dragging"))  # held still: picked up
        for i in range(1, 11):
            day_drag.touch(
                cdp, "touchMove", x + (column + 3) * i / 10, y + (target["y"] + 16 - y) * i / 10
            )
        next_day = tomorrow + timedelta(days=1)
        expect(page.locator(".drag-tip")).to_have_text(f"{day_label(next_day)} 09:00–10:00 · 1B")
        expect(cell(page, "HH-1B", 1)).to_have_class(re.compile("drop-target"))
        screenshot(page, "week-drag-move-390")
        day_drag.touch(cdp, "touchEnd", 0, 0)
        notice = page.locator("#notices .notice")
        expect(notice).to_contain_text("Ben Carter: moved to")
        ben_db = Booking.objects.get(pk=bookings["ben"].pk)
        assert (ben_db.evse, ben_db.period.lower) == (
            evses["1B"],
            datetime.combine(next_day, time(9), location.zone),
        )
        undo = notice.get_by_role("button", name="Undo")
        expect(undo).to_be_visible()
        screenshot(page, "drag-undo-notice-390")
        undo.tap()
        expect(notice).to_contain_text("Move undone")
        ben_db.refresh_from_db()
        assert (ben_db.evse, ben_db.period.lower) == (evses["1A"], at(9))
    finally:
        context.close()


def next_fall_back(zone, after: date) -> date:
    """The first day after `after` whose clock goes back an hour (a 25-hour day)."""
    day = after + timedelta(days=1)
    while day < after + timedelta(days=400):
        midnight = datetime.combine(day, time(0), zone)
        if (midnight + timedelta(days=1)).utcoffset() < midnight.utcoffset():
            return day
        day += timedelta(days=1)
    raise AssertionError(f"no fall-back day in {zone} within 400 days")


def test_week_drag_to_the_day_the_clocks_go_back_keeps_the_wall_time(page: Page, desk):
    """A column is that day's 23, 24 or 25 hours: level with the grab keeps 09:00 on the clock."""
    location, evses, bookings, tomorrow, _at = desk
    BookingPolicy.objects.filter(location=location).update(horizon_days=400)
    sunday = next_fall_back(location.zone, tomorrow)
    saturday = sunday - timedelta(days=1)
    nine = datetime.combine(saturday, time(9), location.zone)
    Booking.objects.filter(pk=bookings["ben"].pk).delete()
    anna = BookingFactory(evse=evses["1A"], start=nine, driver=DriverFactory(name="Anna de Vries"))
    open_week(page, location, saturday)
    chip = cell(page, "HH-1A", 0).locator("a.block", has_text="Anna de Vries")
    x, y = grab(page, chip)
    column = cell(page, "HH-1A", 1).bounding_box()["x"] - cell(page, "HH-1A", 0).bounding_box()["x"]
    page.mouse.move(x + column + 3, y, steps=10)
    expect(page.locator(".drag-tip")).to_have_text(f"{day_label(sunday)} 09:00–10:00")
    page.mouse.up()
    expect(page.locator("#notices .notice")).to_contain_text("Anna de Vries: moved to")
    moved = Booking.objects.get(pk=anna.pk)
    assert moved.period.lower == datetime.combine(sunday, time(9), location.zone)
    assert moved.period.upper - moved.period.lower == timedelta(hours=1)


def test_a_booking_across_midnight_is_dragged_by_either_days_chip(page: Page, desk):
    """Its chip on the second day moves with the pointer from there (it does not jump to the
    first day's column when picked up)."""
    location, evses, _bookings, tomorrow, at = desk
    late = BookingFactory(
        evse=evses["1B"],
        start=at(23),
        duration=timedelta(hours=2),
        driver=DriverFactory(name="Eva Jansen"),
    )
    open_week(page, location, tomorrow)
    expect(row(page, "HH-1B").locator("a.block", has_text="Eva Jansen")).to_have_count(2)
    chip = cell(page, "HH-1B", 1).locator("a.block", has_text="Eva Jansen")
    x, y = grab(page, chip)
    page.mouse.move(x + 6, y + 2, steps=3)  # picked up, level with the grab
    expect(chip).to_have_class(re.compile("dragging"))
    expect(page.locator(".drag-tip")).to_have_text("23:00–01:00")
    assert "translate" not in (chip.get_attribute("style") or "")
    column = cell(page, "HH-1B", 2).bounding_box()["x"] - cell(page, "HH-1B", 1).bounding_box()["x"]
    page.mouse.move(x + column + 3, y, steps=8)
    day_after = tomorrow + timedelta(days=1)
    expect(page.locator(".drag-tip")).to_have_text(f"{day_label(day_after)} 23:00–01:00")
    expect(cell(page, "HH-1B", 2)).to_have_class(re.compile("drop-target"))
    page.mouse.up()
    expect(page.locator("#notices .notice")).to_contain_text("Eva Jansen: moved to")
    late.refresh_from_db()
    assert late.period.lower == datetime.combine(day_after, time(23), location.zone)
    assert late.period.upper - late.period.lower == timedelta(hours=2)
