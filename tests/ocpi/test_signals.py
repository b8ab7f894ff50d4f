"""The after-commit nudge of the push sweep: every committed audit row leads to a queued sweep
soon, at most one per debounce window across processes (Redis) and no Redis call at all while
this process knows a queued sweep will still see its commits."""

from datetime import UTC, datetime, timedelta

import pytest

from bookings.services import Actor, ChargerState, booking_create, booking_record_charger_states
from ocpi import signals
from ocpi.tasks import push_sweep_task
from tests.bookings.factories import BookingFactory
from tests.locations.factories import BookingPolicyFactory, EVSEFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis():
    client = signals._redis()
    client.delete(signals.NUDGE_KEY)
    yield client
    client.delete(signals.NUDGE_KEY)


class Queued(list):
    """The sweeps queued (their countdowns), and this process's clock, set by the test."""

    clock = 1000.0


@pytest.fixture
def queued(monkeypatch, redis):
    calls = Queued()
    monkeypatch.setattr(push_sweep_task, "apply_async", lambda countdown: calls.append(countdown))
    monkeypatch.setattr(signals, "_clock", lambda: calls.clock)
    monkeypatch.setattr(signals, "_covered_until", 0.0)
    return calls


def test_nudge_queues_one_sweep_and_sets_the_debounce_key(queued, redis):
    signals.nudge()
    assert queued == [signals.NUDGE_DEBOUNCE_MS / 1000]
    assert 0 < redis.pttl(signals.NUDGE_KEY) <= signals.NUDGE_DEBOUNCE_MS


def test_nudge_within_the_window_skips_redis_then_nudges_again(queued, redis):
    signals.nudge()
    redis.delete(signals.NUDGE_KEY)  # had this process asked Redis, it would queue again
    signals.nudge()
    assert len(queued) == 1 and not redis.exists(signals.NUDGE_KEY)
    queued.clock += signals.NUDGE_DEBOUNCE_MS / 1000  # the queued sweep has run by now
    signals.nudge()
    assert len(queued) == 2 and redis.exists(signals.NUDGE_KEY)


def test_nudge_relies_on_a_sweep_another_process_queued_only_until_it_runs(queued, redis):
    redis.set(signals.NUDGE_KEY, 1, px=100)  # another process queued a sweep 100 ms from now
    signals.nudge()
    assert queued == []
    assert signals._covered_until <= queued.clock + 0.1
    redis.delete(signals.NUDGE_KEY)
    queued.clock += 0.1
    signals.nudge()
    assert len(queued) == 1


def test_a_committed_booking_nudges_once(queued, django_capture_on_commit_callbacks):
    evse = EVSEFactory()
    BookingPolicyFactory(location=evse.charge_point.location)
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        booking_create(evse=evse, start=start, end=start + timedelta(hours=1),
                       actor=Actor.system())  # fmt: skip
    assert len(callbacks) == 1 and len(queued) == 1


def test_a_batch_of_charger_states_nudges(queued, django_capture_on_commit_callbacks):
    booking = BookingFactory()
    with django_capture_on_commit_callbacks(execute=True):
        booking_record_charger_states(
            updates=[ChargerState(booking_id=booking.pk, state="HELD", actor=Actor.system())]
        )
    assert len(queued) == 1
