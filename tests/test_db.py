"""Timestamps read back exactly as written, in UTC, through the C timestamptz loader."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from psycopg import pq

from bookings.models import Booking
from config.db import UTCTimestamptzLoader
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
