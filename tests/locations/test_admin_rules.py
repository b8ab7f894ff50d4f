"""The admin asks before saving a change to a location's rules that would leave active bookings
outside them (issue 15): the confirmation page names each booking with a link to its panel,
nothing is saved until "Save anyway", and a change that leaves every booking inside the rules
saves at once."""

from datetime import UTC, timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from locations.models import EVSE, BookingPolicy, EVSEStatus, ExceptionalPeriod
from tests.bookings.factories import BookingFactory, DriverFactory, tomorrow_at
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = pytest.mark.django_db


class _FormReader(HTMLParser):
    """What a browser sends for the page's main form: its fields with their current values."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data.append((self._textarea, self._text.strip("\n")))
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text += data


def _form(client, url: str) -> dict[str, list[str]]:
    reader = _FormReader()
    reader.feed(client.get(url).content.decode())
    data: dict[str, list[str]] = {}
    for name, value in reader.data:
        if name in ("q", "csrfmiddlewaretoken"):
            continue
        data.setdefault(name, []).append(value)
    data["_save"] = ["Save"]
    return data


@pytest.fixture
def site():
    location = LocationFactory(name="Harbour Hub")
    BookingPolicyFactory(location=location, max_duration_minutes=240)
    evse = EVSEFactory(charge_point=ChargePointFactory(location=location), physical_reference="1A")
    booking = BookingFactory(evse=evse, start=tomorrow_at(location, 9), duration=timedelta(hours=2),
                             driver=DriverFactory(name="Anna de Vries"))  # fmt: skip
    return location, evse, booking


def _confirmation_names(response, booking) -> None:
    assert response.status_code == 200
    html = response.content.decode()
    assert "Save this change?" in html
    assert "Nothing has been saved yet." in html
    assert "Anna de Vries" in html
    assert reverse("bookings:booking_detail", args=[booking.uid]) in html
    assert 'name="_confirm_outside_rules"' in html


def test_an_exceptional_closing_over_a_booking_asks_first_and_saves_nothing(admin_client, site):
    location, _, booking = site
    url = reverse("admin:locations_location_change", args=[location.pk])
    data = _form(admin_client, url)
    begin = tomorrow_at(location, 10).astimezone(UTC)
    data.update({
        "exceptional_periods-TOTAL_FORMS": ["1"],
        "exceptional_periods-0-kind": [ExceptionalPeriod.Kind.CLOSING],
        "exceptional_periods-0-period_begin_0": [f"{begin:%Y-%m-%d}"],
        "exceptional_periods-0-period_begin_1": [f"{begin:%H:%M:%S}"],
        "exceptional_periods-0-period_end_0": [f"{begin + timedelta(hours=2):%Y-%m-%d}"],
        "exceptional_periods-0-period_end_1": [f"{begin + timedelta(hours=2):%H:%M:%S}"],
        "exceptional_periods-0-location": [str(location.pk)],
    })  # fmt: skip
    response = admin_client.post(url, data)
    _confirmation_names(response, booking)
    assert "closed for part of" in response.content.decode()
    assert not ExceptionalPeriod.objects.filter(location=location).exists()

    data["_confirm_outside_rules"] = ["1"]
    saved = admin_client.post(url, data)
    assert saved.status_code == 302
    assert ExceptionalPeriod.objects.filter(location=location).count() == 1
    warning = [str(m) for m in get_messages(saved.wsgi_request)]
    assert any("1 active booking is now outside the rules" in m for m in warning)
    assert any(reverse("bookings:booking_detail", args=[booking.uid]) in m for m in warning)


def test_switching_booking_off_on_an_evse_asks_first(admin_client, site):
    _, evse, booking = site
    url = reverse("admin:locations_evse_change", args=[evse.pk])
    data = _form(admin_client, url)
    data.pop("booking_enabled")
    response = admin_client.post(url, data)
    _confirmation_names(response, booking)
    assert "Booking is switched off for this EVSE." in response.content.decode()
    assert EVSE.objects.get(pk=evse.pk).booking_enabled


def test_an_evse_put_out_of_order_on_its_charge_point_asks_first(admin_client, site):
    _, evse, booking = site
    url = reverse("admin:locations_chargepoint_change", args=[evse.charge_point.pk])
    data = _form(admin_client, url)
    data["evses-0-status"] = [EVSEStatus.OUTOFORDER]
    response = admin_client.post(url, data)
    _confirmation_names(response, booking)
    assert EVSE.objects.get(pk=evse.pk).status == EVSEStatus.AVAILABLE


def test_a_tightened_policy_asks_first(admin_client, site):
    location, _, booking = site
    policy = BookingPolicy.objects.get(location=location)
    url = reverse("admin:locations_bookingpolicy_change", args=[policy.pk])
    data = _form(admin_client, url)
    data["max_duration_minutes"] = ["60"]
    data["min_duration_minutes"] = ["15"]
    response = admin_client.post(url, data)
    _confirmation_names(response, booking)
    assert "A booking here lasts at most 60 minutes." in response.content.decode()
    assert BookingPolicy.objects.get(pk=policy.pk).max_duration_minutes == 240


def test_a_change_that_keeps_every_booking_inside_the_rules_saves_at_once(admin_client, site):
    location, _, _ = site
    policy = BookingPolicy.objects.get(location=location)
    url = reverse("admin:locations_bookingpolicy_change", args=[policy.pk])
    data = _form(admin_client, url)
    data["max_duration_minutes"] = ["180"]  # the 2-hour booking still fits
    response = admin_client.post(url, data)
    assert response.status_code == 302
    assert BookingPolicy.objects.get(pk=policy.pk).max_duration_minutes == 180


def test_bookings_already_outside_the_rules_do_not_stop_another_change(admin_client, site):
    location, evse, _ = site
    EVSE.objects.filter(pk=evse.pk).update(booking_enabled=False)  # outside before the change
    url = reverse("admin:locations_location_change", args=[location.pk])
    data = _form(admin_client, url)
    data["name"] = ["Harbour Hub North"]
    response = admin_client.post(url, data)
    assert response.status_code == 302
    location.refresh_from_db()
    assert location.name == "Harbour Hub North"
