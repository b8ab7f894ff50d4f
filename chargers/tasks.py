"""Tasks that place and cancel reservations at chargers: (booking ids) -> read -> claim ->
gateway -> record. Never a transaction across the round trip (STYLE rule 7); every step
re-checks the database, so running a task twice sends one ReserveNow per due placement.

Interface code: the booking engine is imported inside the functions (bookings depends on
chargers, STYLE.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis
from celery import shared_task
from django.db import DatabaseError, transaction
from django.utils import timezone

from locations.models import ConnectorFormat, ConnectorStandard
from locations.selectors import policy_for

from . import gateway, services
from .models import ATTEMPT_STATES, ChargerReservation, Reservation

RS = ChargerReservation
logger = logging.getLogger("chargers.tasks")

# OCPI TokenType -> OCPP 2.0.1 IdTokenEnumType.
TOKEN_TYPES = {"RFID": "ISO14443", "EMAID": "eMAID"}

# OCPI connector standard -> OCPP 2.0.1 ConnectorEnumType (cabled "c", socket "s").
CONNECTOR_TYPES = {
    ConnectorStandard.IEC_62196_T1_COMBO: "cCCS1",
    ConnectorStandard.IEC_62196_T2_COMBO: "cCCS2",
    ConnectorStandard.CHADEMO: "cG105",
    ConnectorStandard.CHAOJI: "cChaoJi",
    ConnectorStandard.GBT_DC: "cGBT",
    ConnectorStandard.TESLA_S: "cTesla",
    ConnectorStandard.IEC_62196_T1: "cType1",
}

RETRY_ON = (DatabaseError, redis.RedisError)
# A placement this long past its expiry has lapsed at the charger even with a skewed clock:
# no CancelReservation is sent for it any more.
CANCEL_AFTER_EXPIRY = timedelta(minutes=10)


def _connector_type(connector) -> str:
    if connector is None:
        return ""
    if connector.standard == ConnectorStandard.IEC_62196_T2:
        return "cType2" if connector.format == ConnectorFormat.CABLE else "sType2"
    return CONNECTOR_TYPES.get(connector.standard, "")


def placement_for(booking) -> services.Placement | None:
    """Where the booking should be held: its EVSE, first token, until its no-show deadline.
    None when its EVSE cannot take reservations."""
    from bookings.services import fulfil_window

    if booking.evse is None or not booking.evse.reservable:
        return None
    tokens = list(booking.tokens.all())
    if tokens:
        id_tag, token_type = tokens[0].uid, TOKEN_TYPES.get(tokens[0].type, "Central")
    else:  # a booking without tokens is held for its authorization reference
        id_tag, token_type = booking.authorization_reference[:20], "Central"
    return services.Placement(
        evse=booking.evse,
        id_tag=id_tag,
        token_type=token_type,
        expires_at=fulfil_window(booking).end,
        connector_type=_connector_type(booking.connector),
    )


def reserve_lead(booking) -> timedelta:
    return timedelta(minutes=policy_for(booking.evse, booking.location).reserve_lead_minutes)


def load_bookings(booking_ids: Iterable[int]):
    from bookings.models import Booking

    return (
        Booking.objects.filter(pk__in=list(booking_ids))
        .select_related(
            "evse__charge_point", "evse__booking_policy", "location__booking_policy", "connector"
        )
        .prefetch_related("tokens")
        .order_by("pk")
    )


def in_reserve_window(booking, now: datetime) -> bool:
    if booking.channel == booking.Channel.COMMAND:
        # An OCPI RESERVE_NOW starts when it is made: it is due for as long as it lasts.
        return booking.start - reserve_lead(booking) <= now < booking.end
    return booking.start - reserve_lead(booking) <= now < booking.start


def reserve_bookings(booking_ids: Iterable[int], *, now: datetime | None = None) -> dict:
    """Send ReserveNow for every given booking that is due now (all in one round of the bus),
    after cancelling placements they no longer want. Returns counts by outcome.

    The batch's claims and its outcomes are written in a few set-based queries each, so a
    sweep of a thousand bookings costs tens of queries, not thousands."""
    from bookings.models import Status
    from bookings.services import booking_record_charger_states

    now = now or timezone.now()
    started = time.monotonic()
    with transaction.atomic():
        bookings = {}
        placements = {}
        for booking in load_bookings(booking_ids):
            if booking.status != Status.RESERVED or not in_reserve_window(booking, now):
                continue
            placement = placement_for(booking)
            if placement is not None:
                bookings[booking.pk] = booking
                placements[booking.pk] = placement
        claimed = services.reservations_claim(placements=placements, now=now)
    # A claim for a new placement marked the old one CANCEL_DUE: cancel it before reserving,
    # so a charger never holds two places for one booking.
    _cancel(
        list(Reservation.objects.filter(booking_id__in=list(claimed), status=RS.CANCEL_DUE)),
        now=now,
    )
    commands = {
        reservation.pk: gateway.reserve_now_command(
            charge_point_id=bookings[booking_id].evse.charge_point.identity,
            reservation_id=reservation.pk,
            evse_id=bookings[booking_id].evse.ocpp_evse_id,
            expires_at=reservation.expires_at,
            id_tag=reservation.id_tag,
            token_type=reservation.token_type,
            connector_type=reservation.connector_type or None,
        )
        for booking_id, reservation in claimed.items()
    }
    sending = time.monotonic()
    try:
        replies = gateway.send(list(commands.values()))
    except redis.RedisError as error:
        # Give the claims back so Celery's retry of this task sends them at once (a resent
        # ReserveNow with the same reservation id only replaces one that got through).
        services.reservations_unclaim(
            reservation_ids=list(commands), detail=f"Command bus error: {error}", now=now
        )
        raise
    recording = time.monotonic()
    counts: dict[str, int] = {}
    with transaction.atomic():
        recorded = services.reservations_record_replies(
            replies={
                pk: (replies[c.id].status, replies[c.id].detail) for pk, c in commands.items()
            },
            now=now,
        )
        updates = []
        for reservation in recorded:
            counts[reservation.status] = counts.get(reservation.status, 0) + 1
            if reservation.is_current:
                update = _summary(bookings[reservation.booking_id], reservation)
                if update is not None:
                    updates.append(update)
        booking_record_charger_states(updates=updates, now=now)
    _cancel([r for r in recorded if not r.is_current and r.status == RS.CANCEL_DUE], now=now)
    if claimed:
        logger.info(
            "ReserveNow x%d: claim %.2f s, charger round trip %.2f s, record %.2f s: %s",
            len(claimed), sending - started, recording - sending, time.monotonic() - recording,
            counts,
        )  # fmt: skip
    return counts


def _summary(booking, reservation: Reservation):
    """The booking's new hold state for its current placement's outcome: the placement's own
    state, with a detail for staff. None when the placement is no longer being attempted."""
    from bookings.services import Actor, ChargerState

    state = RS(reservation.status)
    if state not in ATTEMPT_STATES:
        return None
    if state == RS.HELD:
        detail = f"Held at the charger until {reservation.expires_at:%H:%M} UTC."
    else:
        retry = reservation.next_attempt_at
        detail = reservation.detail or state.label
        if retry is not None and retry < booking.start:
            detail += f" Retrying at {retry:%H:%M:%S} UTC (attempt {reservation.attempts + 1})."
    return ChargerState(
        booking_id=booking.pk, state=state, detail=detail,
        actor=Actor.charger(booking.evse.charge_point.identity),
        needs_attention=False if state == RS.HELD else None,
    )  # fmt: skip


def _cancel(reservations: list[Reservation], *, now: datetime) -> None:
    """Send CancelReservation for placements the charger may hold; record the answers."""
    live = []
    for reservation in {r.pk: r for r in reservations}.values():
        if reservation.expires_at <= now - CANCEL_AFTER_EXPIRY:
            services.reservation_record_cancel(
                reservation_id=reservation.pk, reply_status="Expired", detail="", now=now
            )
        else:
            live.append(reservation)
    if not live:
        return
    rows = Reservation.objects.filter(pk__in=[r.pk for r in live]).select_related("charge_point")
    commands = {
        r.pk: gateway.cancel_reservation_command(
            charge_point_id=r.charge_point.identity, reservation_id=r.pk
        )
        for r in rows
    }
    replies = gateway.send(list(commands.values()))
    for pk, command in commands.items():
        reply = replies[command.id]
        services.reservation_record_cancel(
            reservation_id=pk, reply_status=reply.status, detail=reply.detail, now=now
        )


def release_bookings(booking_ids: Iterable[int], *, now: datetime | None = None) -> None:
    """Cancel at the charger what bookings no longer want (cancelled, no-show, moved) and tell
    staff; moved bookings still in their window are reserved at their new place."""
    from bookings.models import Status
    from bookings.services import Actor, booking_record_charger_state

    now = now or timezone.now()
    moved = []
    for booking in load_bookings(booking_ids):
        keep = placement_for(booking) if booking.status == Status.RESERVED else None
        to_cancel = services.reservation_release(booking_id=booking.pk, keep=keep, now=now)
        _cancel(to_cancel, now=now)
        if booking.status == Status.RESERVED:
            moved.append(booking.pk)
            still_held = Reservation.objects.current().of_booking(booking.pk).exists()
            if to_cancel and not still_held and not in_reserve_window(booking, now):
                booking_record_charger_state(
                    booking=booking.pk, state=RS.NOT_SENT,
                    detail="Moved: the charger is reserved again shortly before the new start.",
                    actor=Actor.system("charger reservations"), now=now,
                )  # fmt: skip
            continue
        if booking.charger_reservation not in (RS.NOT_SENT, RS.NOT_SUPPORTED, RS.RELEASED):
            left = Reservation.objects.of_booking(booking.pk).filter(status=RS.CANCEL_DUE)
            detail = (
                "CancelReservation pending: the charger did not confirm yet."
                if left.exists()
                else "Reservation cancelled at the charger."
            )
            booking_record_charger_state(
                booking=booking.pk, state=RS.RELEASED, detail=detail,
                actor=Actor.system("charger reservations"), now=now,
            )  # fmt: skip
    if moved:
        reserve_bookings(moved, now=now)


def flag_unheld(booking_ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Flag for staff the bookings that started without a reservation held at the charger."""
    from bookings.models import Status
    from bookings.services import Actor, booking_record_charger_state

    now = now or timezone.now()
    flagged = 0
    for booking in load_bookings(booking_ids):
        if booking.status != Status.RESERVED or booking.needs_attention:
            continue
        if booking.charger_reservation in (RS.HELD, RS.NOT_SUPPORTED):
            continue
        label = booking.get_charger_reservation_display().lower()
        booking_record_charger_state(
            booking=booking.pk, state=booking.charger_reservation,
            detail=f"Started without a reservation held at the charger ({label}).",
            actor=Actor.system("charger reservations"), needs_attention=True, now=now,
        )  # fmt: skip
        flagged += 1
    return flagged


@shared_task(autoretry_for=RETRY_ON, retry_backoff=2, max_retries=5, acks_late=True)
def reserve_now_task(booking_id: int) -> dict:
    """Send ReserveNow for one booking if it is due (idempotent)."""
    return reserve_bookings([booking_id])


@shared_task(autoretry_for=RETRY_ON, retry_backoff=2, max_retries=5, acks_late=True)
def reserve_now_batch_task(booking_ids: list[int]) -> dict:
    """Send ReserveNow for several bookings in one round of the command bus (the sweep's)."""
    return reserve_bookings(booking_ids)


@shared_task(autoretry_for=RETRY_ON, retry_backoff=2, max_retries=5, acks_late=True)
def cancel_reservation_task(booking_id: int) -> None:
    """Cancel what a changed, cancelled or finished booking holds at chargers (idempotent)."""
    release_bookings([booking_id])


def mark_lost_connections() -> int:
    """Mark offline the chargers the database says are connected but no csms holds any more
    (a csms that crashed could not say so itself; its routes expire in Redis)."""
    from locations.models import ChargePoint

    identities = list(
        ChargePoint.objects.filter(is_connected=True).values_list("identity", flat=True)
    )
    held = gateway.connected_of(identities)
    lost = [identity for identity in identities if identity not in held]
    if lost:
        ChargePoint.objects.filter(identity__in=lost, is_connected=True).update(is_connected=False)
    return len(lost)


@shared_task(acks_late=True)
def mark_lost_connections_task() -> int:
    return mark_lost_connections()
