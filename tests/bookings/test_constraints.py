"""The database's own guarantees, checked with the Python rules bypassed."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bookings.exceptions import SlotUnavailable
from bookings.models import Booking, BookingTransition, Status, tstzrange
from bookings.services import Actor, booking_create
from locations.models import Location
from tests.bookings.factories import BookingFactory, BookingTransitionFactory
from tests.locations.factories import BookingPolicyFactory, EVSEFactory, LocationFactory

pytestmark = pytest.mark.django_db


def test_booking_no_overlap_per_evse_rejects_second_blocking_booking():
    first = BookingFactory(status=Status.RESERVED)
    with pytest.raises(IntegrityError, match="booking_no_overlap_per_evse"), transaction.atomic():
        BookingFactory(evse=first.evse, start=first.period.lower + timedelta(minutes=30),
                       status=Status.PENDING)  # fmt: skip


def test_booking_no_overlap_allows_back_to_back_and_other_evse():
    first = BookingFactory()
    BookingFactory(evse=first.evse, start=first.period.upper)  # [) bounds: touching is fine
    BookingFactory(start=first.period.lower)  # another EVSE
    assert Booking.objects.count() == 3


def test_booking_no_overlap_ignores_final_states():
    first = BookingFactory(status=Status.REJECTED, evse__charge_point__location__ocpi_id="X1")
    BookingFactory(evse=first.evse, start=first.period.lower)
    assert Booking.objects.blocking().count() == 1


def test_booking_no_overlap_includes_the_buffer():
    first = BookingFactory(buffer=timedelta(minutes=10))
    with pytest.raises(IntegrityError), transaction.atomic():
        BookingFactory(evse=first.evse, start=first.period.upper + timedelta(minutes=5))
    BookingFactory(evse=first.evse, start=first.period.upper + timedelta(minutes=10))


def test_booking_period_bounded_rejects_empty_and_inverted_periods():
    start = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        BookingFactory(period=tstzrange(start, start))
    with pytest.raises(IntegrityError), transaction.atomic():
        BookingFactory(period=tstzrange(start, None))


def test_booking_canceled_fields_match_status():
    with pytest.raises(IntegrityError, match="booking_canceled_fields"), transaction.atomic():
        BookingFactory(status=Status.CANCELED, canceled_at=None)


def test_booking_status_valid_rejects_unknown_state():
    booking = BookingFactory()
    with pytest.raises(IntegrityError, match="booking_status_valid"), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(status="CONFIRMED")


def test_booking_unique_request_id_per_party():
    kwargs = dict(channel=Booking.Channel.OCPI, emsp_country_code="DE", emsp_party_id="EMS",
                  request_id="REQ-1")  # fmt: skip
    BookingFactory(**kwargs)
    with pytest.raises(IntegrityError), transaction.atomic():
        BookingFactory(**kwargs)


def test_transition_rows_are_append_only_in_the_database():
    row = BookingTransitionFactory()
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        BookingTransition.objects.filter(pk=row.pk).update(reason="rewritten")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        BookingTransition.objects.filter(pk=row.pk).delete()
    with pytest.raises(RuntimeError):
        row.save()


@pytest.mark.django_db(transaction=True)
def test_booking_create_concurrent_32_sessions_exactly_one_wins():
    evse = EVSEFactory()
    BookingPolicyFactory(location=evse.charge_point.location)
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    sessions = 32
    barrier = threading.Barrier(sessions)
    results: list[object] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        try:
            barrier.wait()
            # Each thread books a different overlapping slot, so Python's checks may all pass.
            offset = timedelta(minutes=15 * (i % 4))
            booking = booking_create(
                evse=evse, start=start + offset, end=start + offset + timedelta(hours=1),
                actor=Actor.system("test"),
            )  # fmt: skip
            outcome: object = booking.pk
        except SlotUnavailable as error:
            outcome = error
        except Exception as error:
            outcome = error
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if isinstance(r, int)]
    refusals = [r for r in results if isinstance(r, SlotUnavailable)]
    assert len(results) == sessions
    assert len(wins) == 1, results
    assert len(refusals) == sessions - 1, [r for r in results if not isinstance(r, int)]
    assert all(r.code == "slot_unavailable" for r in refusals)
    assert Booking.objects.blocking().filter(evse=evse).count() == 1


# --- the booking's location: a foreign key, and its EVSE's (a trigger; see Booking.location) --


def _sql(statement, params):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def test_booking_location_must_be_its_evse_location():
    booking = BookingFactory()
    elsewhere = LocationFactory()
    refused = pytest.raises(IntegrityError, match="is not the location of its EVSE")
    with refused, transaction.atomic():
        BookingFactory(location=elsewhere, evse=booking.evse, start=booking.period.upper)
    with refused:
        _sql(
            "UPDATE bookings_booking SET location_id = %s WHERE id = %s", [elsewhere.pk, booking.pk]
        )
    other = EVSEFactory(charge_point__location=elsewhere)
    with refused:
        _sql("UPDATE bookings_booking SET evse_id = %s WHERE id = %s", [other.pk, booking.pk])
    # Both together, as a move to another location would write them, are consistent.
    _sql(
        "UPDATE bookings_booking SET evse_id = %s, location_id = %s WHERE id = %s",
        [other.pk, elsewhere.pk, booking.pk],
    )
    booking.refresh_from_db()
    assert booking.location_id == elsewhere.pk


def _immediate_foreign_keys():
    # Django declares foreign keys DEFERRABLE INITIALLY DEFERRED: checked at commit, which a
    # test's transaction never reaches. Checked at once here, as a commit would.
    _sql("SET CONSTRAINTS ALL IMMEDIATE", [])


def test_booking_without_evse_needs_an_existing_location():
    _immediate_foreign_keys()
    refused = BookingFactory(status=Status.REJECTED, evse=None, location=LocationFactory())
    assert refused.evse_id is None
    missing = Location(pk=10**9)
    with pytest.raises(IntegrityError, match="foreign key"), transaction.atomic():
        BookingFactory(status=Status.REJECTED, evse=None, location=missing)


def test_location_with_bookings_cannot_be_deleted_even_bypassing_the_orm():
    _immediate_foreign_keys()
    location = LocationFactory()
    BookingFactory(status=Status.REJECTED, evse=None, location=location)
    with pytest.raises(IntegrityError, match="still referenced"):
        _sql("DELETE FROM locations_location WHERE id = %s", [location.pk])
    assert _sql("DELETE FROM locations_location WHERE id = %s", [LocationFactory().pk]) == 1


@pytest.mark.django_db(transaction=True)
def test_location_deleted_while_a_booking_is_written_leaves_no_orphan():
    # Whichever commits first wins; the other one fails as a whole.
    from django.db import connections

    location = LocationFactory()
    inserted, outcome = threading.Event(), {}

    def delete_location():
        inserted.wait(10)
        try:
            outcome["deleted"] = _sql("DELETE FROM locations_location WHERE id = %s", [location.pk])
        except IntegrityError as error:
            outcome["error"] = str(error)
        finally:
            connections.close_all()

    deleter = threading.Thread(target=delete_location)
    deleter.start()
    booked = True
    try:
        with transaction.atomic():
            BookingFactory(status=Status.REJECTED, evse=None, location=location)
            inserted.set()
            deleter.join(10)
    except IntegrityError:
        booked = False
    deleter.join(10)
    location_left = Location.objects.filter(pk=location.pk).exists()
    assert booked == location_left == ("error" in outcome)
    assert not Booking.objects.exclude(location__in=Location.objects.all()).exists()
