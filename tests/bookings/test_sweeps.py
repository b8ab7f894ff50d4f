"""Beat sweeps that need no charger: undecided requests expire, no-shows, the staff flag."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, RequestStatus, Status
from bookings.sweeps import sweep_no_shows, sweep_reservations, sweep_undecided
from chargers.models import ChargerReservation
from tests.bookings.factories import BookingFactory, BookingRequestFactory

pytestmark = pytest.mark.django_db


def _age(booking, minutes):
    Booking.objects.filter(pk=booking.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )


def test_sweep_undecided_fails_pending_bookings_past_the_timeout(settings):
    settings.BOOKING_PENDING_TIMEOUT_SECONDS = 300
    old = BookingFactory(status=Status.PENDING)
    request = BookingRequestFactory(
        booking=old, request_status=RequestStatus.PENDING,
        received_at=timezone.now() - timedelta(minutes=6),
    )  # fmt: skip
    _age(old, 6)
    fresh = BookingFactory(status=Status.PENDING)
    _age(fresh, 2)

    assert sweep_undecided() == [old.pk]

    old.refresh_from_db()
    fresh.refresh_from_db()
    request.refresh_from_db()
    assert old.status == Status.FAILED
    assert request.request_status == RequestStatus.FAILED
    assert request.reason_code == "expired"
    assert old.transitions.filter(to_status=Status.FAILED, code="expired").exists()
    assert fresh.status == Status.PENDING
    assert sweep_undecided() == []


def test_sweep_undecided_fails_a_stale_change_request_but_keeps_the_booking():
    booking = BookingFactory(status=Status.RESERVED)
    request = BookingRequestFactory(
        booking=booking, request_status=RequestStatus.PENDING,
        received_at=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    assert sweep_undecided() == [booking.pk]
    booking.refresh_from_db()
    request.refresh_from_db()
    assert booking.status == Status.RESERVED
    assert request.request_status == RequestStatus.FAILED


def test_sweep_no_shows_marks_only_bookings_past_their_window():
    now = timezone.now()
    late = BookingFactory(start=now - timedelta(minutes=16))  # noshow_timeout 15 in the terms
    waiting = BookingFactory(start=now - timedelta(minutes=10))
    no_timeout = BookingFactory(start=now - timedelta(minutes=30), terms={})  # until its end
    assert sweep_no_shows(now=now, enqueue=False) == [late.pk]
    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses == {
        late.pk: Status.NO_SHOW, waiting.pk: Status.RESERVED, no_timeout.pk: Status.RESERVED,
    }  # fmt: skip
    assert late.transitions.filter(to_status=Status.NO_SHOW, actor_label="no-show sweep").exists()


def test_sweep_reservations_flags_started_booking_never_held():
    now = timezone.now()
    started = BookingFactory(start=now - timedelta(minutes=1))
    held = BookingFactory(start=now - timedelta(minutes=1),
                          charger_reservation=ChargerReservation.HELD)  # fmt: skip
    result = sweep_reservations(now=now, enqueue=False)
    assert result["flagged"] == 1
    started.refresh_from_db()
    held.refresh_from_db()
    assert started.needs_attention
    assert not held.needs_attention
    assert sweep_reservations(now=now, enqueue=False)["flagged"] == 0
