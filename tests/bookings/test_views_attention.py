"""What the desk must not miss (issue 15) over HTTP: bookings outside the rules flagged on the
day and week views, and the needs-attention list with a link to each booking's panel."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bookings.models import Booking, Status
from tests.bookings.factories import BookingFactory, DriverFactory, tomorrow_at
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    location = LocationFactory(name="Harbour Hub")
    policy = BookingPolicyFactory(location=location, max_duration_minutes=240)
    cp = ChargePointFactory(location=location, identity="HH-CP01")
    return location, policy, EVSEFactory(charge_point=cp, physical_reference="1A")


def _blocks(html: str) -> dict[str, str]:
    """data-booking uid -> the whole <a> of each booking block."""
    import re

    return {
        m.group(1): m.group(0)
        for m in re.finditer(r'<a class="block[^"]*"[^>]*data-booking="([^"]+)".*?</a>', html)
    }


@pytest.mark.parametrize("view", ["location_day", "location_week"])
def test_a_booking_outside_the_tightened_policy_is_flagged_on_the_grid(staff_client, site, view):
    location, policy, evse = site
    long = BookingFactory(evse=evse, start=tomorrow_at(location, 9), duration=timedelta(hours=3),
                          driver=DriverFactory(name="Long Stay"))  # fmt: skip
    short = BookingFactory(evse=evse, start=tomorrow_at(location, 14), duration=timedelta(hours=1))
    policy.max_duration_minutes = 120
    policy.save()
    day = tomorrow_at(location, 0).date()
    response = staff_client.get(reverse(f"bookings:{view}", args=[location.pk]), {"date": day})
    assert response.status_code == 200
    blocks = _blocks(response.content.decode())
    assert "outside-rules" in blocks[str(long.uid)]
    assert "⚠ Outside the rules" in blocks[str(long.uid)]
    assert "A booking here lasts at most 120 minutes." in blocks[str(long.uid)]
    assert "outside-rules" not in blocks[str(short.uid)]
    assert "Outside the rules" not in blocks[str(short.uid)]


def test_a_longer_buffer_flags_the_booking_whose_buffer_meets_the_next(staff_client, site):
    location, policy, evse = site
    first = BookingFactory(evse=evse, start=tomorrow_at(location, 9))  # 09:00-10:00
    second = BookingFactory(evse=evse, start=tomorrow_at(location, 10))  # back to back
    policy.buffer_minutes = 15
    policy.save()
    day = tomorrow_at(location, 0).date()
    response = staff_client.get(reverse("bookings:location_day", args=[location.pk]), {"date": day})
    blocks = _blocks(response.content.decode())
    assert "is already booked around" in blocks[str(first.uid)]
    assert "15 minutes kept free between bookings" in blocks[str(first.uid)]
    assert "outside-rules" not in blocks[str(second.uid)]
    listed = staff_client.get(reverse("bookings:attention", args=[location.pk])).content.decode()
    assert str(first.uid) in listed and str(second.uid) not in listed


def test_the_grid_does_not_flag_ended_or_canceled_bookings(staff_client, site):
    location, policy, evse = site
    canceled = BookingFactory(evse=evse, start=tomorrow_at(location, 9),
                              duration=timedelta(hours=3), status=Status.CANCELED)  # fmt: skip
    policy.max_duration_minutes = 120
    policy.save()
    day = tomorrow_at(location, 0).date()
    response = staff_client.get(reverse("bookings:location_day", args=[location.pk]), {"date": day})
    assert "Outside the rules" not in _blocks(response.content.decode())[str(canceled.uid)]


def test_the_day_view_links_the_needs_attention_list(staff_client, site):
    location, _, _ = site
    response = staff_client.get(reverse("bookings:location_day", args=[location.pk]))
    assert reverse("bookings:attention", args=[location.pk]).encode() in response.content


def test_needs_attention_lists_each_booking_with_why_and_its_panel(staff_client, site):
    location, policy, evse = site
    long = BookingFactory(evse=evse, start=tomorrow_at(location, 9), duration=timedelta(hours=3),
                          driver=DriverFactory(name="Long Stay"))  # fmt: skip
    held = BookingFactory(evse=evse, start=tomorrow_at(location, 14), duration=timedelta(hours=1),
                          needs_attention=True)  # fmt: skip
    fine = BookingFactory(evse=evse, start=tomorrow_at(location, 17), duration=timedelta(hours=1))
    policy.max_duration_minutes = 120
    policy.save()
    response = staff_client.get(reverse("bookings:attention", args=[location.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 bookings" in html
    assert "Long Stay" in html
    assert "A booking here lasts at most 120 minutes." in html
    assert "could not hold it" in html
    assert reverse("bookings:booking_detail", args=[long.uid]) in html
    assert reverse("bookings:booking_detail", args=[held.uid]) in html
    assert str(fine.uid) not in html
    # Times on the location's clock, with the clock named.
    assert f"{tomorrow_at(location, 9):%H:%M}–{tomorrow_at(location, 12):%H:%M} (CE" in html
    # The panel it links to opens (the desk moves or cancels from there).
    panel = staff_client.get(reverse("bookings:booking_detail", args=[long.uid]))
    assert panel.status_code == 200
    assert b"Move, extend or shorten" in panel.content


def test_needs_attention_says_so_when_nothing_does(staff_client, site):
    location, _, evse = site
    BookingFactory(evse=evse, start=tomorrow_at(location, 9))
    response = staff_client.get(reverse("bookings:attention", args=[location.pk]))
    assert "Nothing needs attention" in response.content.decode()


def test_needs_attention_htmx_poll_answers_the_list_alone(staff_client, site):
    location, _, _ = site
    response = staff_client.get(
        reverse("bookings:attention", args=[location.pk]), headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="attention"')
    assert "<html" not in html


def test_needs_attention_is_for_staff(client, site):
    location, _, _ = site
    response = client.get(reverse("bookings:attention", args=[location.pk]))
    assert response.status_code == 302


def test_needs_attention_of_an_unknown_location_is_404(staff_client):
    assert staff_client.get("/locations/999999/attention/").status_code == 404


def test_needs_attention_queries_do_not_grow_with_the_bookings(staff_client, site):
    location, policy, evse = site
    others = [EVSEFactory(charge_point=evse.charge_point) for _ in range(3)]

    made = []

    def book(n: int) -> None:
        for _ in range(n):
            i = len(made)
            made.append(i)
            target = [evse, *others][i % 4]
            BookingFactory(evse=target, start=tomorrow_at(location, 0) + timedelta(hours=4 * i),
                           duration=timedelta(hours=3), driver=DriverFactory(),
                           needs_attention=i % 2 == 0)  # fmt: skip

    url = reverse("bookings:attention", args=[location.pk])
    policy.max_duration_minutes = 120
    policy.save()
    book(2)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200
    book(10)
    assert Booking.objects.count() == 12
    with CaptureQueriesContext(connection) as many:
        response = staff_client.get(url)
    assert response.content.decode().count('class="entry"') == 12
    assert len(many) == len(few)


# --- The count on the day and week views' "Needs attention" link ---


def _count(staff_client, location) -> str:
    response = staff_client.get(
        reverse("bookings:attention_count", args=[location.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    return response.content.decode().strip()


def _link(location, *, first: bool) -> str:
    """The toolbar's link as the page has it (first) or as the count request answers it."""
    url = reverse("bookings:attention", args=[location.pk])
    count_url = reverse("bookings:attention_count", args=[location.pk])
    trigger = "load, desk-grid-drawn from:body" if first else "desk-grid-drawn from:body"
    return (
        f'<a class="btn" id="attention-link" href="{url}" '
        f'hx-get="{count_url}" hx-trigger="{trigger}" hx-swap="outerHTML"'
    )


def test_the_attention_count_is_the_lists_own_count(staff_client, site):
    location, policy, evse = site
    BookingFactory(evse=evse, start=tomorrow_at(location, 9), duration=timedelta(hours=3))
    BookingFactory(evse=evse, start=tomorrow_at(location, 14), needs_attention=True)
    BookingFactory(evse=evse, start=tomorrow_at(location, 17))  # keeps the rules
    policy.max_duration_minutes = 120
    policy.save()
    html = _count(staff_client, location)
    assert html == (
        _link(location, first=False) + ' aria-label="Needs attention: 2 bookings">'
        'Needs attention <span class="attention-count">· 2</span></a>'
    )
    listed = staff_client.get(reverse("bookings:attention", args=[location.pk]))
    assert listed.content.decode().count('class="entry"') == 2


def test_the_attention_count_says_one_booking(staff_client, site):
    location, _, evse = site
    BookingFactory(evse=evse, start=tomorrow_at(location, 14), needs_attention=True)
    html = _count(staff_client, location)
    assert 'aria-label="Needs attention: 1 booking"' in html and "· 1</span>" in html


def test_the_attention_count_is_nothing_when_nothing_needs_attention(staff_client, site):
    location, _, evse = site
    BookingFactory(evse=evse, start=tomorrow_at(location, 9))
    assert _count(staff_client, location) == _link(location, first=False) + ">Needs attention</a>"


@pytest.mark.parametrize("view", ["location_day", "location_week"])
def test_the_views_load_the_count_into_the_link_after_the_page(staff_client, site, view):
    location, _, evse = site
    BookingFactory(evse=evse, start=tomorrow_at(location, 14), needs_attention=True)
    html = staff_client.get(reverse(f"bookings:{view}", args=[location.pk])).content.decode()
    assert _link(location, first=True) + ">Needs attention</a>" in html  # counted afterwards


def test_a_redrawn_grid_asks_the_count_again_and_a_page_does_not(staff_client, site):
    location, _, _ = site
    url = reverse("bookings:location_day", args=[location.pk])
    grid = staff_client.get(url, headers={"HX-Request": "true", "HX-Target": "grid"})
    assert grid.status_code == 200
    assert "desk-grid-drawn" in grid.headers["HX-Trigger"]
    view = staff_client.get(url, headers={"HX-Request": "true", "HX-Target": "view"})
    assert "HX-Trigger" not in view.headers  # the new toolbar loads its own count
    assert "HX-Trigger" not in staff_client.get(url).headers


def test_the_attention_count_is_for_staff(client, site):
    location, _, _ = site
    response = client.get(reverse("bookings:attention_count", args=[location.pk]))
    assert response.status_code == 302


def test_the_attention_count_of_an_unknown_location_is_404(staff_client):
    assert staff_client.get("/locations/999999/attention/count/").status_code == 404


def test_the_attention_count_queries_do_not_grow_with_the_bookings(
    staff_client, site, django_assert_max_num_queries
):
    location, policy, evse = site
    others = [EVSEFactory(charge_point=evse.charge_point) for _ in range(3)]
    policy.max_duration_minutes = 120
    policy.save()
    url = reverse("bookings:attention_count", args=[location.pk])

    def book(first: int, n: int) -> None:
        for i in range(first, first + n):
            target = [evse, *others][i % 4]
            BookingFactory(evse=target, start=tomorrow_at(location, 0) + timedelta(hours=4 * i),
                           duration=timedelta(hours=3), driver=DriverFactory(),
                           needs_attention=i % 2 == 0)  # fmt: skip

    book(0, 2)
    with django_assert_max_num_queries(20) as few:
        assert "· 2</span>" in staff_client.get(url).content.decode()
    book(2, 10)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert "· 12</span>" in staff_client.get(url).content.decode()
