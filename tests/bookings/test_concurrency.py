"""Many threads book and move bookings on the same few EVSEs at once: every outcome is a booking
or a clear refusal, nothing is double-booked, no booking disappears during a move."""

import random
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from bookings.availability import Interval, clip, local_day_window, merge
from bookings.exceptions import BookingError
from bookings.models import BLOCKING_STATUSES_SQL, Booking, BookingTransition, Status
from bookings.selectors import location_availability
from bookings.services import (
    Actor,
    RequestData,
    TokenData,
    booking_cancel,
    booking_change,
    booking_create,
    booking_request_submit,
)
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    LocationFactory,
)

AMS = ZoneInfo("Europe/Amsterdam")
DAY = datetime(2026, 6, 2).date()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
FIRST = datetime(2026, 6, 2, 8, 0, tzinfo=AMS)
STEP = timedelta(minutes=15)
THREADS = 8
OPERATIONS = 25


def overlapping_pairs() -> int:
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT count(*) FROM bookings_booking a JOIN bookings_booking b
              ON a.evse_id = b.evse_id AND a.id < b.id AND a.blocked_period && b.blocked_period
            WHERE a.status IN ({BLOCKING_STATUSES_SQL}) AND b.status IN ({BLOCKING_STATUSES_SQL})
            """
        )
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_and_moves_never_double_book():
    location = LocationFactory()
    BookingPolicyFactory(location=location, min_duration_minutes=15, buffer_minutes=5)
    cp = ChargePointFactory(location=location)
    evses = [EVSEFactory(charge_point=cp, ocpp_evse_id=i) for i in (1, 2)]
    made: list[int] = []
    unexpected: list[BaseException] = []
    counts = {"created": 0, "moved": 0, "refused": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        actor = Actor.system(f"thread {seed}")
        try:
            barrier.wait()
            for _ in range(OPERATIONS):
                evse = rng.choice(evses)
                start = FIRST + rng.randrange(0, 16) * STEP  # 08:00-12:00: heavy contention
                end = start + rng.randrange(2, 6) * STEP
                try:
                    with lock:
                        target = rng.choice(made) if made and rng.random() < 0.4 else None
                    if target is None:
                        booking = booking_create(evse=evse, start=start, end=end, actor=actor,
                                                 now=NOW)  # fmt: skip
                        with lock:
                            made.append(booking.pk)
                            counts["created"] += 1
                    elif rng.random() < 0.85:
                        booking_change(booking=target, actor=actor, evse=evse, start=start,
                                       end=end, now=NOW)  # fmt: skip
                        with lock:
                            counts["moved"] += 1
                    else:
                        booking_cancel(booking=target, actor=actor, now=NOW)
                except BookingError:
                    with lock:
                        counts["refused"] += 1
        except BaseException as error:  # anything but a refusal is a failure of the test
            unexpected.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert unexpected == []
    assert counts["created"] > 0 and counts["moved"] > 0 and counts["refused"] > 0
    assert overlapping_pairs() == 0
    # Every booking ever created is still one row, in a state its transitions explain.
    assert Booking.objects.count() == len(made) == counts["created"]
    assert set(Booking.objects.values_list("status", flat=True)) <= {
        Status.RESERVED, Status.CANCELED,
    }  # fmt: skip
    assert (
        BookingTransition.objects.filter(event=BookingTransition.Event.CHANGED).count()
        <= (counts["moved"])
    )
    # Free time and booked time (with its buffer) still tile the day exactly.
    window = local_day_window(DAY, AMS)
    result = location_availability(
        location=location, start=window.start, end=window.end, now=NOW, with_bookings=True
    )
    for entry in result.evses:
        booked = clip([Interval(b.blocked_period.lower, b.blocked_period.upper)
                       for b in entry.busy], window)  # fmt: skip
        assert not any(f.overlaps(b) for f in entry.free for b in booked)
        covered = merge([*entry.free, *booked])
        gaps = _gaps(covered, window)
        # Only slivers too short for a booking stay unbookable: under the minimum duration plus
        # the buffer plus one grid step of alignment (15 + 5 + 15 minutes).
        assert all(g.duration < timedelta(minutes=35) for g in gaps), gaps


def _gaps(covered: list[Interval], window: Interval) -> list[Interval]:
    gaps, cursor = [], window.start
    for iv in covered:
        if iv.start > cursor:
            gaps.append(Interval(cursor, iv.start))
        cursor = max(cursor, iv.end)
    if cursor < window.end:
        gaps.append(Interval(cursor, window.end))
    return gaps


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_token_on_many_evses_reserve_one():
    # 16 eMSP BookingRequests at once, one token uid, 16 EVSEs, the same hour: one RESERVED,
    # the others REJECTED for the token (they once all came back RESERVED).
    location = LocationFactory(ocpi_id="LOC-T")
    BookingPolicyFactory(location=location)
    cp = ChargePointFactory(location=location)
    evses = [EVSEFactory(charge_point=cp, ocpp_evse_id=i, uid=f"E{i}") for i in range(1, 17)]
    token = TokenData("DE", "EMS", "04AABBCC", "RFID", "DE-EMS-C1")
    actor = Actor.emsp("DE", "EMS")
    barrier = threading.Barrier(len(evses))
    outcomes: list[str] = []
    unexpected: list[BaseException] = []

    def request(n: int) -> None:
        data = RequestData(
            request_id=f"R-{n}", location_id="LOC-T", evse_uid=f"E{n}", start=FIRST,
            end=FIRST + timedelta(hours=1), authorization_reference=f"A-{n}", tokens=(token,),
        )  # fmt: skip
        try:
            barrier.wait()
            booking = booking_request_submit(
                actor=actor, data=data, payload={"n": n}, now=NOW
            ).booking
            outcomes.append(booking.status)
        except BaseException as error:
            unexpected.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(n,)) for n in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert unexpected == []
    assert sorted(outcomes) == [Status.REJECTED] * 15 + [Status.RESERVED]
    assert Booking.objects.blocking().count() == 1
    refused = Booking.objects.filter(status=Status.REJECTED)
    assert {b.transitions.get().code for b in refused} == {"token_overlap"}
