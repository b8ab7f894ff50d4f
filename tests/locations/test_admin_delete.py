"""The admin's delete pages say what a delete would do to active bookings: an EVSE (alone, with
its charge point or with its location) that active bookings hold cannot be deleted, and the page
lists those bookings with a link to each one's panel on the desk, where it is moved or cancelled
(its eMSP is told of a cancel); a booking policy whose delete would leave active bookings outside
the rules is deleted only on "Delete anyway" from the page that lists them. One object's page
and "Delete selected" alike; what happens is asserted on the database's rows."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, Status
from locations.models import EVSE, BookingPolicy, ChargePoint
from tests.bookings.factories import BookingFactory, DriverFactory, tomorrow_at
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)
from tests.locations.test_admin_rules import _form  # what a browser posts for the page's form

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    """Harbour Hub allows 2 hours; EVSE 1A's own policy allows 4, and Anna has 3 hours on it."""
    location = LocationFactory(name="Harbour Hub")
    BookingPolicyFactory(location=location, max_duration_minutes=120)
    cp = ChargePointFactory(location=location, identity="HH-CP01")
    evse = EVSEFactory(charge_point=cp, physical_reference="1A")
    override = BookingPolicyFactory(location=None, evse=evse, max_duration_minutes=240)
    other = EVSEFactory(charge_point=cp, physical_reference="1B")
    booking = BookingFactory(evse=evse, start=tomorrow_at(location, 9), duration=timedelta(hours=3),
                             driver=DriverFactory(name="Anna de Vries"))  # fmt: skip
    return location, cp, evse, other, override, booking


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _lists_anna(html: str, booking: Booking) -> None:
    assert "Anna de Vries" in html
    assert "on 1A" in html
    assert reverse("bookings:booking_detail", args=[booking.uid]) in html


# --- An EVSE that active bookings hold ---


def test_an_evses_delete_page_lists_its_active_bookings_and_refuses(admin_client, site):
    _, _, evse, _, _, booking = site
    BookingFactory(evse=evse, start=tomorrow_at(booking.location, 14), status=Status.CANCELED,
                   driver=DriverFactory(name="Cancelled Carl"))  # fmt: skip
    url = reverse("admin:locations_evse_delete", args=[evse.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "The EVSE “1A” cannot be deleted. Nothing has been deleted." in html
    assert "1 active booking holds an EVSE that this delete would remove." in html
    assert "Cancel it first (a cancel is sent to the booking's eMSP)" in html
    _lists_anna(html, booking)
    assert "(reserved)" in html
    held = html[html.index('id="held-bookings"') : html.index("</ul>", html.index("held-bookings"))]
    assert "Cancelled Carl" not in held  # not active: only kept for the records
    assert "set its status to Removed" in html
    assert 'name="post"' not in html  # nothing to confirm

    posted = admin_client.post(url, {"post": "yes"})
    assert posted.status_code == 200
    assert EVSE.objects.filter(pk=evse.pk).exists()
    booking.refresh_from_db()
    assert booking.status == Status.RESERVED and booking.evse_id == evse.pk


def test_an_evse_with_only_past_bookings_is_kept_with_what_to_do_instead(admin_client, site):
    _, _, _, other, _, _ = site
    past = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    BookingFactory(evse=other, start=past, status=Status.FULFILLED)
    html = admin_client.get(
        reverse("admin:locations_evse_delete", args=[other.pk])
    ).content.decode()
    assert "The EVSE “1B” cannot be deleted." in html
    assert 'id="held-bookings"' not in html
    assert "set its status to Removed" in html
    admin_client.post(reverse("admin:locations_evse_delete", args=[other.pk]), {"post": "yes"})
    assert EVSE.objects.filter(pk=other.pk).exists()


def test_an_evse_never_booked_is_deleted_as_before(admin_client, site):
    _, _, _, other, _, _ = site
    url = reverse("admin:locations_evse_delete", args=[other.pk])
    assert "Are you sure" in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not EVSE.objects.filter(pk=other.pk).exists()


def test_delete_selected_evses_lists_the_bookings_of_each_and_refuses(admin_client, site):
    location, _, evse, other, _, booking = site
    second = BookingFactory(evse=other, start=tomorrow_at(location, 10),
                            driver=DriverFactory(name="Ben Carter"))  # fmt: skip
    url = reverse("admin:locations_evse_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [evse.pk, other.pk]}
    page = admin_client.post(url, chosen)
    assert page.status_code == 200
    html = page.content.decode()
    assert "The selected EVSEs cannot be deleted. Nothing has been deleted." in html
    assert "2 active bookings hold EVSEs that this delete would remove." in html
    _lists_anna(html, booking)
    assert "Ben Carter" in html and reverse("bookings:booking_detail", args=[second.uid]) in html

    admin_client.post(url, {**chosen, "post": "yes"})
    assert EVSE.objects.filter(pk__in=[evse.pk, other.pk]).count() == 2
    assert Booking.objects.filter(status=Status.RESERVED).count() == 2


def test_a_charge_points_delete_page_lists_the_bookings_on_its_evses(admin_client, site):
    _, cp, _, _, _, booking = site
    url = reverse("admin:locations_chargepoint_delete", args=[cp.pk])
    html = admin_client.get(url).content.decode()
    assert "The charge point “HH-CP01” cannot be deleted." in html
    _lists_anna(html, booking)
    assert "EVSEs go first, each on its own page" in html
    admin_client.post(url, {"post": "yes"})
    assert ChargePoint.objects.filter(pk=cp.pk).exists()


def test_delete_selected_charge_points_lists_the_bookings_on_their_evses(admin_client, site):
    _, cp, _, _, _, booking = site
    chosen = {"action": "delete_selected", "_selected_action": [cp.pk]}
    url = reverse("admin:locations_chargepoint_changelist")
    _lists_anna(admin_client.post(url, chosen).content.decode(), booking)
    admin_client.post(url, {**chosen, "post": "yes"})
    assert ChargePoint.objects.filter(pk=cp.pk).exists()


def test_a_locations_delete_page_lists_its_active_bookings(admin_client, site):
    location, _, _, _, _, booking = site
    url = reverse("admin:locations_location_delete", args=[location.pk])
    html = admin_client.get(url).content.decode()
    assert "cannot be deleted" in html
    _lists_anna(html, booking)
    assert "untick “Publish” instead" in html


# --- A booking policy whose delete would leave bookings outside the rules ---


def test_deleting_an_evses_policy_override_asks_first_and_deletes_nothing(admin_client, site):
    _, _, _, _, override, booking = site
    url = reverse("admin:locations_bookingpolicy_delete", args=[override.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Nothing has been deleted yet." in html
    assert "EVSE 1A then follows the booking policy of Harbour Hub." in html
    assert "<strong>1 active booking</strong> would be outside the rules" in html
    assert "It stays booked as it is (nothing is cancelled" in html
    _lists_anna(html, booking)
    assert "A booking here lasts at most 120 minutes." in html
    assert f'name="_confirm_outside_rules" value="booking:{booking.pk}"' in html
    assert 'value="Delete anyway"' in html
    # The look ahead deleted nothing.
    assert BookingPolicy.objects.filter(pk=override.pk).exists()

    # A delete posted without confirming these bookings (an older page) deletes nothing.
    unconfirmed = admin_client.post(url, {"post": "yes"})
    assert unconfirmed.status_code == 302 and unconfirmed["Location"] == url
    assert BookingPolicy.objects.filter(pk=override.pk).exists()
    assert any("Nothing was deleted" in m for m in _messages(unconfirmed))


def test_delete_anyway_deletes_the_override_and_keeps_the_booking(admin_client, site):
    location, _, evse, _, override, booking = site
    url = reverse("admin:locations_bookingpolicy_delete", args=[override.pk])
    done = admin_client.post(
        url, {"post": "yes", "_confirm_outside_rules": f"booking:{booking.pk}"}
    )
    assert done.status_code == 302
    assert not BookingPolicy.objects.filter(pk=override.pk).exists()
    assert BookingPolicy.objects.filter(location=location).count() == 1  # the location's stays
    booking.refresh_from_db()
    assert booking.status == Status.RESERVED and booking.evse_id == evse.pk
    told = _messages(done)
    assert any("Deleted. 1 active booking is now outside the rules" in m for m in told)
    assert any(reverse("bookings:booking_detail", args=[booking.uid]) in m for m in told)
    # The desk has it on its list.
    listed = admin_client.get(reverse("bookings:attention", args=[location.pk]))
    assert str(booking.uid) in listed.content.decode()


def test_delete_selected_policies_asks_first_then_deletes_on_delete_anyway(admin_client, site):
    _, _, _, _, override, booking = site
    url = reverse("admin:locations_bookingpolicy_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [override.pk]}
    page = admin_client.post(url, chosen)
    html = page.content.decode()
    assert "Nothing has been deleted yet." in html
    _lists_anna(html, booking)
    assert 'name="action" value="delete_selected"' in html
    assert f'value="booking:{booking.pk}"' in html

    unconfirmed = admin_client.post(url, {**chosen, "post": "yes"})
    assert unconfirmed.status_code == 302
    assert BookingPolicy.objects.filter(pk=override.pk).exists()
    assert any("Nothing was deleted" in m for m in _messages(unconfirmed))

    done = admin_client.post(
        url, {**chosen, "post": "yes", "_confirm_outside_rules": f"booking:{booking.pk}"}
    )
    assert done.status_code == 302
    assert not BookingPolicy.objects.filter(pk=override.pk).exists()
    assert Booking.objects.get(pk=booking.pk).status == Status.RESERVED
    assert any("now outside the rules" in m for m in _messages(done))


def test_a_policy_delete_that_keeps_every_booking_inside_the_rules_asks_as_usual(
    admin_client, site
):
    _, _, _, _, override, booking = site
    booking.delete()  # no active booking left to put outside the rules
    url = reverse("admin:locations_bookingpolicy_delete", args=[override.pk])
    html = admin_client.get(url).content.decode()
    assert "Are you sure" in html
    assert "EVSE 1A then follows the booking policy of Harbour Hub." in html
    assert "outside the rules" not in html
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not BookingPolicy.objects.filter(pk=override.pk).exists()


def test_deleting_a_locations_policy_says_the_default_rules_follow(admin_client, site):
    location, _, _, other, _, _ = site
    BookingFactory(evse=other, start=tomorrow_at(location, 9), duration=timedelta(hours=2))
    policy = BookingPolicy.objects.get(location=location)
    url = reverse("admin:locations_bookingpolicy_delete", args=[policy.pk])
    html = admin_client.get(url).content.decode()
    assert "The EVSEs of Harbour Hub without a policy of their own then follow the default" in html


def test_a_location_with_nothing_at_it_is_deleted_as_before(admin_client):
    location = LocationFactory(name="Empty Lot")
    BookingPolicyFactory(location=location)
    url = reverse("admin:locations_location_delete", args=[location.pk])
    assert "Are you sure" in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not BookingPolicy.objects.filter(location_id=location.pk).exists()


def test_delete_selected_evses_never_booked_deletes_them(admin_client, site):
    _, cp, _, _, _, _ = site
    spare = EVSEFactory(charge_point=cp, physical_reference="1C")
    url = reverse("admin:locations_evse_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [spare.pk]}
    assert "Are you sure" in admin_client.post(url, chosen).content.decode()
    assert admin_client.post(url, {**chosen, "post": "yes"}).status_code == 302
    assert not EVSE.objects.filter(pk=spare.pk).exists()


# --- The same deletes from an inline's "Delete" box ---


def test_deleting_the_override_on_the_evses_page_asks_first(admin_client, site):
    _, _, evse, _, override, booking = site
    url = reverse("admin:locations_evse_change", args=[evse.pk])
    data = _form(admin_client, url)
    data["booking_policy-0-DELETE"] = ["on"]
    response = admin_client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Save this change?" in html and "Nothing has been saved yet." in html
    _lists_anna(html, booking)
    assert "A booking here lasts at most 120 minutes." in html
    assert BookingPolicy.objects.filter(pk=override.pk).exists()

    data["_confirm_outside_rules"] = ["1"]
    assert admin_client.post(url, data).status_code == 302
    assert not BookingPolicy.objects.filter(pk=override.pk).exists()
    assert Booking.objects.get(pk=booking.pk).status == Status.RESERVED


def test_deleting_an_evse_on_its_charge_points_page_lists_its_active_bookings(admin_client, site):
    _, cp, evse, _, _, booking = site
    url = reverse("admin:locations_chargepoint_change", args=[cp.pk])
    data = _form(admin_client, url)
    index = next(i for i in range(2) if data[f"evses-{i}-id"] == [str(evse.pk)])
    data[f"evses-{index}-DELETE"] = ["on"]
    response = admin_client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        "Nothing is deleted: 1 active booking holds one of the EVSEs marked for deletion." in html
    )
    assert "Cancel it first (a cancel is sent to the booking's eMSP)" in html
    _lists_anna(html, booking)
    assert EVSE.objects.filter(pk=evse.pk).exists()
