"""Beat sweeps: the database says what is due, so a restart of Redis, a worker or beat loses
nothing (ARCHITECTURE.md). Each sweep claims rows in short transactions and calls services;
charger round trips (bookings.holds) happen outside any transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import holds
from .exceptions import BookingError
from .models import Booking, BookingRequest, RequestStatus, Status
from .services import Actor, booking_expire_undecided, booking_mark_no_show, fulfil_window
from .tasks import cancel_reservation_task, reserve_now_batch_task

SWEEP_BATCH = 250  # bookings per reserve task: one bus round each, spread over the workers
SWEEP_LIMIT = 5000  # per run; the next run picks up the rest


def _chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def sweep_reservations(*, now: datetime | None = None, enqueue: bool = True) -> dict[str, int]:
    """Reconcile with the chargers (holds accepted before a charger's last boot or connection
    are sent again), cancel what bookings no longer want, send due ReserveNows (batched over
    the workers), and flag bookings that started without a hold. With enqueue=False, runs
    in-process."""
    now = now or timezone.now()
    resend = holds.mark_lost_holds(now=now)
    released = holds.release_due_ids(now, limit=SWEEP_LIMIT)
    if released:
        holds.release_bookings(released, now=now)
    due = holds.reserve_due_ids(now, limit=SWEEP_LIMIT)
    for chunk in _chunks(due, SWEEP_BATCH):
        if enqueue:
            reserve_now_batch_task.delay(chunk)
        else:
            holds.reserve_bookings(chunk, now=now)
    flagged = holds.flag_unheld(holds.unheld_started_ids(now, limit=SWEEP_LIMIT), now=now)
    return {
        "resend": len(resend), "released": len(released), "reserve": len(due), "flagged": flagged
    }  # fmt: skip


def _claim(booking_id: int, **still: Any) -> Booking | None:
    """Lock a booking unless another sweep (or a session start) holds it, and only while it
    still matches `still`. Call inside the transaction that then changes it."""
    return (
        Booking.objects.select_for_update(skip_locked=True).filter(pk=booking_id, **still).first()
    )


def sweep_no_shows(*, now: datetime | None = None, enqueue: bool = True) -> list[int]:
    """RESERVED bookings whose window closed without a session become NO_SHOW, and their
    charger reservation is cancelled."""
    now = now or timezone.now()
    actor = Actor.system("no-show sweep")
    candidates = (
        Booking.objects.filter(status=Status.RESERVED, period__startswith__lt=now)
        .order_by("period")
        .only("pk", "period", "terms")[:SWEEP_LIMIT]
    )
    marked = []
    for candidate in candidates:
        if now <= fulfil_window(candidate).end:
            continue
        with transaction.atomic():
            claimed = _claim(candidate.pk, status=Status.RESERVED)
            if claimed is None:
                continue  # another sweep or a session start has it
            try:
                booking_mark_no_show(booking=claimed, actor=actor, now=now)
            except BookingError:
                continue
        marked.append(candidate.pk)
    for booking_id in marked:
        if enqueue:
            cancel_reservation_task.delay(booking_id)
        else:
            holds.release_bookings([booking_id], now=now)
    return marked


def pending_timeout() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "BOOKING_PENDING_TIMEOUT_SECONDS", 300)))


def sweep_undecided(*, now: datetime | None = None) -> list[int]:
    """PENDING bookings (and PENDING booking requests) never decided within the timeout
    expire as FAILED."""
    now = now or timezone.now()
    cutoff = now - pending_timeout()
    ids = set(
        Booking.objects.filter(status=Status.PENDING, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:SWEEP_LIMIT]
    )
    ids |= set(
        BookingRequest.objects.filter(
            request_status=RequestStatus.PENDING, received_at__lt=cutoff
        ).values_list("booking_id", flat=True)[:SWEEP_LIMIT]
    )
    expired = []
    for booking_id in sorted(ids):
        with transaction.atomic():
            if _claim(booking_id) is None:
                continue
            booking_expire_undecided(booking=booking_id, cutoff=cutoff, now=now)
        expired.append(booking_id)
    return expired
