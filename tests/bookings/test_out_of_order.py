"""A charger out of order: its bookings move to a free EVSE with the same kind of current at
the same time, or are cancelled with BROKEN_CHARGER, each with the staff's reason on record."""

from datetime import UTC, datetime, timedelta

import pytest

from bookings import exceptions as exc
from bookings.models import Booking, BookingTransition, CanceledReason, Status
from bookings.services import Actor, charger_out_of_order
from tests.bookings.factories import BookingFactory
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    LocationFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 5, 4, 6, tzinfo=UTC)


def at(hour: int) -> datetime:
    return datetime(2027, 5, 4, tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture
def hub():
    """Charge point A (two AC EVSEs) breaks; charge point B has one AC and one DC EVSE."""
    location = LocationFactory(time_zone="UTC")
    BookingPolicyFactory(location=location, change_until_minutes=60, cancel_until_minutes=60)
    a = ChargePointFactory(location=location, identity="CP-A")
    b = ChargePointFactory(location=location, identity="CP-B")
    evses = {
        "A1": EVSEFactory(charge_point=a, uid="A1"),
        "A2": EVSEFactory(charge_point=a, uid="A2"),
        "B1": EVSEFactory(charge_point=b, uid="B1"),
        "B2": EVSEFactory(charge_point=b, uid="B2", connectors=[]),
    }
    ConnectorFactory(evse=evses["B2"], dc=True, connector_id="1")
    return a, evses


def book(evse, hour, **kwargs):
    return BookingFactory(evse=evse, start=at(hour), duration=timedelta(hours=1), **kwargs)


def test_bookings_move_to_a_free_evse_of_the_same_current_else_are_cancelled(hub, staff_user):
    broken, evses = hub
    early = book(evses["A1"], 10)
    crowded = book(evses["A2"], 10)  # B1 gets `early`; B2 is DC: nowhere to go
    late = book(evses["A1"], 12)
    book(evses["B1"], 12)  # someone else's, so `late` cannot move either
    tomorrow = book(evses["A1"], 30)  # after `until`: left alone
    actor = Actor.staff(staff_user)

    outcome = charger_out_of_order(charge_point=broken, actor=actor, reason="Cable cut",
                                   until=at(24), now=NOW)  # fmt: skip

    assert [(b.pk, f.uid, t.uid) for b, f, t in outcome.moved] == [(early.pk, "A1", "B1")]
    assert {b.pk for b in outcome.canceled} == {crowded.pk, late.pk}
    assert outcome.untouched == []
    early.refresh_from_db()
    assert (early.evse.uid, early.status, early.period.lower) == ("B1", Status.RESERVED, at(10))
    for booking in (crowded, late):
        booking.refresh_from_db()
        assert booking.status == Status.CANCELED
        assert booking.canceled_reason == CanceledReason.BROKEN_CHARGER
    assert Booking.objects.get(pk=tomorrow.pk).status == Status.RESERVED
    audit = BookingTransition.objects.filter(booking__in=[early, crowded, late])
    assert all("Cable cut" in row.reason for row in audit.exclude(event="CREATED"))


def test_cancel_only_cancels_every_booking_of_the_charger(hub, staff_user):
    broken, evses = hub
    first, second = book(evses["A1"], 10), book(evses["A2"], 14)
    outcome = charger_out_of_order(charge_point=broken, actor=Actor.staff(staff_user),
                                   reason="Fire brigade", until=at(24), move=False,
                                   now=NOW)  # fmt: skip
    assert outcome.moved == [] and {b.pk for b in outcome.canceled} == {first.pk, second.pk}


def test_a_reason_is_required(hub, staff_user):
    broken, evses = hub
    book(evses["A1"], 10)
    with pytest.raises(exc.InvalidRequest):
        charger_out_of_order(charge_point=broken, actor=Actor.staff(staff_user), reason=" ",
                             until=at(24), now=NOW)  # fmt: skip
