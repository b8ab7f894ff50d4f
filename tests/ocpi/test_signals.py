"""The after-commit nudge of the push sweep (and of the operator API's webhook sweep): every
committed audit row leads to a queued sweep soon, at most one per window across processes
(Redis)."""

from datetime import UTC, datetime, timedelta

import pytest

from api.tasks import webhook_sweep_task
from bookings.services import Actor, ChargerState, booking_create, booking_record_charger_states
from config.celery import SWEEP_SOON_WINDOW_MS, redis_client, sweep_soon_key
from ocpi import signals
from ocpi.tasks import push_sweep_task
from tests.bookings.factories import BookingFactory
from tests.locations.factories import BookingPolicyFactory, EVSEFactory

pytestmark = pytest.mark.django_db


KEY = sweep_soon_key(push_sweep_task)
WINDOW_MS = SWEEP_SOON_WINDOW_MS


@pytest.fixture
def redis():
    client = redis_client()
    keys = [KEY, sweep_soon_key(webhook_sweep_task)]
    client.delete(*keys)
    yield client
    client.delete(*keys)


@pytest.fixture
def queued(monkeypatch, redis):
    calls: list[float] = []  # the countdowns of the push sweeps queued
    monkeypatch.setattr(push_sweep_task, "apply_async", lambda countdown: calls.append(countdown))
    return calls


@pytest.fixture
def webhook_sweeps(monkeypatch, redis):
    calls: list[float] = []
    monkeypatch.setattr(webhook_sweep_task, "apply_async",
                        lambda countdown: calls.append(countdown))  # fmt: skip
    return calls


def test_nudge_queues_one_sweep_and_sets_the_debounce_key(queued, redis):
    signals.nudge()
    assert queued == [WINDOW_MS / 1000]
    assert 0 < redis.pttl(KEY) <= WINDOW_MS


def test_nudges_within_the_window_queue_nothing_more(queued, redis):
    for _ in range(5):
        signals.nudge()
    assert len(queued) == 1
    redis.delete(KEY)  # the window is over (the key expired)
    signals.nudge()
    assert len(queued) == 2


def test_a_window_another_process_opened_queues_nothing_here(queued, redis):
    redis.set(KEY, 1, px=WINDOW_MS)  # its sweep is queued
    signals.nudge()
    assert queued == []


def test_a_committed_booking_nudges_once(
    queued, webhook_sweeps, django_capture_on_commit_callbacks
):
    evse = EVSEFactory()
    BookingPolicyFactory(location=evse.charge_point.location)
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        booking_create(evse=evse, start=start, end=start + timedelta(hours=1),
                       actor=Actor.system())  # fmt: skip
    assert len(queued) == 1
    assert len(webhook_sweeps) == 1  # the operator API's webhooks go out as soon


def test_a_batch_of_charger_states_nudges(queued, django_capture_on_commit_callbacks):
    booking = BookingFactory()
    with django_capture_on_commit_callbacks(execute=True):
        booking_record_charger_states(
            updates=[ChargerState(booking_id=booking.pk, state="HELD", actor=Actor.system())]
        )
    assert len(queued) == 1
