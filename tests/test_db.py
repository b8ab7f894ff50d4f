"""Timestamps read back exactly as written, in UTC, through the C timestamptz loader; prepared
statements (config.db.Prepared)."""

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import DatabaseError, connection, connections, transaction
from psycopg import pq

from bookings.models import Booking
from config.db import Prepared, UTCTimestamptzLoader, execute_prepared
from tests.bookings.factories import BookingFactory

pytestmark = pytest.mark.django_db


def test_timestamps_round_trip_exactly_in_utc():
    start = datetime(2027, 3, 28, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2)))
    booking = BookingFactory(start=start, duration=timedelta(minutes=45))
    again = Booking.objects.get(pk=booking.pk)
    assert again.period.lower == start and again.period.lower.tzinfo is UTC
    assert again.period.upper == start + timedelta(minutes=45)
    assert again.last_updated == booking.last_updated and again.last_updated.tzinfo is UTC
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz, NULL::timestamptz", [start])
        assert cursor.fetchone() == (start, None)
        loader = cursor.cursor.adapters.get_loader(1184, pq.Format.TEXT)
    assert loader is UTCTimestamptzLoader


_names = itertools.count()


def _statements():
    n = next(_names)  # names of their own: another test's connection may know the same ones
    return (
        Prepared(f"test_add_{n}", "SELECT %s::int + %s::int, '100%%'"),
        Prepared(f"test_now_{n}", "SELECT 'no parameters'"),
    )


def test_prepared_statements_are_prepared_once_per_connection(django_assert_num_queries):
    add, plain = _statements()
    assert add.prepare_sql.endswith("SELECT $1::int + $2::int, '100%'")
    assert add.execute_sql == f"{add.name}(%s, %s)".join(["EXECUTE ", ""])
    # PREPARE both, then both EXECUTEs in one string.
    with django_assert_num_queries(2), connection.cursor() as cursor:
        execute_prepared(cursor, [(add, [2, 3]), (plain, [])])
        assert cursor.fetchone() == (5, "100%")
        cursor.nextset()
        assert cursor.fetchone() == ("no parameters",)
    with django_assert_num_queries(1), connection.cursor() as cursor:
        execute_prepared(cursor, [(add, [40, 2]), (add, ["1", "1"])])
        assert cursor.fetchone() == (42, "100%")
        cursor.nextset()
        assert cursor.fetchone() == (2, "100%")


@pytest.mark.django_db(transaction=True)
def test_prepared_statements_lost_by_the_session_are_prepared_again():
    add, _ = _statements()
    with connection.cursor() as cursor:
        execute_prepared(cursor, [(add, [1, 1])])
        cursor.execute("DEALLOCATE ALL")
        # Outside a transaction: prepared again and run, the caller sees nothing.
        execute_prepared(cursor, [(add, [2, 2])])
        assert cursor.fetchone()[0] == 4
        cursor.execute("DEALLOCATE ALL")
        # Inside one, the transaction is aborted: the error goes to the caller, once.
        with pytest.raises(DatabaseError, match="does not exist"), transaction.atomic():
            execute_prepared(connection.cursor(), [(add, [3, 3])])
        execute_prepared(cursor, [(add, [4, 4])])
        assert cursor.fetchone()[0] == 8


@pytest.mark.django_db(transaction=True)
def test_health_check_sends_no_query_on_a_quiet_connection_and_catches_a_dead_one(monkeypatch):
    import psycopg
    from django.core.signals import request_started

    checks = []  # Django's SELECT 1 check, counted (it bypasses the query log)
    wrapper = type(connections["default"])
    original = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda self: checks.append(1) or original(self))
    assert connection.health_check_enabled

    def backend_pid():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    pid = backend_pid()
    request_started.send(sender=None)  # a new request: its health check is due
    assert backend_pid() == pid and checks == []  # the same session, and no SELECT 1
    # The server ends the session between two requests: the next one gets a new connection.
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None,
        port=settings["PORT"] or None, password=settings["PASSWORD"] or None, autocommit=True,
    ) as other:  # fmt: skip
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        other.execute("SELECT pg_sleep(0.05)")  # the FATAL message reaches the socket
    request_started.send(sender=None)
    assert backend_pid() != pid and checks == [1]


def test_built_instances_are_loaded_rows_and_init_listeners_still_hear_them():
    from django.db.models.signals import post_init

    from config import loading
    from locations.models import Location
    from tests.locations.factories import LocationFactory

    location = LocationFactory(name="Before")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {loading.columns(Location, 'l')} FROM locations_location l WHERE l.id = %s",
            [location.pk],
        )
        row = cursor.fetchone()
    built = loading.build(Location, row)
    stored = Location.objects.get(pk=location.pk)
    for field in Location._meta.concrete_fields:
        assert getattr(built, field.attname) == getattr(stored, field.attname), field.name
    assert (built._state.adding, built._state.db) == (False, "default")
    built.name = "After"
    built.save(update_fields=["name"])  # an UPDATE of the loaded row, not an INSERT
    assert Location.objects.get(pk=location.pk).name == "After"
    assert Location.objects.count() == 1

    heard = []

    def listener(sender, instance, **kwargs):
        heard.append(instance)

    post_init.connect(listener, sender=Location)
    try:
        again = loading.build(Location, row)
    finally:
        post_init.disconnect(listener, sender=Location)
    assert heard == [again]
