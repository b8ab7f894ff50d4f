"""Every registered admin page renders: changelist, add (where allowed), change."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, BookingTransition, Status
from tests.bookings.factories import (
    BookingFactory,
    BookingRequestFactory,
    BookingTokenFactory,
    BookingTransitionFactory,
    DriverTokenFactory,
)
from tests.locations.factories import (
    BookingPolicyFactory,
    ExceptionalPeriodFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_each(db):
    booking = BookingFactory()
    BookingTokenFactory(booking=booking)
    BookingRequestFactory(booking=booking)
    BookingTransitionFactory(booking=booking)
    DriverTokenFactory()
    BookingPolicyFactory(location=booking.location)
    RegularHoursFactory(location=booking.location)
    ExceptionalPeriodFactory(
        location=booking.location,
        period_begin=booking.period.lower,
        period_end=booking.period.lower + timedelta(hours=1),
    )
    return booking


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_admin_pages_render(admin_client, one_of_each, model):
    opts = model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(changelist, {"q": "x"}).status_code == 200
    model_admin = admin.site._registry[model]
    request = admin_client.get(changelist).wsgi_request
    if model_admin.has_add_permission(request):
        add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        assert admin_client.get(add).status_code == 200
    obj = model._default_manager.first()
    if obj is not None:
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert admin_client.get(change).status_code == 200


def test_admin_booking_change_page_shows_audit_trail(admin_client, one_of_each):
    url = reverse("admin:bookings_booking_change", args=[one_of_each.pk])
    body = admin_client.get(url).content.decode()
    assert "Audit trail" in body or "audit trail" in body


def test_admin_cancel_action_calls_the_domain_and_records_reason(admin_client):
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=3)
    booking = BookingFactory(start=start)
    url = reverse("admin:bookings_booking_changelist")
    confirm = admin_client.post(
        url, {"action": "cancel_bookings", "_selected_action": [booking.pk]}
    )
    assert confirm.status_code == 200
    assert b"Cancel bookings" in confirm.content
    done = admin_client.post(
        url,
        {"action": "cancel_bookings", "_selected_action": [booking.pk], "apply": "1",
         "reason": "BROKEN_CHARGER", "note": "cable cut"},
        follow=True,
    )  # fmt: skip
    assert done.status_code == 200
    assert [str(m) for m in done.context["messages"]] == ["Canceled 1 booking(s)."]
    assert list(admin_client.get(url).context["messages"]) == []  # shown once
    booking.refresh_from_db()
    assert booking.status == Status.CANCELED
    assert booking.canceled_reason == "BROKEN_CHARGER"
    assert booking.canceled_by_role == "CPO"
    row = BookingTransition.objects.get(booking=booking, to_status=Status.CANCELED)
    assert row.actor_label == "root" and "cable cut" in row.reason


def test_admin_cannot_delete_or_add_bookings(admin_client):
    booking = BookingFactory()
    assert admin_client.get(reverse("admin:bookings_booking_add")).status_code == 403
    delete = reverse("admin:bookings_booking_delete", args=[booking.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Booking.objects.filter(pk=booking.pk).exists()


def test_admin_booking_times_are_on_the_locations_clock_and_labelled(admin_client):
    booking = BookingFactory(
        start=datetime(2027, 10, 31, 1, 30, tzinfo=UTC),
        duration=timedelta(hours=1),
    )
    assert booking.location.time_zone == "Europe/Amsterdam"
    html = admin_client.get(reverse("admin:bookings_booking_changelist")).content.decode()
    assert "2027-10-31 02:30 (CET, UTC+1)" in html and "2027-10-31 03:30 (CET, UTC+1)" in html
    assert "Times are UTC unless labelled with another zone." in html
    url = reverse("admin:bookings_booking_change", args=[booking.pk])
    html = admin_client.get(url).content.decode()
    assert "2027-10-31 02:30 (CET, UTC+1) – 2027-10-31 03:30 (CET, UTC+1)" in html
