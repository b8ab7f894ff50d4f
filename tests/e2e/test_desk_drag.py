"""Timeline edits in a real browser (issue 15): drag a booking to another time and EVSE, drag its
end to resize it, a refused drag that goes back; cancel through the page's dialog and Undo; and a
panel URL that keeps the week view and its filters through reload and back."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from bookings.models import Booking, Status
from tests.bookings.factories import BookingFactory, DriverFactory
from tests.e2e.test_staff_ui import htmx_idle, log_in, row
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def desk(staff_user):
    """A 24/7 site, 15-minute steps, two EVSEs and three bookings tomorrow."""
    location = LocationFactory(name="Harbour Hub", city="Rotterdam", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(location=location, min_duration_minutes=30, max_duration_minutes=240)
    cp = ChargePointFactory(location=location, identity="HH-CP01")
    a = EVSEFactory(charge_point=cp, uid="HH-1A", physical_reference="1A")
    b = EVSEFactory(charge_point=cp, uid="HH-1B", physical_reference="1B")
    tomorrow = timezone.now().astimezone(location.zone).date() + timedelta(days=1)

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(tomorrow, time(hour, minute), location.zone)

    ben = BookingFactory(evse=a, start=at(9), driver=DriverFactory(name="Ben Carter"))
    chiara = BookingFactory(
        evse=b, start=at(13), duration=timedelta(hours=2), driver=DriverFactory(name="Chiara Rossi")
    )
    gone = BookingFactory(
        evse=a, start=at(17), driver=DriverFactory(name="Daiki Tanaka"), status=Status.CANCELED
    )
    return location, {"1A": a, "1B": b}, {"ben": ben, "chiara": chiara, "gone": gone}, tomorrow, at


def open_day(page: Page, location, day) -> None:
    log_in(page, f"/locations/{location.pk}/?date={day.isoformat()}")
    expect(page.get_by_role("heading", name="Harbour Hub")).to_be_visible()
    htmx_idle(page)


def x_at(page: Page, moment: datetime) -> float:
    """Where `moment` lies on the time axis, in viewport pixels."""
    return page.evaluate(
        """(t) => {
            const grid = document.getElementById('grid');
            const rect = grid.querySelector('.track').getBoundingClientRect();
            const start = Number(grid.dataset.start), end = Number(grid.dataset.end);
            return rect.left + (t - start) / (end - start) * rect.width;
        }""",
        moment.timestamp(),
    )


def test_drag_a_booking_to_another_time_and_evse_then_resize_it(page: Page, desk, screenshot):
    location, evses, bookings, tomorrow, at = desk
    open_day(page, location, tomorrow)
    ben = row(page, "HH-1A").locator("a.block", has_text="Ben Carter")
    expect(ben).to_have_attribute("data-change", re.compile("/change/"))
    # A cancelled booking is not draggable.
    expect(row(page, "HH-1A").locator("a.block-canceled")).not_to_have_attribute(
        "data-change", re.compile(".")
    )
    ben.scroll_into_view_if_needed()
    # Grab 30 px into the block (09:15), drop over 1B at 11:15 (+ a few px: it snaps to 11:00).
    grab = x_at(page, at(9)) + 30
    offset = x_at(page, at(11)) - x_at(page, at(9))
    target = row(page, "HH-1B").bounding_box()

    def while_dragging():
        tip = page.locator(".drag-tip")
        expect(tip).to_have_text("11:00–12:00 · 1B")
        expect(row(page, "HH-1B")).to_have_class(re.compile("drop-target"))
        screenshot(page, "drag-move")

    box = ben.bounding_box()
    page.mouse.move(grab, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(grab + offset + 6, target["y"] + 30, steps=14)
    while_dragging()
    page.mouse.up()

    notice = page.locator("#notices .notice")
    expect(notice).to_contain_text("Ben Carter: moved to")
    expect(notice).to_contain_text("11:00–12:00")
    moved = row(page, "HH-1B").locator("a.block", has_text="Ben Carter")
    expect(moved.locator(".what")).to_contain_text("11:00–12:00")
    expect(row(page, "HH-1A").locator("a.block-reserved")).to_have_count(0)
    ben_db = Booking.objects.get(pk=bookings["ben"].pk)
    assert (ben_db.evse, ben_db.period.lower, ben_db.period.upper) == (
        evses["1B"],
        at(11),
        at(12),
    )
    assert page.locator("#panel").inner_html().strip() == ""  # a drag opens no panel

    # Drag its end edge 30 minutes to the right: 11:00 to 12:30.
    htmx_idle(page)
    grip = moved.locator("[data-resize]")
    box = grip.bounding_box()
    half_hour = x_at(page, at(11, 30)) - x_at(page, at(11))
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + half_hour + 4, box["y"] + 10, steps=10)
    expect(page.locator(".drag-tip")).to_have_text("11:00–12:30")
    page.mouse.up()
    expect(notice).to_contain_text("11:00–12:30")
    expect(row(page, "HH-1B").locator("a.block .what", has_text="11:00–12:30")).to_have_count(1)
    ben_db.refresh_from_db()
    assert ben_db.period.upper == at(12, 30)

    # A click (no drag) still opens the booking.
    htmx_idle(page)
    row(page, "HH-1B").locator("a.block", has_text="Ben Carter").click()
    expect(page.locator("#booking-detail")).to_contain_text("Ben Carter")


def test_a_refused_drag_says_why_and_the_block_goes_back(page: Page, desk):
    location, _evses, bookings, tomorrow, at = desk
    open_day(page, location, tomorrow)
    ben = row(page, "HH-1A").locator("a.block", has_text="Ben Carter")
    ben.scroll_into_view_if_needed()
    before = ben.get_attribute("style")
    # Onto Chiara's 13:00 to 15:00 on 1B.
    grab = x_at(page, at(9)) + 20
    offset = x_at(page, at(13, 30)) - x_at(page, at(9))
    box, target = ben.bounding_box(), row(page, "HH-1B").bounding_box()
    page.mouse.move(grab, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(grab + offset, target["y"] + 30, steps=14)
    page.mouse.up()

    alert = page.locator("#notices").get_by_role("alert")
    expect(alert).to_contain_text("Not moved: 1B is already booked around")
    back = row(page, "HH-1A").locator("a.block", has_text="Ben Carter")
    expect(back).to_have_attribute("style", before)
    expect(back).to_contain_text("09:00–10:00")
    assert Booking.objects.get(pk=bookings["ben"].pk).period.lower == at(9)
    # The notice links the booking, whose move form is the keyboard way to move it.
    alert.get_by_role("link", name="Open the booking").click()
    expect(page.locator("#booking-detail")).to_contain_text("Ben Carter")
    alert.get_by_role("button", name="Dismiss").click()
    expect(page.locator("#notices .notice")).to_have_count(0)


def test_cancel_asks_in_a_dialog_and_undo_books_the_same_again(page: Page, desk, screenshot):
    location, evses, bookings, tomorrow, _at = desk
    open_day(page, location, tomorrow)
    row(page, "HH-1B").locator("a.block", has_text="Chiara Rossi").click()
    panel = page.locator("#panel")
    panel.get_by_role("button", name="Cancel booking").click()
    dialog = page.get_by_role("dialog", name="Cancel this booking?")
    expect(dialog).to_be_visible()
    # "Keep the booking" (the default focus) changes nothing.
    expect(dialog.get_by_role("button", name="Keep the booking")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    assert Booking.objects.get(pk=bookings["chiara"].pk).status == Status.RESERVED

    panel.get_by_role("button", name="Cancel booking").click()
    dialog.get_by_role("button", name="Yes, cancel it").click()
    notice = page.locator("#notices .notice")
    expect(notice).to_contain_text("Canceled: Chiara Rossi")
    expect(row(page, "HH-1B").locator("a.block-canceled", has_text="Chiara Rossi")).to_have_count(1)
    undo = notice.get_by_role("button", name="Undo")
    undo.hover()  # the notice stays while the pointer is on it
    screenshot(page, "undo-notice")
    undo.click()

    expect(notice).to_contain_text("Cancel undone: Chiara Rossi is booked again")
    again = Booking.objects.get(driver__name="Chiara Rossi", status=Status.RESERVED)
    assert again.pk != bookings["chiara"].pk
    assert (again.evse, again.period) == (evses["1B"], bookings["chiara"].period)
    expect(page).to_have_url(re.compile(f"/bookings/{again.uid}/"))
    expect(panel.locator("#booking-detail")).to_contain_text("Undoes")
    expect(row(page, "HH-1B").locator("a.block-reserved", has_text="Chiara Rossi")).to_have_count(1)


def test_the_panel_url_keeps_the_week_view_and_its_filters(page: Page, desk):
    location, _evses, bookings, tomorrow, _at = desk
    log_in(page, f"/locations/{location.pk}/week/?date={tomorrow.isoformat()}&current=AC")
    expect(page.locator(".tick.day")).to_have_count(7)
    htmx_idle(page)
    page.locator("a.block", has_text="Ben Carter").click()
    expect(page.locator("#booking-detail")).to_contain_text("Ben Carter")
    expect(page).to_have_url(re.compile(rf"/bookings/{bookings['ben'].uid}/\?.*view=week"))
    expect(page).to_have_url(re.compile("current=AC"))

    page.reload()
    expect(page.locator("#grid.is-week")).to_be_visible()
    expect(page.locator("#booking-detail")).to_contain_text("Ben Carter")
    expect(page.get_by_label("Current", exact=True)).to_have_value("AC")
    expect(page.get_by_label("Date", exact=True)).to_have_value(tomorrow.isoformat())

    # Close puts the week's own URL back.
    page.locator("#panel").get_by_role("link", name="Close").click()
    expect(page).to_have_url(re.compile(r"/week/\?.*current=AC"))
    expect(page.locator("#grid.is-week")).to_be_visible()


def touch(cdp, kind: str, x: float, y: float) -> None:
    points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


@pytest.mark.parametrize("width", [1024, 390])
def test_drag_by_finger_and_undo_at_narrower_widths(browser, live_server, e2e_settings, desk,
                                                    screenshot, width):  # fmt: skip
    """A finger holds a block still to pick it up (a swipe scrolls), then drags it; the undo
    notice fits the width."""
    location, evses, bookings, tomorrow, at = desk
    context = browser.new_context(
        viewport={"width": width, "height": 860}, locale="en-GB", has_touch=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.base_url = live_server.url.replace("localhost", "127.0.0.1")
    try:
        open_day(page, location, tomorrow)
        ben = row(page, "HH-1A").locator("a.block", has_text="Ben Carter")
        ben.scroll_into_view_if_needed()
        box = ben.bounding_box()
        x, y = box["x"] + 12, box["y"] + box["height"] / 2
        hour = x_at(page, at(10)) - x_at(page, at(9))
        cdp = context.new_cdp_session(page)
        touch(cdp, "touchStart", x, y)
        expect(ben).to_have_class(re.compile("dragging"))  # held still: picked up
        target = row(page, "HH-1B").bounding_box()
        for i in range(1, 11):
            touch(cdp, "touchMove", x + hour * i / 10 + 3, y + (target["y"] + 30 - y) * i / 10)
        expect(page.locator(".drag-tip")).to_have_text("10:00–11:00 · 1B")
        screenshot(page, f"drag-move-{width}")
        touch(cdp, "touchEnd", 0, 0)
        expect(page.locator("#notices .notice")).to_contain_text("Ben Carter: moved to")
        ben_db = Booking.objects.get(pk=bookings["ben"].pk)
        assert (ben_db.evse, ben_db.period.lower) == (evses["1B"], at(10))

        # The drag's notice (with Undo for 20 s) lies across the foot of a phone: put it away.
        page.locator("#notices .notice").get_by_role("button", name="Dismiss").click()
        htmx_idle(page)
        row(page, "HH-1B").locator("a.block", has_text="Chiara Rossi").click()
        page.locator("#panel").get_by_role("button", name="Cancel booking").click()
        page.get_by_role("dialog").get_by_role("button", name="Yes, cancel it").click()
        notice = page.locator("#notices .notice")
        expect(notice.get_by_role("button", name="Undo")).to_be_visible()
        cancelled = row(page, "HH-1B").locator("a.block-canceled", has_text="Chiara Rossi")
        expect(cancelled).to_have_count(1)
        notice.hover()
        screenshot(page, f"undo-notice-{width}")
    finally:
        context.close()


def test_a_block_held_at_the_edge_scrolls_the_timeline_on(page: Page, desk):
    location, _evses, _bookings, tomorrow, _at = desk
    page.set_viewport_size({"width": 390, "height": 860})
    open_day(page, location, tomorrow)
    ben = row(page, "HH-1A").locator("a.block", has_text="Ben Carter")
    ben.scroll_into_view_if_needed()
    scroller = page.locator("[data-scroller]")
    before = scroller.evaluate("el => el.scrollLeft")
    box, edge = ben.bounding_box(), scroller.bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(edge["x"] + edge["width"] - 8, box["y"] + box["height"] / 2, steps=8)
    page.wait_for_function(
        "before => document.querySelector('[data-scroller]').scrollLeft > before + 200", arg=before
    )
    # The time shown follows the scroll: well past where the pointer is on the screen.
    tip = page.locator(".drag-tip").inner_text()
    assert tip > "12:00", tip
    page.keyboard.press("Escape")  # put it back
    expect(page.locator(".drag-tip")).to_have_count(0)
    page.mouse.up()
    expect(ben.locator(".what")).to_contain_text("09:00–10:00")
    assert page.locator("#notices .notice").count() == 0
