"""The desk's timeline edits over HTTP (issue 15): a drag answered with a notice, cancel with an
Undo that books the same again, and a panel URL that keeps the view under it."""

import re
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.urls import reverse

from bookings.exceptions import InvalidTransition
from bookings.models import Booking, BookingTransition, Status
from bookings.services import Actor, booking_rebook
from tests.bookings.factories import (
    BookingFactory,
    BookingTokenFactory,
    DriverFactory,
    DriverTokenFactory,
    tomorrow_at,
)
from tests.bookings.test_views import HX
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = pytest.mark.django_db

DRAG = {**HX, "HX-Target": "notices"}


@pytest.fixture
def site():
    """A 24/7 location with a 15-minute step and 30 min to 4 h bookings, one AC and one DC EVSE."""
    location = LocationFactory(name="Harbour Hub", city="Rotterdam")
    BookingPolicyFactory(location=location, min_duration_minutes=30, max_duration_minutes=240)
    cp = ChargePointFactory(location=location, identity="HH-CP01")
    ac = EVSEFactory(charge_point=cp, uid="HH-1", physical_reference="1A")
    dc = EVSEFactory(charge_point=cp, uid="HH-2", physical_reference="1B", connectors=[])
    ConnectorFactory(evse=dc, dc=True, connector_id="1")
    return location, ac, dc


@pytest.fixture
def driver():
    d = DriverFactory(name="Anna de Vries", email="anna@example.com")
    DriverTokenFactory(driver=d, uid="04A1B2C3D4E5F6")
    return d


def drop(client, booking, **values):
    """What the timeline script sends when a block is dropped."""
    data = {"evse": booking.evse.uid, "override_reason": "", **values}
    return client.post(reverse("bookings:booking_change", args=[booking.uid]), data, headers=DRAG)


# --- Drag to move and resize ---


def test_a_changeable_block_carries_what_a_drag_needs_and_a_cancelled_one_does_not(
    staff_client, site
):
    location, ac, _ = site
    live = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    gone = BookingFactory(evse=ac, start=tomorrow_at(location, 14), status=Status.CANCELED)
    url = reverse("bookings:location_day", args=[location.pk])
    html = staff_client.get(url, {"date": live.start.date().isoformat()}).content.decode()
    block = re.search(rf'<a class="block[^"]*"[^>]*data-booking="{live.uid}"[^>]*>', html)[0]
    assert f'data-change="{reverse("bookings:booking_change", args=[live.uid])}"' in block
    assert f'data-start="{int(live.start.timestamp())}"' in block
    assert "drag to move" in block
    track = re.search(r'<div class="track-col track"[^>]*>', html)[0]
    assert 'data-step="900"' in track and 'data-max="14400"' in track
    cancelled = re.search(rf'<a class="block[^"]*"[^>]*data-booking="{gone.uid}"[^>]*>', html)[0]
    assert "data-change" not in cancelled


def test_dropping_a_block_on_another_evse_and_time_moves_it_and_says_so(staff_client, site):
    location, ac, dc = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    start = tomorrow_at(location, 12, 30)
    end = start + timedelta(hours=1)
    response = drop(
        staff_client, booking, evse=dc.uid, start=start.isoformat(), end=end.isoformat()
    )
    assert response.status_code == 200
    assert "bookings-changed" in response["HX-Trigger"]  # the grid redraws
    html = response.content.decode()
    assert "moved to" in html and "12:30–13:30" in html and "1B" in html
    assert 'role="alert"' not in html
    booking.refresh_from_db()
    assert (booking.evse, booking.period.lower, booking.period.upper) == (dc, start, end)


def test_dragging_the_end_resizes_to_any_step_not_only_a_duration_choice(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    # 3 h 45 min is no preset; a drag lands on any 15-minute step within the policy.
    end = booking.start + timedelta(hours=3, minutes=45)
    response = drop(staff_client, booking, start=booking.start.isoformat(), end=end.isoformat())
    assert "moved to" in response.content.decode()
    booking.refresh_from_db()
    assert booking.period.upper == end


def test_a_refused_drop_says_the_services_reason_and_changes_nothing(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    BookingFactory(evse=ac, start=tomorrow_at(location, 12))
    start = tomorrow_at(location, 11, 30)
    response = drop(
        staff_client,
        booking,
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
    )
    assert response.status_code == 200
    assert "bookings-changed" in response["HX-Trigger"]  # the block is drawn where it still is
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Not moved: 1A is already booked around" in html
    assert "Open the booking" in html
    booking.refresh_from_db()
    assert booking.period.lower == tomorrow_at(location, 10)


def test_a_drop_past_the_policy_is_refused_with_its_message(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    end = booking.start + timedelta(hours=5)  # the policy allows 4 h at most
    html = drop(
        staff_client, booking, start=booking.start.isoformat(), end=end.isoformat()
    ).content.decode()
    assert "Not moved: A booking here lasts at most 240 minutes." in html


def hidden_inputs(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def undo(client, booking, html: str):
    """What the Undo button of a drag's notice sends (its form's fields, as the browser would)."""
    action = re.search(r'<form method="post" action="([^"]+)"', html)[1].replace("&amp;", "&")
    return client.post(action, hidden_inputs(html), headers=HX)


def test_a_drop_offers_undo_with_where_the_booking_was(staff_client, site, driver):
    location, ac, dc = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), driver=driver)
    start = tomorrow_at(location, 12, 30)
    html = drop(
        staff_client,
        booking,
        evse=dc.uid,
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
    ).content.decode()
    assert "Anna de Vries: moved to" in html and ">Undo</button>" in html
    assert 'data-timeout="20"' in html
    assert f'data-booking="{booking.uid}"' in html  # the page refreshes its open panel
    assert "Moves it back to" in html and "10:00–11:00" in html and "on 1A" in html
    assert "partner" not in html  # a booking the site made: nobody else to tell
    sent = hidden_inputs(html)
    assert sent["undo"] == "1" and sent["evse"] == ac.uid and sent["override_reason"] == ""
    assert datetime.fromisoformat(sent["start"]) == tomorrow_at(location, 10)
    assert datetime.fromisoformat(sent["end"]) == tomorrow_at(location, 11)


def test_undo_of_a_drop_moves_it_back_through_the_same_change_once(staff_client, site, driver):
    location, ac, dc = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), driver=driver)
    start = tomorrow_at(location, 12, 30)
    html = drop(
        staff_client,
        booking,
        evse=dc.uid,
        start=start.isoformat(),
        end=(start + timedelta(hours=2)).isoformat(),
    ).content.decode()
    response = undo(staff_client, booking, html)
    assert response.status_code == 200
    assert "bookings-changed" in response["HX-Trigger"]  # the grid redraws
    answer = response.content.decode()
    assert "Move undone: Anna de Vries is back at" in answer and "10:00–11:00" in answer
    assert ">Undo</button>" not in answer  # offered once: this answer replaces the notice
    booking.refresh_from_db()
    assert (booking.evse, booking.period.lower, booking.period.upper) == (
        ac,
        tomorrow_at(location, 10),
        tomorrow_at(location, 11),
    )
    # Both moves are in the history, as changes made by the desk.
    changes = BookingTransition.objects.filter(
        booking=booking, event=BookingTransition.Event.CHANGED
    )
    assert changes.count() == 2


def test_undo_of_a_drop_whose_old_slot_was_taken_says_why_and_moves_nothing(staff_client, site):
    location, ac, dc = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    start = tomorrow_at(location, 12)
    html = drop(
        staff_client,
        booking,
        evse=dc.uid,
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
    ).content.decode()
    BookingFactory(evse=ac, start=tomorrow_at(location, 10, 30))  # meanwhile
    response = undo(staff_client, booking, html)
    answer = response.content.decode()
    assert 'role="alert"' in answer
    assert "Could not undo the move: 1A is already booked around" in answer
    assert "Open the booking" in answer
    booking.refresh_from_db()
    assert (booking.evse, booking.period.lower) == (dc, start)


def test_an_emsp_bookings_drop_offers_undo_too_and_says_its_partner_is_told(staff_client, site):
    """Unlike a cancel (final in OCPI), a move is one more change the eMSP hears of."""
    location, ac, dc = site
    booking = BookingFactory(
        evse=ac,
        start=tomorrow_at(location, 10),
        channel=Booking.Channel.OCPI,
        emsp_country_code="NL",
        emsp_party_id="EMS",
        request_id="R-1",
    )
    start = tomorrow_at(location, 14)
    html = drop(
        staff_client,
        booking,
        evse=dc.uid,
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
    ).content.decode()
    assert ">Undo</button>" in html and "its partner is told again" in html
    undo(staff_client, booking, html)
    booking.refresh_from_db()
    assert (booking.evse, booking.period.lower) == (ac, tomorrow_at(location, 10))


def test_a_drop_that_changes_nothing_offers_no_undo(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    html = drop(
        staff_client, booking, start=booking.start.isoformat(), end=booking.end.isoformat()
    ).content.decode()
    assert "moved to" in html and ">Undo</button>" not in html


def test_week_chips_carry_what_a_drag_needs_and_a_cancelled_one_does_not(staff_client, site):
    location, ac, _ = site
    live = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    gone = BookingFactory(evse=ac, start=tomorrow_at(location, 14), status=Status.CANCELED)
    day = live.start.astimezone(location.zone).date()
    url = reverse("bookings:location_week", args=[location.pk])
    html = staff_client.get(url, {"date": day.isoformat()}).content.decode()
    chip = re.search(rf'<a class="block[^"]*"[^>]*data-booking="{live.uid}"[^>]*>.*?</a>', html)[0]
    assert f'data-change="{reverse("bookings:booking_change", args=[live.uid])}"' in chip
    assert f'data-start="{int(live.start.timestamp())}"' in chip
    assert f'data-end="{int(live.end.timestamp())}"' in chip
    assert "drag to move" in chip and "data-resize" in chip
    cells = re.search(r'<div class="week-cells"[^>]*>', html)[0]
    assert 'data-step="900"' in cells and 'data-max="14400"' in cells
    # Each day column says when its local day begins (the drag's time axis).
    first = datetime.combine(day, time(0), tzinfo=location.zone)
    assert (
        f'data-start="{int(first.timestamp())}"' in re.search(r'<a class="tick day"[^>]*>', html)[0]
    )
    assert len(re.findall(r'<a class="tick day"[^>]*data-start="\d+"', html)) == 7
    cancelled = re.search(rf'<a class="block[^"]*"[^>]*data-booking="{gone.uid}"[^>]*>', html)[0]
    assert "data-change" not in cancelled


def test_a_drop_on_a_cancelled_booking_is_refused(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), status=Status.CANCELED)
    start = tomorrow_at(location, 11)
    html = drop(
        staff_client, booking, start=start.isoformat(), end=(start + timedelta(hours=1)).isoformat()
    ).content.decode()
    assert "Not moved: A canceled booking cannot be changed." in html


def test_a_drop_with_a_time_that_names_no_instant_says_so(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    html = drop(staff_client, booking, start="soon", end="later").content.decode()
    assert 'role="alert"' in html and "Enter a date and time." in html


# --- Cancel, confirm and Undo ---


def test_cancel_offers_undo_in_a_notice_and_undo_books_the_same_again(staff_client, site, driver):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), driver=driver, notes="Van")
    BookingTokenFactory(booking=booking, uid="04A1B2C3D4E5F6")
    response = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]), {"reason": "UNKNOWN"}, headers=HX
    )
    html = response.content.decode()
    assert '<div id="notices" hx-swap-oob="beforeend">' in html
    assert "Canceled: Anna de Vries" in html
    undo_url = reverse("bookings:booking_rebook", args=[booking.uid])
    assert f'hx-post="{undo_url}"' in html and ">Undo</button>" in html
    assert 'data-timeout="20"' in html

    response = staff_client.post(undo_url, headers=HX)
    assert response.status_code == 200
    assert "bookings-changed" in response["HX-Trigger"]
    html = response.content.decode()
    assert "Cancel undone: Anna de Vries is booked again" in html
    again = Booking.objects.exclude(pk=booking.pk).get()
    assert response["HX-Push-Url"] == reverse("bookings:booking_detail", args=[again.uid])
    assert '<div id="panel" hx-swap-oob="innerHTML">' in html  # the panel shows the new one
    assert (again.status, again.evse, again.period, again.driver, again.notes) == (
        Status.RESERVED,
        ac,
        booking.period,
        driver,
        "Van",
    )
    assert list(again.tokens.values_list("uid", flat=True)) == ["04A1B2C3D4E5F6"]
    booking.refresh_from_db()
    assert booking.status == Status.CANCELED  # CANCELED is final; the undo is a new booking

    # Both panels link the two.
    old_panel = staff_client.get(
        reverse("bookings:booking_detail", args=[booking.uid]), headers=HX
    ).content.decode()
    assert "Booked again" in old_panel and str(again.uid)[:8] in old_panel
    new_panel = staff_client.get(
        reverse("bookings:booking_detail", args=[again.uid]), headers=HX
    ).content.decode()
    assert "Undoes" in new_panel and str(booking.uid)[:8] in new_panel
    assert "Undo of a cancel: booked again" in new_panel

    # Once only.
    html = staff_client.post(undo_url, headers=HX).content.decode()
    assert 'role="alert"' in html and "This cancel has already been undone." in html
    assert Booking.objects.count() == 2


def test_undo_when_the_slot_was_taken_meanwhile_says_so_and_books_nothing(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), status=Status.CANCELED)
    BookingFactory(evse=ac, start=tomorrow_at(location, 10, 30))
    response = staff_client.post(reverse("bookings:booking_rebook", args=[booking.uid]), headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'role="alert"' in html
    assert "Could not undo the cancel: 1A is already booked around" in html
    assert Booking.objects.count() == 2


def test_an_emsp_bookings_cancel_asks_and_offers_no_undo(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(
        evse=ac,
        start=tomorrow_at(location, 10),
        channel=Booking.Channel.OCPI,
        emsp_country_code="NL",
        emsp_party_id="EMS",
        request_id="R-1",
    )
    panel = staff_client.get(
        reverse("bookings:booking_detail", args=[booking.uid]), headers=HX
    ).content.decode()
    assert "its eMSP or API client is told at once: this cannot be undone here." in panel
    html = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]), {"reason": "UNKNOWN"}, headers=HX
    ).content.decode()
    assert "books again through its own channel" in html
    assert ">Undo</button>" not in html
    response = staff_client.post(reverse("bookings:booking_rebook", args=[booking.uid]), headers=HX)
    assert "books again through its own channel" in response.content.decode()
    assert Booking.objects.count() == 1


def test_rebook_refuses_a_booking_that_is_not_cancelled(site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    with pytest.raises(InvalidTransition, match=r"Only a cancelled booking can be booked again\."):
        booking_rebook(booking=booking, actor=Actor.system())
    assert Booking.objects.count() == 1


def test_rebook_writes_the_link_on_the_new_bookings_created_row(site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), status=Status.CANCELED)
    again = booking_rebook(booking=booking, actor=Actor.system())
    row = BookingTransition.objects.get(booking=again)
    assert (row.event, row.code, row.details["rebook_of"]) == (
        BookingTransition.Event.CREATED,
        "rebook",
        str(booking.uid),
    )


def test_undo_without_javascript_shows_the_new_booking(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), status=Status.CANCELED)
    response = staff_client.post(reverse("bookings:booking_rebook", args=[booking.uid]))
    again = Booking.objects.exclude(pk=booking.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("bookings:booking_detail", args=[again.uid])


# --- The open panel keeps the view in its URL ---


def test_week_view_links_open_panels_whose_urls_keep_the_week_and_filters(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    day = booking.start.astimezone(location.zone).date()
    url = reverse("bookings:location_week", args=[location.pk])
    html = staff_client.get(url, {"date": day.isoformat(), "current": "AC"}).content.decode()
    detail = reverse("bookings:booking_detail", args=[booking.uid])
    assert f'href="{detail}?date={day.isoformat()}&amp;current=AC&amp;view=week"' in html
    assert (
        f"{reverse('bookings:booking_new', args=[location.pk])}?date={day.isoformat()}"
        "&amp;current=AC&amp;view=week" in html
    )


def test_a_panel_url_with_the_week_reloads_the_week_with_its_filters_and_the_panel(
    staff_client, site
):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    day = booking.start.astimezone(location.zone).date() - timedelta(days=2)
    detail = reverse("bookings:booking_detail", args=[booking.uid])
    response = staff_client.get(detail, {"view": "week", "date": day.isoformat(), "current": "AC"})
    html = response.content.decode()
    assert 'class="grid is-week"' in html
    assert f'value="{day.isoformat()}"' in html  # the week shown starts on the shared date
    assert '<option value="AC" selected>' in html
    assert "1 of 2 EVSEs" in html  # the AC filter still applies
    assert f'id="booking-detail" data-booking-uid="{booking.uid}"' in html
    week = reverse("bookings:location_week", args=[location.pk])
    close = re.search(r'href="([^"]*)" data-close-panel', html)[1]
    assert close == f"{week}?date={day.isoformat()}&amp;current=AC"


def test_a_panel_url_of_the_day_keeps_the_hours_shown(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    detail = reverse("bookings:booking_detail", args=[booking.uid])
    html = staff_client.get(detail, {"hours": "all"}).content.decode()
    assert "--hours: 24" in html and 'class="grid"' in html


def test_a_booking_made_from_the_week_answers_with_its_url_in_the_week(staff_client, site, driver):
    location, ac, _ = site
    start = tomorrow_at(location, 10)
    day = start.date().isoformat()
    page = f"http://testserver{reverse('bookings:booking_new', args=[location.pk])}"
    page += f"?date={day}&view=week&evse=HH-1"
    response = staff_client.post(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": ac.uid, "start": start.isoformat(), "duration": 60, "driver": driver.pk},
        headers={**HX, "HX-Current-URL": page},
    )
    booking = Booking.objects.get()
    detail = reverse("bookings:booking_detail", args=[booking.uid])
    assert response["HX-Push-Url"] == f"{detail}?view=week&date={day}"


def test_a_drop_in_the_repeated_hour_of_a_fall_back_night_lands_on_the_clock_sent(
    staff_client, staff_user, site
):
    """The drag sends each time with its UTC offset: 02:30 CET (the second 02:30) is one instant."""
    location, ac, _ = site  # Europe/Amsterdam
    with time_machine.travel(datetime(2027, 10, 30, 12, tzinfo=UTC), tick=True):
        staff_client.force_login(staff_user)  # a session from today has expired by then
        start = datetime(2027, 10, 31, 0, 0, tzinfo=location.zone)
        booking = BookingFactory(evse=ac, start=start)
        html = drop(
            staff_client,
            booking,
            start="2027-10-31T02:30:00+01:00",
            end="2027-10-31T03:30:00+01:00",
        ).content.decode()
    assert "moved to" in html and "02:30–03:30 (CET, UTC+1)" in html
    booking.refresh_from_db()
    assert booking.period.lower == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    assert booking.period.upper - booking.period.lower == timedelta(hours=1)


def test_no_template_comment_shows_on_the_page(staff_client, site):
    """A Django {# #} comment is one line: a longer one used to print on every staff page."""
    location, _, _ = site
    html = staff_client.get(reverse("bookings:location_day", args=[location.pk])).content.decode()
    assert "{#" not in html and "#}" not in html
    assert '<dialog id="confirm"' in html


def test_the_week_over_a_fall_back_night_shows(staff_client, site):
    """Seven local days with a 25-hour day: 169 hours, one week all the same (it used to be a
    server error, the availability engine's 7-day limit being 168 hours)."""
    location, _, _ = site  # Europe/Amsterdam
    url = reverse("bookings:location_week", args=[location.pk])
    response = staff_client.get(url, {"date": "2027-10-26"})
    assert response.status_code == 200
    html = response.content.decode()
    assert len(re.findall(r'<a class="tick day"', html)) == 7
    assert "Sun 31 Oct" in html and "Mon 1 Nov" in html
