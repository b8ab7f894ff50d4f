"""Celery tasks: ids in, one call, the retry policy. Services enqueue these on commit, so the
modules the tasks call are imported inside the task bodies (HackSoft's rule; it keeps the
import graph acyclic). Every task is idempotent: the database says what is still due."""

from __future__ import annotations

import redis
from celery import shared_task
from django.db import DatabaseError

RETRY_ON = (DatabaseError, redis.RedisError)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=2, max_retries=5, acks_late=True)
def reserve_now_task(booking_id: int) -> dict[str, int]:
    """Send ReserveNow for one booking if it is due."""
    from .holds import reserve_bookings

    return reserve_bookings([booking_id])


@shared_task(autoretry_for=RETRY_ON, retry_backoff=2, max_retries=5, acks_late=True)
def reserve_now_batch_task(booking_ids: list[int]) -> dict[str, int]:
    """Send ReserveNow for several bookings in one round of the command bus (the sweep's)."""
    from .holds import reserve_bookings

    return reserve_bookings(booking_ids)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=2, max_retries=5, acks_late=True)
def cancel_reservation_task(booking_id: int) -> None:
    """Cancel what a changed, cancelled or finished booking holds at chargers."""
    from .holds import release_bookings

    release_bookings([booking_id])


@shared_task(autoretry_for=RETRY_ON, retry_backoff=2, max_retries=5, acks_late=True)
def resend_holds_task(charge_point_id: int) -> dict[str, int]:
    """Send again the holds a charger that restarted or reconnected should have."""
    from .holds import resend_lost_holds

    return resend_lost_holds(charge_point_id=charge_point_id)


@shared_task(acks_late=True)
def sweep_reservations_task() -> dict[str, int]:
    from .sweeps import sweep_reservations

    return sweep_reservations()


@shared_task(acks_late=True)
def sweep_no_shows_task() -> int:
    from .sweeps import sweep_no_shows

    return len(sweep_no_shows())


@shared_task(acks_late=True)
def sweep_undecided_task() -> int:
    from .sweeps import sweep_undecided

    return len(sweep_undecided())
