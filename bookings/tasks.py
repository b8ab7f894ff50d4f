"""Beat sweeps: the database says what is due, so a restart of Redis, a worker or beat loses
nothing (ARCHITECTURE.md). Each sweep claims rows in short transactions and calls services;
the charger round trips happen in chargers.tasks, outside any transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from chargers import tasks as charger_tasks
from chargers.models import CLOSED_STATUSES, ChargerReservation, Reservation
from chargers.services import reservation_retry_due
from locations.models import BookingPolicy, Capability

from .exceptions import BookingError
from .models import Booking, BookingRequest, RequestStatus, Status
from .services import Actor, booking_expire_undecided, booking_mark_no_show, fulfil_window

SWEEP_BATCH = 250  # bookings per reserve task: one bus round each, spread over the workers
SWEEP_LIMIT = 5000  # per run; the next run picks up the rest
DEFAULT_LEAD_MINUTES = BookingPolicy._meta.get_field("reserve_lead_minutes").default
FLAG_LOOKBACK = timedelta(days=1)


def _chunks(ids: list[int], size: int):
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def _max_lead() -> timedelta:
    lead = BookingPolicy.objects.aggregate(m=Max("reserve_lead_minutes"))["m"]
    return timedelta(minutes=max(lead or 0, DEFAULT_LEAD_MINUTES))


def _reservable_bookings():
    return Booking.objects.filter(
        status=Status.RESERVED, evse__capabilities__contains=[Capability.RESERVABLE]
    )


def reserve_due_ids(now: datetime) -> list[int]:
    """Bookings whose charger should get a ReserveNow now: inside their lead window (their
    policy's reserve_lead_minutes) and never sent, refused or offline and due a retry, or lost
    while sending. Moved bookings are found by release_due_ids. Runs on values, not models:
    a sweep must stay cheap with thousands of bookings in their window."""
    lead = Coalesce(
        "evse__booking_policy__reserve_lead_minutes",
        "location__booking_policy__reserve_lead_minutes",
        Value(DEFAULT_LEAD_MINUTES),
    )  # the policy_for rule: the EVSE's override, else the location's, else the default
    upcoming = Q(period__startswith__gt=now, period__startswith__lte=now + _max_lead())
    # An OCPI RESERVE_NOW booking starts when made and is held for as long as it lasts
    # (chargers.tasks.in_reserve_window).
    immediate = Q(
        channel=Booking.Channel.COMMAND, period__startswith__lte=now, period__endswith__gt=now
    )
    rows = (
        _reservable_bookings()
        .filter(upcoming | immediate)
        .annotate(lead=lead)
        .values_list("pk", "period", "lead", "channel")[:SWEEP_LIMIT]
    )
    in_window = [
        pk
        for pk, period, minutes, channel in rows
        if period.lower - timedelta(minutes=minutes) <= now
        and now < (period.upper if channel == Booking.Channel.COMMAND else period.lower)
    ]
    current = {
        r.booking_id: r
        for r in Reservation.objects.current()
        .filter(booking_id__in=in_window)
        .only("booking_id", "status", "next_attempt_at", "sent_at", "updated_at")
    }
    return [pk for pk in in_window if pk not in current or reservation_retry_due(current[pk], now)]


def release_due_ids(now: datetime) -> list[int]:
    """Bookings with a placement at a charger they no longer want: cancelled or finished, moved
    (another EVSE or time), or a CancelReservation not yet confirmed."""
    rows = list(
        Reservation.objects.filter(
            Q(is_current=True) & ~Q(status__in=CLOSED_STATUSES)
            | Q(status=ChargerReservation.CANCEL_DUE)
        ).values_list("booking_id", "status", "is_current", "evse_id", "expires_at")[:SWEEP_LIMIT]
    )
    due = {row[0] for row in rows if row[1] == ChargerReservation.CANCEL_DUE}
    held = {booking_id: (evse_id, expires_at) for booking_id, _, current, evse_id, expires_at
            in rows if current}  # fmt: skip
    bookings = Booking.objects.filter(pk__in=list(held)).values_list(
        "pk", "status", "evse_id", "period", "terms", "evse__capabilities"
    )
    for pk, status, evse_id, period, terms, capabilities in bookings:
        expires_at = fulfil_window(Booking(period=period, terms=terms)).end
        wanted = (
            status == Status.RESERVED
            and Capability.RESERVABLE in (capabilities or [])
            and held[pk] == (evse_id, expires_at)
        )
        if not wanted:
            due.add(pk)
    return sorted(due)


def unheld_started_ids(now: datetime) -> list[int]:
    """Bookings that started without a held reservation and are not flagged yet."""
    return list(
        _reservable_bookings()
        .filter(
            needs_attention=False,
            period__startswith__lte=now,
            period__startswith__gt=now - FLAG_LOOKBACK,
        )
        .exclude(
            charger_reservation__in=[ChargerReservation.HELD, ChargerReservation.NOT_SUPPORTED]
        )
        # An OCPI RESERVE_NOW starts when made; its eMSP learns the outcome from the command.
        .exclude(channel=Booking.Channel.COMMAND)
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )


def sweep_reservations(*, now: datetime | None = None, enqueue: bool = True) -> dict[str, int]:
    """Cancel what bookings no longer want, send due ReserveNows (batched over the workers),
    and flag bookings that started without a hold. With enqueue=False, runs in-process."""
    now = now or timezone.now()
    released = release_due_ids(now)
    if released:
        charger_tasks.release_bookings(released, now=now)
    due = reserve_due_ids(now)
    for chunk in _chunks(due, SWEEP_BATCH):
        if enqueue:
            charger_tasks.reserve_now_batch_task.delay(chunk)
        else:
            charger_tasks.reserve_bookings(chunk, now=now)
    flagged = charger_tasks.flag_unheld(unheld_started_ids(now), now=now)
    return {"released": len(released), "reserve": len(due), "flagged": flagged}


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
            charger_tasks.cancel_reservation_task.delay(booking_id)
        else:
            charger_tasks.release_bookings([booking_id], now=now)
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


@shared_task(acks_late=True)
def sweep_reservations_task() -> dict[str, int]:
    return sweep_reservations()


@shared_task(acks_late=True)
def sweep_no_shows_task() -> int:
    return len(sweep_no_shows())


@shared_task(acks_late=True)
def sweep_undecided_task() -> int:
    return len(sweep_undecided())
