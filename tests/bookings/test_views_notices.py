"""Notices while a desk page is open (issue 15): the grid's poll answers with a notice when a
booking arrives from an eMSP or an API client at this location, or a charger there faults or
goes offline; nothing for the desk's own bookings or another location's."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from bookings.services import Actor, RequestData, TokenData, booking_create, booking_request_submit
from locations.models import EVSEStatus
from locations.services import charge_point_set_connected, evse_set_status
from tests.bookings.factories import DriverFactory, tomorrow_at
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    location = LocationFactory(name="Harbour Hub", ocpi_id="HH")
    BookingPolicyFactory(location=location)
    cp = ChargePointFactory(location=location, identity="HH-CP01")
    return location, EVSEFactory(charge_point=cp, uid="HH-1", physical_reference="1A")


class OpenPage:
    """A day view as a browser holds it: its grid's version and notice cursor, polled."""

    def __init__(self, client, location):
        self.client = client
        self.url = reverse("bookings:location_day", args=[location.pk])
        html = client.get(self.url).content.decode()
        self.version = re.search(r'"X-Grid-Version": "([^"]+)"', html).group(1)
        self.seen = re.search(r'data-desk-seen="([^"]*)"', html).group(1)

    def poll(self):
        response = self.client.get(
            self.url,
            headers={"HX-Request": "true", "HX-Target": "grid",
                     "X-Grid-Version": self.version, "X-Desk-Seen": self.seen},
        )  # fmt: skip
        if response.status_code == 204:
            self.seen = response.headers.get("X-Desk-Seen", self.seen)
            return response, ""
        html = response.content.decode()
        self.version = re.search(r'"X-Grid-Version": "([^"]+)"', html).group(1)
        self.seen = re.search(r'data-desk-seen="([^"]*)"', html).group(1)
        notices = re.search(
            r'<div id="notices" hx-swap-oob="beforeend">(.*?)</div>\s*$', html, re.S
        )
        return response, notices.group(1) if notices else ""


def test_a_page_rendered_carries_the_live_region_for_notices(staff_client, site):
    location, _ = site
    html = staff_client.get(reverse("bookings:location_day", args=[location.pk])).content.decode()
    [region] = re.findall(r'<div id="notices"[^>]*>', html)
    assert 'role="region"' in region and 'aria-live="polite"' in region
    assert 'data-desk-seen="' in html


def test_a_booking_from_an_emsp_shows_a_notice_on_the_open_page(staff_client, site):
    location, _ = site
    page = OpenPage(staff_client, location)
    _, nothing = page.poll()
    assert nothing == ""
    start = tomorrow_at(location, 10)
    data = RequestData(request_id="R-1", location_id="HH", evse_uid="HH-1", start=start,
                       end=start + timedelta(hours=1), authorization_reference="A1",
                       tokens=(TokenData("NL", "EMS", "TOK1", "RFID", "NL-EMS-1"),))  # fmt: skip
    booking = booking_request_submit(actor=Actor.emsp("NL", "EMS"), data=data, payload={}).booking
    response, notices = page.poll()
    assert response.status_code == 200
    assert "New booking from eMSP NL*EMS: 1A" in notices
    assert f"{start:%H:%M}–{start + timedelta(hours=1):%H:%M} (CE" in notices
    assert reverse("bookings:booking_detail", args=[booking.uid]) in notices
    assert "data-dismiss-notice" in notices
    assert f'data-notice-key="booking:{booking.uid}"' in notices


def test_a_booking_from_an_api_client_shows_a_notice_naming_the_driver(staff_client, site):
    location, evse = site
    page = OpenPage(staff_client, location)
    start = tomorrow_at(location, 12)
    booking_create(
        evse=evse, start=start, end=start + timedelta(hours=1),
        actor=Actor.api_client("Fleet Co"), driver=DriverFactory(name="Dana"),
    )  # fmt: skip
    _, notices = page.poll()
    assert "New booking from API client Fleet Co for Dana: 1A" in notices


def test_the_desks_own_booking_and_another_locations_are_no_news(staff_client, site, staff_user):
    location, evse = site
    page = OpenPage(staff_client, location)
    start = tomorrow_at(location, 9)
    booking_create(evse=evse, start=start, end=start + timedelta(hours=1),
                   actor=Actor.staff(staff_user))  # fmt: skip
    elsewhere = EVSEFactory(charge_point=ChargePointFactory(location=LocationFactory()))
    booking_create(evse=elsewhere, start=start, end=start + timedelta(hours=1),
                   actor=Actor.api_client("Fleet Co"))  # fmt: skip
    _, notices = page.poll()
    assert notices == ""


def test_a_charger_going_offline_and_an_evse_fault_show_notices(staff_client, site):
    location, evse = site
    page = OpenPage(staff_client, location)
    now = timezone.now()
    charge_point_set_connected(charge_point=evse.charge_point, connected=False, at=now)
    evse_set_status(charge_point=evse.charge_point, ocpp_evse_id=evse.ocpp_evse_id,
                    status=EVSEStatus.OUTOFORDER, at=now)  # fmt: skip
    _, notices = page.poll()
    assert "Charger HH-CP01 went offline (last heard" in notices
    assert "1A (HH-CP01) reports a fault: out of order." in notices
    # Told once: the next poll has nothing new while they stay down.
    _, again = page.poll()
    assert again == ""


def test_a_poll_that_finds_nothing_new_stays_cheap(
    staff_client, site, django_assert_max_num_queries
):
    location, _ = site
    with time_machine.travel(timezone.now(), tick=False):  # the grid's minute stays the same
        page = OpenPage(staff_client, location)
        # session, user, location with its hours (3), the bookings in new audit rows, the
        # settled cursor, what is down, and the grid's version.
        with django_assert_max_num_queries(10):
            response, notices = page.poll()
    assert notices == ""
    assert response.status_code == 204


def test_a_poll_without_a_cursor_or_with_a_bad_one_still_answers(staff_client, site):
    location, _ = site
    url = reverse("bookings:location_day", args=[location.pk])
    for seen in ("", "nonsense", "12;e,x1"):
        response = staff_client.get(
            url, headers={"HX-Request": "true", "HX-Target": "grid", "X-Desk-Seen": seen}
        )
        assert response.status_code == 200
