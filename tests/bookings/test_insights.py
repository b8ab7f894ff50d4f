"""Insights: the figures of bookings.insights against bookings with known times and outcomes, and
the page staff read them on."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.insights import location_insights
from bookings.models import Booking, Status
from tests.bookings.factories import BookingFactory
from tests.locations.factories import ChargePointFactory, EVSEFactory, LocationFactory

pytestmark = pytest.mark.django_db

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # 14:00 in Amsterdam; the window is 3-9 June


def local(day: int, hour: int, minute: int = 0, tz: ZoneInfo = AMS) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=tz)


@pytest.fixture
def site():
    location = LocationFactory(time_zone="Europe/Amsterdam")
    cp = ChargePointFactory(location=location, identity="INS-CP")
    return location, [EVSEFactory(charge_point=cp, ocpp_evse_id=i) for i in (1, 2)]


def book(evse, start, *, hours=1.0, status=Status.RESERVED, made_before=None, **extra):
    booking = BookingFactory(
        evse=evse, start=start, duration=timedelta(hours=hours), status=status, **extra
    )
    if made_before is not None:
        Booking.objects.filter(pk=booking.pk).update(created_at=start - made_before)
    return booking


@pytest.fixture
def week(site):
    location, (a, b) = site
    book(a, local(5, 10), hours=2, status=Status.FULFILLED, made_before=timedelta(hours=48))
    book(a, local(6, 10, 30), hours=0.5, status=Status.NO_SHOW, made_before=timedelta(minutes=30))
    book(b, local(5, 10), status=Status.CANCELED, made_before=timedelta(days=10))
    book(b, local(8, 23), status=Status.RESERVED, made_before=timedelta(hours=3),
         channel=Booking.Channel.OCPI, emsp_country_code="DE", emsp_party_id="XMS",
         request_id="R-1")  # fmt: skip
    book(b, local(7, 9), status=Status.REJECTED, channel=Booking.Channel.OCPI,
         emsp_country_code="DE", emsp_party_id="XMS", request_id="R-2")  # fmt: skip
    # Outside the window: today, and the day before it began.
    book(a, local(10, 8), status=Status.FULFILLED)
    book(a, local(2, 10), status=Status.FULFILLED)
    return location, (a, b)


def test_booked_share_of_each_hour_per_evse(week):
    location, (a, b) = week
    data = location_insights(location=location, days=7, now=NOW)
    assert (data.first_day.isoformat(), data.last_day.isoformat()) == ("2026-06-03", "2026-06-09")
    by_evse = {e.evse_id: e.shares for e in data.evses}
    assert by_evse[a.pk][10] == pytest.approx(1.5 / 7)  # 1 h fulfilled + 30 min no-show
    assert by_evse[a.pk][11] == pytest.approx(1 / 7)
    assert by_evse[a.pk][8] == 0  # today's booking is not in the window
    assert by_evse[b.pk][10] == 0  # canceled: it gave its time back
    assert by_evse[b.pk][23] == pytest.approx(1 / 7)  # still reserved, held its hour
    assert sum(by_evse[a.pk]) == pytest.approx(2.5 / 7)


def test_outcomes_channels_and_rates(week):
    location, _ = week
    data = location_insights(location=location, days=7, now=NOW)
    o = data.outcomes
    assert (o.made, o.fulfilled, o.no_show, o.canceled, o.open, o.refused) == (4, 1, 1, 1, 1, 1)
    assert o.no_show_rate == pytest.approx(0.5)
    assert o.cancel_rate == pytest.approx(0.25)
    channels = {c.label: (c.made, c.canceled) for c in data.channels}
    assert channels == {"Site staff": (3, 1), "eMSP (OCPI booking) · DE*XMS": (1, 0)}


def test_lead_times_in_buckets_with_median(week):
    location, _ = week
    lead = location_insights(location=location, days=7, now=NOW).lead
    assert dict(lead.buckets) == {"< 1 h": 1, "1–6 h": 1, "6–24 h": 0, "1–3 days": 1,
                                  "3–7 days": 0, "> 7 days": 1}  # fmt: skip
    assert lead.median_hours == pytest.approx((3 + 48) / 2)


def test_thirty_days_reach_further_back(week):
    location, (a, _) = week
    data = location_insights(location=location, days=30, now=NOW)
    assert data.first_day.isoformat() == "2026-05-11"
    assert sum(next(e.shares for e in data.evses if e.evse_id == a.pk)) == pytest.approx(3.5 / 30)


def test_hours_are_local_hours_also_at_a_half_hour_offset():
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    location = LocationFactory(time_zone="Asia/Kolkata")
    evse = EVSEFactory(charge_point=ChargePointFactory(location=location))
    book(evse, local(8, 10, tz=kolkata), status=Status.FULFILLED)
    shares = location_insights(location=location, days=7, now=NOW).evses[0].shares
    assert shares[10] == pytest.approx(1 / 7) and sum(shares) == pytest.approx(1 / 7)


def test_insights_queries_do_not_grow_with_evses_or_bookings(site):
    location, (a, _) = site

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            location_insights(location=location, days=7, now=NOW)
        return len(ctx.captured_queries)

    book(a, local(5, 10), status=Status.FULFILLED)
    few = queries()
    cp = ChargePointFactory(location=location)
    for i in range(6):
        evse = EVSEFactory(charge_point=cp, ocpp_evse_id=10 + i)
        for day in (4, 5, 6):
            book(evse, local(day, 8 + i), status=Status.FULFILLED)
    assert queries() == few


def test_insights_page_shows_the_pictures_and_the_figures(staff_client, site):
    location, (a, b) = site
    yesterday = timezone.now().astimezone(AMS).date() - timedelta(days=1)
    at_ten = datetime.combine(yesterday, time(10), tzinfo=AMS)
    book(a, at_ten, status=Status.FULFILLED, made_before=timedelta(hours=2))
    book(b, at_ten, status=Status.NO_SHOW, channel=Booking.Channel.OCPI,
         emsp_country_code="DE", emsp_party_id="XMS", request_id="R-1")  # fmt: skip
    url = f"/locations/{location.pk}/insights/"
    response = staff_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and 'role="img"' in html
    assert "eMSP (OCPI booking) · DE*XMS" in html
    assert "no-shows" in html and "median lead time" in html
    assert f"{a}, 10:00–11:00: 14% booked" in html  # each cell names its EVSE, hour and figure
    assert "50%" in html  # one no-show of the two bookings whose time came
    thirty = staff_client.get(url, {"days": "30"})
    assert 'aria-current="page">Last 30 days' in thirty.content.decode()


def test_insights_page_refuses_an_odd_period_with_a_message(staff_client, site):
    location, _ = site
    response = staff_client.get(f"/locations/{location.pk}/insights/", {"days": "9999"})
    assert response.status_code == 200
    assert "The period can be the last 7 or 30 days" in response.content.decode()


def test_insights_page_needs_staff(client, site):
    location, _ = site
    response = client.get(f"/locations/{location.pk}/insights/")
    assert response.status_code == 302 and "/login" in response["Location"]
    assert client.get("/locations/999999/insights/").status_code == 302
