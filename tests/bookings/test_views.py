"""The staff slot picker over HTTP: permissions, full page vs htmx partial, forms and errors,
and a bounded number of queries for the day view."""

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, BookingTransition, CanceledReason, Status
from tests.bookings.factories import (
    BookingFactory,
    BookingTokenFactory,
    DriverFactory,
    DriverTokenFactory,
    tomorrow_at,
)
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


@pytest.fixture
def site():
    """A 24/7 location with a 15-minute policy, one AC and one DC EVSE."""
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


def day_url(location, **params):
    url = reverse("bookings:location_day", args=[location.pk])
    return url, params


# --- Permissions ---


@pytest.mark.parametrize(
    "name", ["location_list", "location_day", "location_week", "booking_new", "booking_detail"]
)
def test_staff_pages_redirect_anonymous_to_login(client, site, name):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    args = {
        "location_list": [],
        "location_day": [location.pk],
        "location_week": [location.pk],
        "booking_new": [location.pk],
        "booking_detail": [booking.uid],
    }[name]
    response = client.get(reverse(f"bookings:{name}", args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_staff_pages_refuse_logged_in_non_staff(client, site):
    user = get_user_model().objects.create_user(username="driver", password="x-pass-12345")
    client.force_login(user)
    response = client.get(reverse("bookings:location_day", args=[site[0].pk]))
    assert response.status_code == 403


def test_staff_pages_send_htmx_without_session_to_login_page(client, site):
    response = client.get(
        reverse("bookings:location_day", args=[site[0].pk]),
        headers={**HX, "HX-Current-URL": "http://testserver/locations/1/?date=2026-01-01"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login") + "?next=")


def test_login_page_logs_staff_in_and_logout_logs_out(client, staff_user):
    page = client.get(reverse("login"))
    assert b'<label for="id_username">Username</label>' in page.content
    response = client.post(
        reverse("login"), {"username": "desk", "password": "desk-pass-123", "next": "/"}
    )
    assert response.status_code == 302
    assert client.get(reverse("bookings:location_list")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("bookings:location_list")).status_code == 302


def test_login_page_rejects_wrong_password(client, staff_user):
    response = client.post(reverse("login"), {"username": "desk", "password": "nope"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


def test_htmx_post_needs_csrf_token_from_body_headers(site, staff_user, driver):
    location, ac, _ = site
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    page = client.get(reverse("bookings:location_day", args=[location.pk]))
    token = page.cookies["csrftoken"].value
    assert 'hx-headers=\'{"x-csrftoken": "' in page.content.decode()
    data = {
        "evse": ac.uid,
        "start": tomorrow_at(location, 10).strftime("%Y-%m-%dT%H:%M"),
        "duration": 60,
        "driver": driver.pk,
    }
    url = reverse("bookings:booking_new", args=[location.pk])
    assert client.post(url, data, headers=HX).status_code == 403
    assert not Booking.objects.exists()
    response = client.post(url, data, headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 200
    assert Booking.objects.filter(status=Status.RESERVED).count() == 1


# --- Locations list ---


def test_stale_csrf_token_is_refused_with_a_message_and_a_marker_for_the_page_script(
    site, staff_user, driver
):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    client.get(reverse("bookings:location_day", args=[site[0].pk]))
    response = client.post(
        reverse("bookings:booking_new", args=[site[0].pk]),
        {"evse": site[1].uid, "start": "2030-01-01T10:00", "duration": 60, "driver": driver.pk},
        headers={**HX, "X-CSRFToken": "stale" * 8},
    )
    assert response.status_code == 403
    assert response["X-Refused"] == "csrf"
    assert "This form was out of date" in response.content.decode()
    assert not Booking.objects.exists()


def test_location_list_searches_name_and_city(staff_client, site):
    LocationFactory(name="Airport Deck", city="Schiphol")
    url = reverse("bookings:location_list")
    by_city = staff_client.get(url, {"q": "rotter"}).content.decode()
    assert "Harbour Hub" in by_city and "Airport Deck" not in by_city
    by_name = staff_client.get(url, {"q": "airport"}, headers=HX)
    html = by_name.content.decode()
    assert "Airport Deck" in html and "Harbour Hub" not in html
    assert "<html" not in html and 'id="results"' in html
    assert "HX-Request" in by_name["Vary"]


def test_location_list_shows_todays_free_capacity(staff_client, site):
    # Morning in Amsterdam: the rest of the day is free (late at night, the part of the current
    # slot already gone would weigh more than the test allows).
    morning = datetime.combine(date.today(), time(7), tzinfo=UTC)  # within the login's age
    with time_machine.travel(morning, tick=True):
        html = staff_client.get(reverse("bookings:location_list")).content.decode()
    assert "<html" in html
    assert "2 of 2 bookable" in html
    assert re.search(r"<strong>(9\d|100)%</strong> free", html)


# --- Day and week view ---


def test_day_view_renders_full_page_or_the_requested_partial(staff_client, site):
    location, _ac, _ = site
    url = reverse("bookings:location_day", args=[location.pk])
    full = staff_client.get(url)
    assert full.status_code == 200
    assert "HX-Request" in full["Vary"]
    html = full.content.decode()
    assert "<html" in html and 'id="view"' in html and 'id="grid"' in html
    assert 'id="panel"' in html

    view = staff_client.get(url, headers={**HX, "HX-Target": "view"}).content.decode()
    assert "<html" not in view and 'id="view"' in view and 'name="min_kw"' in view

    grid = staff_client.get(url, headers={**HX, "HX-Target": "grid"}).content.decode()
    assert grid.lstrip().startswith('<div id="grid"')
    assert 'name="min_kw"' not in grid and "Harbour Hub" not in grid
    assert 'hx-trigger="every 20s, bookings-changed from:body"' in grid


def test_day_view_history_restore_gets_the_full_page(staff_client, site):
    url = reverse("bookings:location_day", args=[site[0].pk])
    response = staff_client.get(url, headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()


def test_day_view_shows_bookings_in_the_locations_time_zone(staff_client, driver):
    location = LocationFactory(time_zone="America/New_York")
    evse = EVSEFactory(charge_point=ChargePointFactory(location=location))
    start = tomorrow_at(location, 14)
    BookingFactory(evse=evse, start=start, driver=driver)
    html = staff_client.get(
        reverse("bookings:location_day", args=[location.pk]),
        {"date": start.date().isoformat()},
    ).content.decode()
    assert "times in <strong>America/New_York</strong>" in html
    assert "14:00–15:00 · Reserved · Not sent yet" in html
    assert "Anna de Vries" in html


def test_day_view_shows_a_fulfilled_booking_as_charging_until_its_end(staff_client, site, driver):
    location, ac, _ = site
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=30)
    BookingFactory(
        evse=ac, start=start, duration=timedelta(hours=2), driver=driver, status=Status.FULFILLED
    )
    html = staff_client.get(reverse("bookings:location_day", args=[location.pk])).content.decode()
    assert html.count('class="block block-fulfilled"') == 1
    # Not by colour alone: a mark and the state in words.
    assert '<span class="who">⚡ Anna de Vries</span>' in html
    assert " · Charging / fulfilled · " in html


def test_day_view_keeps_cancelled_and_no_show_bookings_visible_under_new_ones(
    staff_client, site, driver
):
    location, ac, dc = site
    ben = DriverFactory(name="Ben Carter")
    BookingFactory(
        evse=ac, start=tomorrow_at(location, 10), driver=ben, status=Status.CANCELED,
        canceled_reason=CanceledReason.BROKEN_VEHICLE, canceled_by_role="CPO",
        canceled_at=timezone.now(),
    )  # fmt: skip
    BookingFactory(evse=dc, start=tomorrow_at(location, 9), driver=ben, status=Status.NO_SHOW)
    BookingFactory(evse=ac, start=tomorrow_at(location, 10), driver=driver)  # took the slot
    day = (timezone.now().astimezone(location.zone) + timedelta(days=1)).date()
    html = staff_client.get(
        reverse("bookings:location_day", args=[location.pk]), {"date": day.isoformat()}
    ).content.decode()
    ac_row = html[html.index(f'data-evse="{ac.uid}"') : html.index(f'data-evse="{dc.uid}"')]
    # The cancelled one is drawn first, so the new booking lies over it.
    assert ac_row.index('class="block block-canceled"') < ac_row.index(
        'class="block block-reserved"'
    )
    assert "⊘ Ben Carter" in ac_row and "· Canceled ·" in ac_row and "✓ Anna de Vries" in ac_row
    assert 'class="block block-no_show"' in html and "✗ Ben Carter" in html
    assert "· No-show ·" in html


def test_day_view_filters_rows_by_current_standard_and_power(staff_client, site):
    location, ac, dc = site
    url = reverse("bookings:location_day", args=[location.pk])

    def rows(**params):
        html = staff_client.get(url, params, headers={**HX, "HX-Target": "view"}).content
        return {uid for uid in (ac.uid, dc.uid) if f'data-evse="{uid}"'.encode() in html}

    assert rows() == {ac.uid, dc.uid}
    assert rows(current="DC") == {dc.uid}
    assert rows(current="AC") == {ac.uid}
    assert rows(standard="IEC_62196_T2") == {ac.uid}
    assert rows(min_kw=50) == {dc.uid}
    assert rows(min_kw=500) == set()


def test_day_view_invalid_filter_is_reported_not_a_500(staff_client, site):
    response = staff_client.get(
        reverse("bookings:location_day", args=[site[0].pk]), {"min_kw": "-3", "date": "31-02"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html and "Minimum power (kW)" in html and "Date" in html


def test_day_view_one_invalid_filter_keeps_the_others(staff_client, site):
    location, ac, dc = site
    response = staff_client.get(
        reverse("bookings:location_day", args=[location.pk]), {"min_kw": "-3", "current": "DC"}
    )
    html = response.content.decode()
    assert "Ensure this value is greater than or equal to 0." in html
    assert f'data-evse="{dc.uid}"' in html and f'data-evse="{ac.uid}"' not in html


def test_day_view_marks_offline_chargers_and_unbookable_evses(staff_client, site):
    location, ac, dc = site
    ac.charge_point.is_connected = False
    ac.charge_point.last_seen = datetime(2026, 3, 2, 13, 5, tzinfo=UTC)
    ac.charge_point.save()
    dc.status = "OUTOFORDER"
    dc.save()
    html = staff_client.get(reverse("bookings:location_day", args=[location.pk])).content.decode()
    assert "⚠ Charger offline" in html
    assert "⊘ Not bookable" in html and "Last reported status: Out of order" in html
    # Its last reported status is stale: not "Available", but since when it is silent.
    assert "Offline since 2 Mar 2026 14:05" in html  # Europe/Amsterdam
    assert '<span class="status status-available">' not in html


def test_day_view_free_time_links_open_the_prefilled_form(staff_client, site):
    location, ac, _ = site
    day = tomorrow_at(location, 0).date()
    BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    url = reverse("bookings:location_day", args=[location.pk])
    html = staff_client.get(url, {"date": day.isoformat(), "hours": "all"}).content.decode()
    # Free 00:00-10:00 and 11:00-24:00 on the booked EVSE, each a link to the form.
    assert "Book 1A, free 00:00 to 10:00" in html
    assert "Book 1A, free 11:00 to 00:00" in html
    assert "&amp;evse=HH-1&amp;start=" in html  # after the view the panel keeps (date, hours)
    assert "--hours: 24" in html


def test_day_view_shows_the_daytime_of_a_24_7_site_widened_to_its_bookings(staff_client, site):
    location, ac, _ = site
    day = tomorrow_at(location, 0).date()
    BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    url = reverse("bookings:location_day", args=[location.pk])
    html = staff_client.get(url, {"date": day.isoformat()}).content.decode()
    # Open around the clock: 06:00-22:00 first, the free time clipped to it.
    assert "--hours: 16" in html and ">06:00–22:00</a>" in html
    assert "Book 1A, free 06:00 to 10:00" in html and "Book 1A, free 11:00 to 22:00" in html
    assert 'href="' + url + "?date=" + day.isoformat() + '&amp;hours=all"' in html
    # A booking in the night widens the shown hours to it, on whole hours.
    BookingFactory(evse=ac, start=tomorrow_at(location, 4, 30))
    html = staff_client.get(url, {"date": day.isoformat()}).content.decode()
    assert "--hours: 18" in html and ">04:00–22:00</a>" in html


def test_day_view_unknown_location_is_404(staff_client):
    assert staff_client.get(reverse("bookings:location_day", args=[999999])).status_code == 404


def test_week_view_shows_seven_days_with_links_to_each_day(staff_client, site):
    location, ac, _ = site
    start = tomorrow_at(location, 9)
    BookingFactory(evse=ac, start=start + timedelta(days=2))
    response = staff_client.get(
        reverse("bookings:location_week", args=[location.pk]),
        {"date": start.date().isoformat()},
    )
    html = response.content.decode()
    assert html.count('class="tick day"') == 7
    assert html.count('class="block block-reserved') == 1
    assert f"date={(start + timedelta(days=6)).date().isoformat()}" in html
    # Each day link's accessible name starts with its visible text (axe's
    # label-content-name-mismatch): no aria-label that replaces it.
    ticks = re.findall(r'<a class="tick day"[^>]*>(.*?)</a>', html)
    assert len(ticks) == 7
    for tick in ticks:
        visible, hidden = re.fullmatch(
            r'([^<]+)<span class="sr-only">([^<]+)</span>', tick
        ).groups()
        assert re.fullmatch(r"\w{3} \d{1,2} \w{3}", visible) and "open the day" in hidden
    assert 'aria-label="Open the day view' not in html


# session, user, location (with its policy, regular hours and exceptional periods), EVSEs, their
# connectors, the day's blocked time and running sessions (for free time), its bookings (for
# blocks), the grid's version (for polls) and where its notices start (the newest audit row, the
# EVSEs and chargers down): nothing per EVSE or per booking.
DAY_VIEW_QUERIES = 13


def test_day_view_runs_a_fixed_number_of_queries_whatever_the_evse_count(
    staff_client, site, django_assert_num_queries
):
    location, ac, _ = site
    url = reverse("bookings:location_day", args=[location.pk])
    BookingFactory(evse=ac, start=timezone.now() + timedelta(hours=1), driver=DriverFactory())
    with django_assert_num_queries(DAY_VIEW_QUERIES):
        assert staff_client.get(url).status_code == 200
    for n in range(20):
        evse = EVSEFactory(
            charge_point=ChargePointFactory(location=location), physical_reference=f"X{n}"
        )
        BookingFactory(evse=evse, start=timezone.now() + timedelta(hours=1), driver=DriverFactory())
    with django_assert_num_queries(DAY_VIEW_QUERIES):
        html = staff_client.get(url).content.decode()
    assert html.count('class="row') == 22
    with django_assert_num_queries(DAY_VIEW_QUERIES):
        staff_client.get(reverse("bookings:location_week", args=[location.pk]))


def _grid_version(html: str) -> str:
    return re.search(r'"X-Grid-Version": "([0-9a-f]+)"', html).group(1)


def test_grid_poll_answers_no_content_until_something_shown_changes(
    staff_client, site, django_assert_max_num_queries
):
    # The version changes every minute (the now line): the whole test runs inside one minute.
    minute = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(minute, tick=True):
        location, ac, dc = site
        # Tomorrow's grid: a booking placed on it is on it whatever the time of day now.
        tomorrow = timezone.now().astimezone(location.zone).date() + timedelta(days=1)
        url = f"{reverse('bookings:location_day', args=[location.pk])}?date={tomorrow}"
        version = _grid_version(staff_client.get(url).content.decode())
        poll = {**HX, "HX-Target": "grid", "HX-Trigger": "grid", "X-Grid-Version": version}
        # session, user, location (policy, hours, periods), version
        # session, user, location with its hours (3), the day's bookings, running sessions.
        with django_assert_max_num_queries(7):
            response = staff_client.get(url, headers=poll)
        assert response.status_code == 204 and response.content == b""
        # A booking made elsewhere (an eMSP, another desk) changes the version: the grid comes back.
        BookingFactory(evse=dc, start=tomorrow_at(location, 12), driver=DriverFactory())
        response = staff_client.get(url, headers=poll)
        assert response.status_code == 200
        html = response.content.decode()
        assert html.count('class="block block-reserved') == 1 and _grid_version(html) != version
        poll["X-Grid-Version"] = _grid_version(html)
        assert staff_client.get(url, headers=poll).status_code == 204
        # So does a charger's status report.
        ac.status = "CHARGING"
        ac.save()
        assert staff_client.get(url, headers=poll).status_code == 200
        # A full page (a link opened in a new tab) never answers 204.
        full_page = staff_client.get(url, headers={"X-Grid-Version": poll["X-Grid-Version"]})
        assert full_page.status_code == 200


# --- Booking form ---


def test_booking_form_prefills_evse_start_and_presets(staff_client, site):
    location, _, dc = site
    start = tomorrow_at(location, 9, 30)
    response = staff_client.get(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": dc.uid, "start": start.astimezone(UTC).isoformat()},
        headers=HX,
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="booking-form"' in html
    assert f'<option value="{dc.uid}" selected>' in html
    assert f'value="{start:%Y-%m-%dT%H:%M}"' in html
    # Presets stay inside the policy's 30-240 minute limits.
    for label in ("30 min", "1 h", "4 h"):
        assert label in html
    assert "15 min" not in html and "6 h" not in html


def test_booking_form_as_plain_request_is_the_day_page_with_the_form_open(staff_client, site):
    location, ac, _ = site
    start = tomorrow_at(location, 9)
    html = staff_client.get(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": ac.uid, "start": start.isoformat()},
    ).content.decode()
    assert "<html" in html and 'id="grid"' in html and 'id="booking-form"' in html
    assert start.strftime("%A %-d %B %Y") in html


@pytest.mark.parametrize("q", ["anna@", "de vries", "04A1B2"])
def test_booking_form_finds_drivers_by_email_name_or_token(staff_client, site, driver, q):
    DriverFactory(name="Someone Else", email="else@example.com")
    response = staff_client.get(
        reverse("bookings:booking_new", args=[site[0].pk]),
        {"q": q},
        headers={**HX, "HX-Target": "driver-results"},
    )
    html = response.content.decode()
    assert 'id="booking-form"' not in html
    assert f'name="driver" value="{driver.pk}"' in html and "Someone Else" not in html
    assert "04A1B2C3D4E5F6" in html


def test_booking_form_search_without_match_says_so(staff_client, site):
    html = staff_client.get(
        reverse("bookings:booking_new", args=[site[0].pk]),
        {"q": "zzz"},
        headers={**HX, "HX-Target": "driver-results"},
    ).content.decode()
    assert "No driver matches “zzz”." in html


def _book(client, location, evse, driver, start, *, headers=HX, duration=60):
    return client.post(
        reverse("bookings:booking_new", args=[location.pk]),
        {
            "evse": evse.uid,
            "start": start.strftime("%Y-%m-%dT%H:%M"),
            "duration": duration,
            "driver": driver.pk if driver else "",
            "q": "anna",
        },
        headers=headers,
    )


def test_booking_create_books_and_answers_with_the_detail_partial(
    staff_client, staff_user, site, driver
):
    location, ac, _ = site
    start = tomorrow_at(location, 10)
    response = _book(staff_client, location, ac, driver, start)
    assert response.status_code == 200
    assert response["HX-Trigger"] == '{"bookings-changed": {}}'
    html = response.content.decode()
    assert "<html" not in html and "Booked." in html and "Anna de Vries" in html
    booking = Booking.objects.get()
    assert booking.status == Status.RESERVED
    assert booking.period.lower == start and booking.period.upper == start + timedelta(hours=1)
    assert booking.created_by == staff_user and booking.driver == driver
    assert [t.uid for t in booking.tokens.all()] == ["04A1B2C3D4E5F6"]
    assert booking.transitions.get().actor_label == "desk"


def test_booking_create_plain_post_redirects_to_the_booking(staff_client, site, driver):
    location, ac, _ = site
    response = _book(staff_client, location, ac, driver, tomorrow_at(location, 10), headers={})
    booking = Booking.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("bookings:booking_detail", args=[booking.uid])


def test_booking_create_on_a_taken_slot_says_so_and_writes_nothing(staff_client, site, driver):
    location, ac, _ = site
    start = tomorrow_at(location, 10)
    BookingFactory(evse=ac, start=start - timedelta(minutes=30))  # 09:30-10:30, by someone else
    response = _book(staff_client, location, ac, driver, start)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html and "is already booked around" in html
    assert response["HX-Trigger"] == '{"bookings-changed": {}}'  # the row reloads
    assert Booking.objects.count() == 1
    assert not Booking.objects.filter(driver=driver).exists()


def test_booking_create_form_errors_are_shown_and_nothing_is_written(staff_client, site):
    location, _ac, _ = site
    response = staff_client.post(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": "NOPE", "start": "tomorrow", "duration": 7},
        headers=HX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice. NOPE is not one of the available choices." in html
    assert "Enter a date and time." in html
    assert "Choose a driver: search by email, name or token uid." in html
    assert not Booking.objects.exists()


def test_booking_create_refuses_a_past_slot_with_the_engines_message(staff_client, site, driver):
    location, ac, _ = site
    start = (
        (timezone.now() - timedelta(days=1))
        .astimezone(location.zone)
        .replace(minute=0, second=0, microsecond=0)
    )
    html = _book(staff_client, location, ac, driver, start).content.decode()
    assert "is in the past." in html
    assert not Booking.objects.exists()


def test_booking_create_refuses_a_nonexistent_local_time(staff_client, site, driver):
    location, ac, _ = site
    # 02:30 on the spring-forward night does not exist in Europe/Amsterdam.
    response = staff_client.post(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": ac.uid, "start": "2027-03-28T02:30", "duration": 60, "driver": driver.pk},
        headers=HX,
    )
    assert "02:30 does not exist on 28 Mar 2027 in Europe/Amsterdam" in response.content.decode()
    assert not Booking.objects.exists()


@pytest.fixture
def before_dst_changes():
    with time_machine.travel(datetime(2027, 3, 1, 12, tzinfo=UTC), tick=True):
        yield


def _dst_site(horizon_days: int = 365):
    location = LocationFactory(name="Polder Hub", time_zone="Europe/Amsterdam")
    BookingPolicyFactory(
        location=location,
        min_duration_minutes=30,
        max_duration_minutes=240,
        horizon_days=horizon_days,
    )
    cp = ChargePointFactory(location=location, identity="PH-CP01")
    return location, EVSEFactory(charge_point=cp, uid="PH-1", physical_reference="1")


@pytest.mark.parametrize(
    ("start", "minutes", "lower_utc", "upper_utc"),
    [
        # Spring forward: 2 h from 01:30 CET ends at 04:30 CEST, two real hours later.
        ("2027-03-28T01:30", 120, datetime(2027, 3, 28, 0, 30), datetime(2027, 3, 28, 2, 30)),
        # Fall back: 3 h from 01:00 CEST ends at 03:00 CET, three real hours later.
        ("2027-10-31T01:00", 180, datetime(2027, 10, 30, 23), datetime(2027, 10, 31, 2)),
        # The 4 h preset (the policy's maximum) is allowed across the change.
        ("2027-10-31T00:00", 240, datetime(2027, 10, 30, 22), datetime(2027, 10, 31, 2)),
    ],
)
def test_booking_create_duration_is_elapsed_time_on_dst_days(
    before_dst_changes, staff_client, driver, start, minutes, lower_utc, upper_utc
):
    location, evse = _dst_site()
    response = staff_client.post(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": evse.uid, "start": start, "duration": minutes, "driver": driver.pk},
        headers=HX,
    )
    assert "Booked." in response.content.decode()
    booking = Booking.objects.get()
    assert booking.period.lower == lower_utc.replace(tzinfo=UTC)
    assert booking.period.upper == upper_utc.replace(tzinfo=UTC)
    assert booking.period.upper - booking.period.lower == timedelta(minutes=minutes)


def test_booking_create_in_the_repeated_hour_asks_which_clock_then_books_it(
    before_dst_changes, staff_client, driver
):
    location, evse = _dst_site()
    url = reverse("bookings:booking_new", args=[location.pk])
    data = {"evse": evse.uid, "start": "2027-10-31T02:30", "duration": 60, "driver": driver.pk}
    html = staff_client.post(url, data, headers=HX).content.decode()
    assert "02:30 happens twice on 31 Oct 2027 in Europe/Amsterdam" in html
    assert 'name="start_offset"' in html
    assert '<option value="+02:00">CEST, UTC+2</option>' in html
    assert '<option value="+01:00">CET, UTC+1</option>' in html
    assert not Booking.objects.exists()

    html = staff_client.post(url, {**data, "start_offset": "+01:00"}, headers=HX).content.decode()
    booking = Booking.objects.get()
    assert booking.period.lower == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert "Sun 31 Oct 2027, 02:30–03:30 (CET, UTC+1)" in html

    staff_client.post(url, {**data, "start_offset": "+02:00"}, headers=HX)
    first = Booking.objects.exclude(pk=booking.pk).get()
    assert first.period.lower == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST


def test_booking_create_from_a_free_time_link_in_the_repeated_hour_keeps_the_instant(
    before_dst_changes, staff_client, driver
):
    location, evse = _dst_site()
    url = reverse("bookings:booking_new", args=[location.pk])
    html = staff_client.get(url, {"evse": evse.uid, "start": "2027-10-31T01:30:00Z"}).content
    html = html.decode()
    assert 'value="2027-10-31T02:30"' in html
    assert '<option value="+01:00" selected>CET, UTC+1</option>' in html


def test_booking_change_extends_shortens_and_moves_in_the_repeated_hour(
    before_dst_changes, staff_client, driver
):
    _location, evse = _dst_site()
    other = EVSEFactory(charge_point=evse.charge_point, uid="PH-2", physical_reference="2")
    start = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 02:30 CET, the second 02:30
    booking = BookingFactory(evse=evse, start=start, duration=timedelta(hours=1), driver=driver)
    detail = staff_client.get(reverse("bookings:booking_detail", args=[booking.uid]))
    html = detail.content.decode()
    assert "Sun 31 Oct 2027, 02:30–03:30 (CET, UTC+1)" in html
    # The resize buttons carry the instant, offset included.
    assert 'name="start" value="2027-10-31T02:30:00+01:00"' in html
    url = reverse("bookings:booking_change", args=[booking.uid])

    def change(**data):
        base = {"evse": evse.uid, "start": "2027-10-31T02:30:00+01:00", "duration": 60}
        return staff_client.post(url, {**base, **data}, headers=HX).content.decode()

    assert "Changed." in change(duration=75)
    booking.refresh_from_db()
    assert (booking.period.lower, booking.period.upper - booking.period.lower) == (
        start,
        timedelta(minutes=75),
    )
    assert "Changed." in change(duration=45)
    booking.refresh_from_db()
    assert booking.period.upper - booking.period.lower == timedelta(minutes=45)
    # Move to the first 02:15 (CEST) on the other EVSE, typed as a wall time with its clock.
    html = change(evse=other.uid, start="2027-10-31T02:15", start_offset="+02:00")
    assert "Changed." in html
    booking.refresh_from_db()
    assert booking.evse == other
    assert booking.period.lower == datetime(2027, 10, 31, 0, 15, tzinfo=UTC)
    assert "02:15–03:15 (CEST, UTC+2)" not in html  # it ends on the other clock
    assert "02:15 (CEST, UTC+2) – 02:15 (CET, UTC+1)" in html
    # A refused resize shows the instant it sent as a wall time with its clock chosen.
    html = change(evse=other.uid, start="2027-10-31T02:15:00+02:00", duration=300)
    assert 'name="start" value="2027-10-31T02:15"' in html
    assert '<option value="+02:00" selected>CEST, UTC+2</option>' in html


# --- Booking detail and actions ---


def test_booking_detail_shows_period_driver_tokens_states_and_audit(staff_client, site, driver):
    location, ac, _ = site
    _book(staff_client, location, ac, driver, tomorrow_at(location, 10))
    booking = Booking.objects.get()
    url = reverse("bookings:booking_detail", args=[booking.uid])
    html = staff_client.get(url, headers=HX).content.decode()
    assert "<html" not in html
    for text in ("10:00–11:00", "Anna de Vries", "RFID 04A1B2C3D4E5F6", "Reserved",
                 "Not sent yet", "Created: reserved", "by desk"):  # fmt: skip
        assert text in html
    full = staff_client.get(url).content.decode()
    assert "<html" in full and 'id="grid"' in full and 'id="booking-detail"' in full


def test_booking_detail_unknown_booking_is_404(staff_client):
    url = reverse("bookings:booking_detail", args=["00000000-0000-0000-0000-000000000000"])
    assert staff_client.get(url).status_code == 404


def test_booking_change_moves_it_to_another_evse_and_time(staff_client, site, driver):
    location, ac, dc = site
    _book(staff_client, location, ac, driver, tomorrow_at(location, 10))
    booking = Booking.objects.get()
    new_start = tomorrow_at(location, 13)
    response = staff_client.post(
        reverse("bookings:booking_change", args=[booking.uid]),
        {"evse": dc.uid, "start": new_start.strftime("%Y-%m-%dT%H:%M"), "duration": 90},
        headers=HX,
    )
    assert "Changed." in response.content.decode()
    assert response["HX-Trigger"] == '{"bookings-changed": {}}'
    booking.refresh_from_db()
    assert booking.evse == dc
    assert (booking.period.lower, booking.period.upper) == (
        new_start,
        new_start + timedelta(minutes=90),
    )
    assert booking.transitions.filter(event=BookingTransition.Event.CHANGED).count() == 1


def test_booking_change_into_a_taken_slot_is_refused_and_keeps_the_booking(
    staff_client, site, driver
):
    location, ac, dc = site
    _book(staff_client, location, ac, driver, tomorrow_at(location, 10))
    booking = Booking.objects.get(driver=driver)
    BookingFactory(evse=dc, start=tomorrow_at(location, 10))
    response = staff_client.post(
        reverse("bookings:booking_change", args=[booking.uid]),
        {"evse": dc.uid, "start": tomorrow_at(location, 10).strftime("%Y-%m-%dT%H:%M"),
         "duration": 60},
        headers=HX,
    )  # fmt: skip
    assert "is already booked around" in response.content.decode()
    booking.refresh_from_db()
    assert booking.evse == ac and booking.period.lower == tomorrow_at(location, 10)


def test_booking_change_past_the_deadline_needs_an_override_reason(staff_client, site, driver):
    location, ac, _ = site
    soon = timezone.now().astimezone(location.zone).replace(second=0, microsecond=0)
    start = soon + timedelta(minutes=15 - soon.minute % 15 + 15 * 0)
    booking = BookingFactory(evse=ac, start=start, driver=driver)  # change_until 15 min
    data = {"evse": ac.uid, "start": start.strftime("%Y-%m-%dT%H:%M"), "duration": 90}
    url = reverse("bookings:booking_change", args=[booking.uid])
    refused = staff_client.post(url, data, headers=HX).content.decode()
    assert "It is too late to change this booking" in refused
    assert "Give a reason to override." in refused
    booking.refresh_from_db()
    assert booking.period.upper == start + timedelta(hours=1)
    done = staff_client.post(url, {**data, "override_reason": "driver called"}, headers=HX)
    assert "Changed." in done.content.decode()
    booking.refresh_from_db()
    assert booking.period.upper == start + timedelta(minutes=90)
    assert booking.transitions.get(event="CHANGED").reason == "driver called"


def test_booking_change_plain_get_goes_to_the_booking(staff_client, site):
    booking = BookingFactory(evse=site[1], start=tomorrow_at(site[0], 10))
    response = staff_client.get(reverse("bookings:booking_change", args=[booking.uid]))
    assert response["Location"] == reverse("bookings:booking_detail", args=[booking.uid])


def test_booking_cancel_with_reason_frees_the_slot(staff_client, site, driver):
    location, ac, _ = site
    _book(staff_client, location, ac, driver, tomorrow_at(location, 10))
    booking = Booking.objects.get()
    response = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]),
        {"reason": CanceledReason.BROKEN_VEHICLE, "note": "flat tyre"},
        headers=HX,
    )
    html = response.content.decode()
    assert "Canceled." in html and "Broken vehicle" in html and "flat tyre" in html
    assert "Cancel booking" not in html  # no actions left on a final booking
    booking.refresh_from_db()
    assert booking.status == Status.CANCELED
    assert booking.canceled_reason == CanceledReason.BROKEN_VEHICLE
    # The slot is free again: the same time can be booked.
    assert _book(staff_client, location, ac, driver, tomorrow_at(location, 10)).status_code == 200
    assert Booking.objects.filter(status=Status.RESERVED).count() == 1


def test_booking_cancel_of_a_final_booking_is_refused_with_a_message(staff_client, site):
    booking = BookingFactory(
        evse=site[1], start=tomorrow_at(site[0], 10), status=Status.CANCELED,
        canceled_reason=CanceledReason.UNKNOWN, canceled_by_role="CPO",
        canceled_at=timezone.now(),
    )  # fmt: skip
    response = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]),
        {"reason": CanceledReason.UNKNOWN},
        headers=HX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    # The form is gone on a final booking: the refusal shows at the top, focused.
    alert = re.search(
        r'<div class="alert error" role="alert" tabindex="-1" autofocus>(.*?)</div>', html, re.S
    )
    assert alert and "A canceled booking cannot become canceled." in alert.group(1)
    assert html.index(alert.group(0)) < html.index("<dl")
    assert Booking.objects.get().transitions.count() == 0


def test_booking_cancel_refusal_is_focused_and_cancel_asks_first(staff_client, site):
    location, ac, _ = site
    booking = BookingFactory(
        evse=ac, start=tomorrow_at(location, 1), terms={"cancel_until_minutes": 48 * 60}
    )
    url = reverse("bookings:booking_detail", args=[booking.uid])
    panel = staff_client.get(url, headers=HX).content.decode()
    assert 'hx-confirm="Its slot is released and the driver is told.' in panel
    assert "data-confirm-dialog" in panel  # the page's own dialog asks (staff.js)
    response = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]), {"reason": "UNKNOWN"}, headers=HX
    )
    html = response.content.decode()
    assert re.search(r'role="alert" tabindex="-1" autofocus><p>It is too late to cancel', html)
    assert "Give a reason to override." in html
    assert '<h2 tabindex="-1" autofocus' not in html
    assert Booking.objects.get().status == Status.RESERVED


def test_booking_cancel_and_notes_over_length_are_refused_with_a_message(
    staff_client, site, driver
):
    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    response = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]),
        {"reason": "UNKNOWN", "note": "x" * 201},
        headers=HX,
    )
    assert "Ensure this value has at most 200 characters (it has 201)." in response.content.decode()
    assert Booking.objects.get().status == Status.RESERVED
    response = staff_client.post(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": ac.uid, "start": tomorrow_at(location, 12).strftime("%Y-%m-%dT%H:%M"),
         "duration": 60, "driver": driver.pk, "notes": "n" * 501},
        headers=HX,
    )  # fmt: skip
    assert "Ensure this value has at most 500 characters (it has 501)." in response.content.decode()
    assert Booking.objects.count() == 1


def test_booking_history_says_what_changed_with_labels(staff_client, site, driver):
    location, ac, dc = site
    _book(staff_client, location, ac, driver, tomorrow_at(location, 10))
    booking = Booking.objects.get()
    staff_client.post(
        reverse("bookings:booking_change", args=[booking.uid]),
        {"evse": dc.uid, "start": tomorrow_at(location, 13).strftime("%Y-%m-%dT%H:%M"),
         "duration": 90},
        headers=HX,
    )  # fmt: skip
    html = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]),
        {"reason": CanceledReason.BROKEN_CHARGER},
        headers=HX,
    ).content.decode()
    assert "Time: " in html and "10:00–11:00 (" in html and "→" in html and "13:00–14:30 (" in html
    assert f"EVSE: {ac} → {dc}" in html
    assert "Duration: 1 h → 1 h 30 min" in html
    assert "Broken charger" in html and "BROKEN_CHARGER" not in html


def test_booking_cancel_plain_post_redirects_to_the_booking(staff_client, site):
    booking = BookingFactory(evse=site[1], start=tomorrow_at(site[0], 10))
    response = staff_client.post(
        reverse("bookings:booking_cancel", args=[booking.uid]), {"reason": "UNKNOWN"}
    )
    assert response.status_code == 302
    assert Booking.objects.get().status == Status.CANCELED


# --- Extreme dates ---


@pytest.mark.parametrize("name", ["location_day", "location_week"])
@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31", "3000-01-01"])
def test_day_and_week_views_refuse_dates_out_of_range_with_a_message(staff_client, site, name, day):
    location, ac, _ = site
    for headers in ({}, HX):
        response = staff_client.get(
            reverse(f"bookings:{name}", args=[location.pk]),
            {"date": day, "current": "DC"},
            headers=headers,
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert "Choose a date between 01 Jan 2000 and 31 Dec 2999." in html
        assert "DC" in html and ac.uid not in html  # the valid filter still applies


@pytest.mark.parametrize(
    "start", ["0001-01-01T00:30", "9999-12-31T23:30", "9999-12-31T23:30:00-05:00", "20000-01-01"]
)
def test_booking_form_and_change_refuse_starts_out_of_range_with_a_message(
    staff_client, site, driver, start
):
    location, ac, _ = site
    response = staff_client.post(
        reverse("bookings:booking_new", args=[location.pk]),
        {"evse": ac.uid, "start": start, "duration": 240, "driver": driver.pk},
        headers=HX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose a date between" in html or "Enter a date and time." in html
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10))
    response = staff_client.post(
        reverse("bookings:booking_change", args=[booking.uid]),
        {"evse": ac.uid, "start": start, "duration": 60},
        headers=HX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose a date between" in html or "Enter a date and time." in html
    # A link with such a start opens an empty form, not a 500.
    response = staff_client.get(
        reverse("bookings:booking_new", args=[location.pk]), {"evse": ac.uid, "start": start}
    )
    assert response.status_code == 200
    assert not Booking.objects.exclude(pk=booking.pk).exists()


# --- Today's arrivals and departures ---


def midday(location) -> datetime:
    """Noon today on the location's clock."""
    today = timezone.now().astimezone(location.zone).date()
    return datetime.combine(today, time(12), tzinfo=location.zone)


def test_arrivals_list_by_time_with_flags_check_in_and_no_show(staff_client, site, driver):
    # At midday on the location's clock: the bookings placed minutes around "now" stay on
    # today's list whatever the time the test runs (around midnight they fell on another day).
    with time_machine.travel(midday(site[0]), tick=True):
        _test_arrivals_list_by_time_with_flags_check_in_and_no_show(staff_client, site, driver)


def _test_arrivals_list_by_time_with_flags_check_in_and_no_show(staff_client, site, driver):
    location, ac, dc = site
    now = timezone.now()
    driver.license_plate = "GX-123-B"
    driver.save()
    late = BookingFactory(
        evse=ac, start=now.replace(second=0, microsecond=0) - timedelta(minutes=20),
        duration=timedelta(hours=1), driver=driver,
    )  # fmt: skip
    ending = BookingFactory(
        evse=dc, start=now.replace(second=0, microsecond=0) - timedelta(minutes=55),
        duration=timedelta(hours=1), driver=DriverFactory(name="Ben Carter"),
        status=Status.FULFILLED,
    )  # fmt: skip
    url = reverse("bookings:arrivals", args=[location.pk])
    html = staff_client.get(url).content.decode()
    expected = ["Arrivals and departures", "Anna de Vries", "GX-123-B", "◷ Late", "Ben Carter",
                "Ends in", "Driver arrived", "No-show", "Arrives", "Leaves"]  # fmt: skip
    for text in expected:
        assert text in html, text
    # Check-in through the domain service: the list answers with its new state.
    response = staff_client.post(reverse("bookings:booking_check_in", args=[late.uid]), headers=HX)
    html = response.content.decode()
    assert response["HX-Trigger"] == '{"bookings-changed": {}}'
    assert "Anna de Vries: checked in." in html and "✓ Arrived" in html
    late.refresh_from_db()
    assert late.checked_in_at is not None
    assert late.transitions.filter(event="CHECK_IN").count() == 1
    # No-show through the domain service.
    html = staff_client.post(
        reverse("bookings:booking_no_show", args=[late.uid]), headers=HX
    ).content.decode()
    assert "Anna de Vries: marked as a no-show." in html
    late.refresh_from_db()
    assert late.status == Status.NO_SHOW
    # A refusal is shown, not a 500: the fulfilled booking cannot be a no-show.
    response = staff_client.post(reverse("bookings:booking_no_show", args=[ending.uid]), headers=HX)
    assert response.status_code == 200
    assert "A fulfilled booking cannot become no-show." in response.content.decode()


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "31-02"])
def test_arrivals_list_refuses_a_bad_date_with_a_message(staff_client, site, day):
    url = reverse("bookings:arrivals", args=[site[0].pk])
    response = staff_client.get(url, {"date": day})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert">Date: ' in html and "Showing " in html


def test_arrivals_list_queries_do_not_grow_with_bookings(
    staff_client, site, django_assert_max_num_queries
):
    location, ac, dc = site
    url = reverse("bookings:arrivals", args=[location.pk])
    for hour in (1, 3, 5, 7, 9, 11):
        BookingFactory(evse=ac, start=tomorrow_at(location, hour), driver=DriverFactory())
        BookingFactory(evse=dc, start=tomorrow_at(location, hour), driver=DriverFactory())
    day = (timezone.now().astimezone(location.zone) + timedelta(days=1)).date().isoformat()
    # session, user, location with its hours (3), the day's bookings, running sessions.
    with django_assert_max_num_queries(7):
        html = staff_client.get(url, {"date": day}).content.decode()
    assert html.count('class="entry entry-arrives') == 12


# --- One search box ---


@pytest.mark.parametrize(
    "q", ["gx123b", "GX 123 B", "+31 6 1234", "0612", "anna@", "De Vries", "04a1b2", "REF-77"]
)
def test_search_finds_bookings_by_plate_phone_reference_name_email_or_token(
    staff_client, site, driver, q
):
    location, ac, _ = site
    driver.license_plate, driver.phone = "GX-123-B", "+31 6 12345678"
    driver.save()
    booking = BookingFactory(
        evse=ac, start=tomorrow_at(location, 10), driver=driver, authorization_reference="REF-77"
    )
    BookingTokenFactory(booking=booking, uid="04A1B2C3D4E5F6")
    if q == "0612":
        driver.phone = "06-12 34 56 78"
        driver.save()
    BookingFactory(evse=ac, start=tomorrow_at(location, 14), driver=DriverFactory(name="Ben"))
    html = staff_client.get(reverse("bookings:search"), {"q": q}).content.decode()
    assert html.count(reverse("bookings:booking_detail", args=[booking.uid])) == 1
    assert "Ben" not in html.split('id="search-results"')[1]
    # Where and when: the location, the EVSE and the time with its zone.
    assert location.name in html and "10:00–11:00 (CE" in html


def test_search_box_is_on_every_staff_page_and_short_queries_ask_for_more(staff_client, site):
    page = staff_client.get(reverse("bookings:location_day", args=[site[0].pk])).content.decode()
    assert 'role="search"' in page and f'action="{reverse("bookings:search")}"' in page
    html = staff_client.get(reverse("bookings:search"), {"q": "a"}).content.decode()
    assert "Type at least 2 characters." in html


def test_search_runs_a_fixed_number_of_queries(
    staff_client, site, driver, django_assert_max_num_queries
):
    location, ac, dc = site
    for hour in range(1, 12, 2):
        BookingFactory(evse=ac, start=tomorrow_at(location, hour), driver=driver)
        BookingFactory(evse=dc, start=tomorrow_at(location, hour), driver=driver)
    with django_assert_max_num_queries(4):  # session, user, drivers, bookings
        html = staff_client.get(reverse("bookings:search"), {"q": "anna"}).content.decode()
    assert html.count("Anna de Vries") >= 12


def test_day_view_shows_who_is_charging_now_with_the_energy_so_far(staff_client, site):
    from chargers.models import ChargingSession

    location, ac, dc = site
    started = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=40)
    ChargingSession.objects.create(
        charge_point=ac.charge_point, evse=ac, transaction_id="T-LIVE", id_tag="04AA",
        started_at=started, meter_start_wh=5_000, meter_last_wh=17_320,
        meter_last_at=timezone.now(),
    )  # fmt: skip
    ChargingSession.objects.create(
        charge_point=dc.charge_point, evse=dc, transaction_id="T-NEW", id_tag="04BB",
        started_at=started,
    )  # fmt: skip
    html = staff_client.get(reverse("bookings:location_day", args=[location.pk])).content.decode()
    since = started.astimezone(location.zone).strftime("%H:%M")
    assert f"⚡ Charging since {since} · 12.3 kWh" in html  # 12,320 Wh
    assert f"⚡ Charging since {since}</span>" in html  # no meter value yet: no energy


def test_booking_panel_shows_the_session_that_redeemed_it(staff_client, site):
    from chargers.models import ChargingSession

    location, ac, _ = site
    booking = BookingFactory(evse=ac, start=tomorrow_at(location, 10), status=Status.FULFILLED)
    ChargingSession.objects.create(
        charge_point=ac.charge_point, evse=ac, transaction_id="T-DONE", id_tag="04AA",
        booking_id=booking.pk, started_at=booking.period.lower,
        stopped_at=booking.period.lower + timedelta(minutes=50),
        meter_start_wh=1_000, meter_stop_wh=23_500,
    )  # fmt: skip
    html = staff_client.get(reverse("bookings:booking_detail", args=[booking.uid])).content.decode()
    assert "<dt>Charging</dt>" in html and "22.50 kWh" in html


def test_a_page_while_the_database_is_away_is_a_503_that_retries(staff_client, monkeypatch):
    from django.db import OperationalError

    def away(**kwargs):  # fault injection: the connection was cut mid-request
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("bookings.views.location_list_for_staff", away)
    response = staff_client.get(reverse("bookings:location_list"))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    html = response.content.decode()
    assert "Back in a moment" in html and 'http-equiv="refresh"' in html


# --- A charger out of order ---


def test_charger_out_of_order_shows_its_bookings_then_moves_or_cancels_them(staff_client, site):
    # In the morning (UTC): the rest of the day has room to move a booking to.
    with time_machine.travel(datetime.combine(date.today(), time(7), tzinfo=UTC), tick=True):
        _charger_out_of_order(staff_client, site)


def _charger_out_of_order(staff_client, site):
    location, ac, dc = site
    spare = EVSEFactory(charge_point=ChargePointFactory(location=location, identity="HH-CP02"),
                        uid="HH-3")  # fmt: skip
    now = timezone.now()
    start = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    moved = BookingFactory(evse=ac, start=start, duration=timedelta(minutes=30))
    cancelled = BookingFactory(evse=dc, start=start, duration=timedelta(minutes=30))
    url = reverse("bookings:out_of_order", args=[location.pk])

    page = staff_client.get(url).content.decode()
    assert "HH-CP01" in page and "HH-CP02" in page
    cp = ac.charge_point
    preview = staff_client.get(url, {"charge_point": cp.pk, "days": 1}).content.decode()
    assert "HH-CP01: 2 bookings for the rest of today" in preview
    assert "Move or cancel these bookings" in preview

    refused = staff_client.post(url, {"charge_point": cp.pk, "days": 1, "action": "move",
                                      "reason": ""})  # fmt: skip
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    assert Booking.objects.get(pk=moved.pk).evse_id == ac.pk

    done = staff_client.post(url, {"charge_point": cp.pk, "days": 1, "action": "move",
                                   "reason": "Display broken"}).content.decode()  # fmt: skip
    assert "1 moved, 1 cancelled" in done
    assert "Moved from HH-1 to <strong>HH-3</strong>" in done
    assert Booking.objects.get(pk=moved.pk).evse_id == spare.pk
    assert Booking.objects.get(pk=cancelled.pk).status == Status.CANCELED  # no other DC EVSE


# --- Week cells, the New booking link and the shift sheet (issue 15) ---


def test_week_view_lists_each_days_bookings_as_chips_with_one_free_link_a_day(staff_client, site):
    location, ac, _ = site
    start = tomorrow_at(location, 23)  # across midnight: on both days
    BookingFactory(
        evse=ac, start=start, duration=timedelta(hours=2), driver=DriverFactory(name="Nina")
    )
    html = staff_client.get(
        reverse("bookings:location_week", args=[location.pk]), {"date": start.date().isoformat()}
    ).content.decode()
    row = html.split('data-evse="HH-1"')[1].split('data-evse="HH-2"')[0]
    cells = row.split('<div class="cell">')[1:]
    assert len(cells) == 7
    assert "✓ Nina" in cells[0] and "23:00–01:00" in cells[0]
    assert "✓ Nina" in cells[1] and "✓ Nina" not in cells[2]
    assert "+ 23 h free" in cells[0] and "+ 23 h free" in cells[1] and "+ 24 h free" in cells[2]
    # The second day's free time starts where the booking ends (01:00 local).
    one = datetime.combine(start.date() + timedelta(days=1), time(1), location.zone)
    assert f"start={one.astimezone(UTC):%Y-%m-%dT%H:%M}:00Z" in cells[1]


def test_new_booking_link_opens_the_form_at_a_time_on_an_evse_the_engine_proposes(
    staff_client, site
):
    location, ac, _dc = site
    start = tomorrow_at(location, 10)
    BookingFactory(evse=ac, start=start, duration=timedelta(hours=2))
    html = staff_client.get(
        reverse("bookings:booking_new", args=[location.pk]), {"start": start.isoformat()}
    ).content.decode()
    assert '<option value="HH-2" selected>' in html  # 1A is taken at 10:00
    assert f'value="{start:%Y-%m-%d}T10:00"' in html


def _csv_rows(response) -> list[list[str]]:
    import csv
    import io

    return list(csv.reader(io.StringIO(response.content.decode())))


def test_day_csv_lists_the_days_bookings_with_labelled_local_times(staff_client, site):
    location, ac, dc = site
    ana = DriverFactory(name="Ana", license_plate="GX-123-B", phone="+31 6 1234")
    day = tomorrow_at(location, 0).date()
    BookingFactory(
        evse=ac, start=tomorrow_at(location, 9), driver=ana, authorization_reference="R1"
    )
    BookingFactory(
        evse=dc, start=tomorrow_at(location, 11), status=Status.CANCELED, channel="OCPI",
        emsp_country_code="DE", emsp_party_id="EMP", request_id="REQ", driver=None,
        authorization_reference="=HYPERLINK(1)", notes="@evil",
    )  # fmt: skip
    BookingFactory(evse=ac, start=tomorrow_at(location, 9) + timedelta(days=1))  # another day
    response = staff_client.get(
        reverse("bookings:day_csv", args=[location.pk]), {"date": day.isoformat()}
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="{location.ocpi_id}-{day}.csv"' in response["Content-Disposition"]
    head, *rows = _csv_rows(response)
    assert head[:6] == [
        "Reference",
        "Start (Europe/Amsterdam)",
        "End (Europe/Amsterdam)",
        "Start (UTC)",
        "End (UTC)",
        "EVSE",
    ]
    assert len(rows) == 2
    first = dict(zip(head, rows[0], strict=True))
    label = (
        "CET, UTC+1"
        if tomorrow_at(location, 9).utcoffset() == timedelta(hours=1)
        else "CEST, UTC+2"
    )
    assert first["Start (Europe/Amsterdam)"] == f"{day} 09:00 ({label})"
    assert first["End (Europe/Amsterdam)"] == f"{day} 10:00 ({label})"
    assert first["Start (UTC)"] == f"{tomorrow_at(location, 9).astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    assert (first["EVSE"], first["Driver"], first["Plate"], first["Phone"]) == (
        "1A", "Ana", "GX-123-B", "'+31 6 1234"  # a leading + is quoted too
    )  # fmt: skip
    assert (first["State"], first["Channel"]) == ("Reserved", "Site staff")
    second = dict(zip(head, rows[1], strict=True))
    assert (second["Driver"], second["State"]) == ("DE*EMP", "Canceled")
    assert second["Channel"] == "eMSP (OCPI booking) DE*EMP"
    # Cells a spreadsheet would run as formulas are quoted.
    assert second["Reference"] == "'=HYPERLINK(1)" and second["Notes"] == "'@evil"


def test_day_csv_labels_both_two_o_clocks_of_a_fall_back_night(staff_client, site):
    location, ac, _ = site
    first = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST
    BookingFactory(evse=ac, start=first, duration=timedelta(hours=1))  # to 02:30 CET
    response = staff_client.get(
        reverse("bookings:day_csv", args=[location.pk]), {"date": "2027-10-31"}
    )
    _, row = _csv_rows(response)
    assert row[1:3] == ["2027-10-31 02:30 (CEST, UTC+2)", "2027-10-31 02:30 (CET, UTC+1)"]


def test_day_csv_needs_staff_and_a_known_location(staff_client):
    assert Client().get(reverse("bookings:day_csv", args=[1])).status_code == 302
    assert staff_client.get(reverse("bookings:day_csv", args=[999999])).status_code == 404


def test_day_and_arrivals_pages_link_the_csv_and_load_the_print_stylesheet(staff_client, site):
    location, _, _ = site
    for name in ("bookings:location_day", "bookings:arrivals"):
        html = staff_client.get(reverse(name, args=[location.pk])).content.decode()
        assert f"/locations/{location.pk}/day.csv?date=" in html
        assert "data-print" in html
    css = (settings_base_dir() / "static" / "css" / "staff.css").read_text()
    assert "@media print" in css


def settings_base_dir():
    from django.conf import settings

    return settings.BASE_DIR


def test_booking_a_taken_slot_offers_other_evses_then_and_the_next_free_time(
    staff_client, site, driver
):
    location, ac, _dc = site
    start = tomorrow_at(location, 10)
    BookingFactory(evse=ac, start=start - timedelta(minutes=30))  # 1A: 09:30-10:30
    html = _book(staff_client, location, ac, driver, start).content.decode()
    assert "Free instead:" in html
    assert "1B at 10:00 (same time)" in html
    assert "1A at 10:30 (next free on 1A)" in html
    # Each offer opens the form on that slot with the driver already chosen.
    offer = re.search(r'href="([^"]+)"[^>]*>1A at 10:30', html).group(1).replace("&amp;", "&")
    form = staff_client.get(offer).content.decode()
    assert f'value="{start:%Y-%m-%d}T10:30"' in form
    assert f'value="{driver.pk}" checked' in form or f'value="{driver.pk}"  checked' in form


def test_quick_book_finds_the_next_free_dc_slot_across_the_location(staff_client, site):
    location, _ac, dc = site  # 1A is AC 22 kW, 1B DC 150 kW
    now = timezone.now()
    BookingFactory(evse=dc, start=now - timedelta(minutes=5), duration=timedelta(hours=3))
    url = reverse("bookings:quick_book", args=[location.pk])
    html = staff_client.get(
        url, {"current": "DC", "min_kw": 100, "duration": 60}, headers={"HX-Request": "true"}
    ).content.decode()
    offers = re.findall(r'hx-push-url="true">([^<]+)</a>', html)
    assert offers and all(o.startswith("1B · ") for o in offers)
    # The first one starts when the running booking on the only DC EVSE ends.
    from bookings.availability import grid_ceil

    end = grid_ceil(now + timedelta(hours=2, minutes=55), timedelta(minutes=15), location.zone)
    assert f"{end.astimezone(location.zone):%H:%M}–" in offers[0]
    none = staff_client.get(url, {"current": "DC", "min_kw": 400, "duration": 60}).content
    assert "Nothing matching is free" in none.decode()
    bad = staff_client.get(url, {"duration": 7})
    assert bad.status_code == 400 and "For:" in bad.content.decode()
