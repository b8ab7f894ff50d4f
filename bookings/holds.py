"""Holding bookings at their chargers: reserve (ReserveNow), release (CancelReservation), flag
the bookings that started unheld, and what a charger's reports mean for a booking's hold.

Booking logic that talks to chargers through chargers.gateway (the command bus) and records the
charger side through chargers.services. Never a transaction across a round trip (STYLE rule 7):
read and claim, commit, send, then record what came back; every step re-checks the database,
so running a step twice sends one ReserveNow per due placement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis
from django.db import transaction
from django.db.models import Max, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from chargers import gateway
from chargers import services as charger_services
from chargers.models import (
    ATTEMPT_STATES,
    CLOSED_STATUSES,
    ChargerReservation,
    ChargingSession,
    Reservation,
)
from locations.models import EVSE, BookingPolicy, Capability
from locations.selectors import policy_for

from .availability import zone_label
from .exceptions import BookedForOthers, BookingError, Busy
from .models import Booking, Status
from .services import (
    Actor,
    ChargerState,
    TokenData,
    booking_for_session,
    booking_fulfil,
    booking_record_charger_state,
    booking_record_charger_states,
    booking_redeemable_at,
    bookings_redeemable,
    bound_lock_waits,
    check_token_owners,
    fulfil_window,
)

CR = ChargerReservation
logger = logging.getLogger(__name__)

# A placement this long past its expiry has lapsed at the charger even with a skewed clock:
# no CancelReservation is sent for it any more.
CANCEL_AFTER_EXPIRY = timedelta(minutes=10)
DEFAULT_LEAD_MINUTES = BookingPolicy._meta.get_field("reserve_lead_minutes").default
FLAG_LOOKBACK = timedelta(days=1)  # bookings that started longer ago are not flagged any more
SYSTEM = "charger reservations"  # the actor label of hold changes the system decides


def placement_for(booking: Booking) -> charger_services.Placement | None:
    """Where the booking should be held: its EVSE, first token, until its no-show deadline.
    None when its EVSE cannot take reservations."""
    if booking.evse is None or not booking.evse.reservable:
        return None
    id_tag, token_type = booking_id_tag(booking)
    return charger_services.placement(
        evse=booking.evse,
        id_tag=id_tag,
        ocpi_token_type=token_type,
        expires_at=fulfil_window(booking).end,
        connector=booking.connector,
    )


def booking_id_tag(booking: Booking) -> tuple[str, str | None]:
    """The id tag a booking is held for at its charger, and its OCPI token type: its first
    token, else its authorization reference (a booking without tokens)."""
    tokens = list(booking.tokens.all())
    if tokens:
        return tokens[0].uid, tokens[0].type
    return booking.authorization_reference[:20], None


def remote_start_id_tag(
    *,
    evse: EVSE,
    actor: Actor,
    token: TokenData,
    authorization_reference: str = "",
    at: datetime | None = None,
) -> tuple[str, str | None]:
    """Who a remote start (OCPI START_SESSION) on evse starts for: (id tag, OCPI token type).
    An eMSP starts with its own tokens only. While a booking holds the EVSE (its fulfil
    window), only the booking's own token, or a start naming the booking's authorization
    reference, may start there; the latter starts with the id tag the charger holds the EVSE
    for, so the charger lets it through and the session redeems the booking.

    Raises InvalidRequest for another party's token, BookedForOthers for anyone else's start
    on a booked EVSE."""
    check_token_owners(actor, [token])
    at = at or timezone.now()
    booking = booking_redeemable_at(
        bookings_redeemable(evse=evse, at=at).prefetch_related("tokens"), at
    )
    if booking is None:
        return token.uid, token.type
    own = (booking.emsp_country_code, booking.emsp_party_id) == (
        actor.country_code,
        actor.party_id,
    )
    for booked in booking.tokens.all():
        if (booked.uid.upper(), booked.country_code.upper(), booked.party_id.upper()) == (
            token.uid.upper(), token.country_code.upper(), token.party_id.upper()
        ):  # fmt: skip
            return token.uid, token.type
    reference = authorization_reference.upper()
    if own and reference and reference == booking.authorization_reference.upper():
        return booking_id_tag(booking)
    raise BookedForOthers(
        f"EVSE {evse.uid} is booked until {booking.period.upper:%H:%M} UTC for another driver."
    )


def reserve_lead(booking: Booking) -> timedelta:
    """How long before its start a booking is held at the charger (its policy's lead)."""
    return timedelta(minutes=policy_for(booking.evse, booking.location).reserve_lead_minutes)


def load_bookings(booking_ids: Iterable[int]) -> QuerySet[Booking]:
    """The bookings with what placing them needs (EVSE, charge point, policies, tokens)."""
    return (
        Booking.objects.filter(pk__in=list(booking_ids))
        .select_related(
            "evse__charge_point", "evse__booking_policy", "location__booking_policy", "connector"
        )
        .prefetch_related("tokens")
        .order_by("pk")
    )


def in_reserve_window(booking: Booking, now: datetime) -> bool:
    """Whether the booking should be held at its charger now."""
    if booking.channel == booking.Channel.COMMAND:
        # An OCPI RESERVE_NOW starts when it is made: it is due for as long as it lasts.
        return booking.start - reserve_lead(booking) <= now < booking.end
    return booking.start - reserve_lead(booking) <= now < booking.start


def reserve_bookings(booking_ids: Iterable[int], *, now: datetime | None = None) -> dict[str, int]:
    """Send ReserveNow for every given booking that is due now (all in one round of the bus),
    after cancelling placements they no longer want. Returns counts by outcome.

    The batch's claims and its outcomes are written in a few set-based queries each, so a
    sweep of a thousand bookings costs tens of queries, not thousands."""
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
        claimed = charger_services.reservations_claim(placements=placements, now=now)
    # A claim for a new placement marked the old one CANCEL_DUE: cancel it before reserving,
    # so a charger never holds two places for one booking.
    _cancel(
        list(Reservation.objects.filter(booking_id__in=list(claimed), status=CR.CANCEL_DUE)),
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
        charger_services.reservations_unclaim(
            reservation_ids=list(commands), detail=f"Command bus error: {error}", now=now
        )
        raise
    recording = time.monotonic()
    counts: dict[str, int] = {}
    # Not sent because the charger was still answering earlier calls: due again at once, and
    # not a refusal (no backoff).
    not_sent = [pk for pk, c in commands.items() if replies[c.id].status == gateway.NOT_SENT]
    if not_sent:
        charger_services.reservations_unclaim(
            reservation_ids=not_sent, detail="Waiting for the charger's earlier calls.", now=now
        )
        counts[gateway.NOT_SENT] = len(not_sent)
    # One transaction for both sides, placements locked before bookings (the order a session
    # start takes too): a booking never shows an answer its placement does not have.
    with transaction.atomic():
        recorded = charger_services.reservations_record_replies(
            replies={
                pk: (replies[c.id].status, replies[c.id].detail)
                for pk, c in commands.items()
                if replies[c.id].status != gateway.NOT_SENT
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
    _cancel([r for r in recorded if not r.is_current and r.status == CR.CANCEL_DUE], now=now)
    if claimed:
        logger.info(
            "ReserveNow x%d: claim %.2f s, charger round trip %.2f s, record %.2f s: %s",
            len(claimed), sending - started, recording - sending, time.monotonic() - recording,
            counts,
        )  # fmt: skip
    return counts


def _summary(booking: Booking, reservation: Reservation) -> ChargerState | None:
    """The booking's new hold state for its current placement's outcome: the placement's own
    state, with a detail for staff. None when the placement is no longer being attempted."""
    state = CR(reservation.status)
    if state not in ATTEMPT_STATES:
        return None
    # Times in the location's zone, labelled, as everything else the desk shows.
    tz = booking.location.zone
    if state == CR.HELD:
        until = reservation.expires_at.astimezone(tz)
        detail = f"Held at the charger until {until:%H:%M} ({zone_label(until, tz)})."
    else:
        retry = reservation.next_attempt_at
        detail = reservation.detail or state.label
        if retry is not None and retry < booking.start:
            at = retry.astimezone(tz)
            detail += (
                f" Retrying at {at:%H:%M:%S} ({zone_label(at, tz)}) "
                f"(attempt {reservation.attempts + 1})."
            )
    return ChargerState(
        booking_id=booking.pk, state=state, detail=detail,
        actor=Actor.charger(booking.evse.charge_point.identity),
        needs_attention=False if state == CR.HELD else None,
    )  # fmt: skip


def _cancel(reservations: list[Reservation], *, now: datetime) -> list[Reservation]:
    """Send CancelReservation for placements the charger may hold; record the answers, and
    in the booking's audit trail a hold the charger turns out to have lost (LOST). Returns
    the placements as recorded."""
    live = []
    recorded = []
    for reservation in {r.pk: r for r in reservations}.values():
        if reservation.expires_at <= now - CANCEL_AFTER_EXPIRY:
            recorded.append(charger_services.reservation_record_cancel(
                reservation_id=reservation.pk, reply_status="Expired", detail="", now=now
            ))  # fmt: skip
        else:
            live.append(reservation)
    if not live:
        return recorded
    rows = Reservation.objects.filter(pk__in=[r.pk for r in live]).select_related("charge_point")
    identities = {r.pk: r.charge_point.identity for r in rows}
    commands = {
        pk: gateway.cancel_reservation_command(charge_point_id=identity, reservation_id=pk)
        for pk, identity in identities.items()
    }
    replies = gateway.send(list(commands.values()))
    for pk, command in commands.items():
        reply = replies[command.id]
        reservation = charger_services.reservation_record_cancel(
            reservation_id=pk, reply_status=reply.status, detail=reply.detail, now=now
        )
        recorded.append(reservation)
        if reservation.status == CR.LOST:
            logger.warning("%s had lost reservation %s unnoticed", identities[pk], pk)
            booking_record_charger_state(
                booking=reservation.booking_id, state=None, now=now,
                actor=Actor.charger(identities[pk]),
                detail=f"The charger had lost the reservation it accepted at "
                f"{reservation.held_at:%H:%M:%S} UTC: it rejected its CancelReservation.",
            )  # fmt: skip
    return recorded


def release_bookings(booking_ids: Iterable[int], *, now: datetime | None = None) -> None:
    """Cancel at the charger what bookings no longer want (cancelled, no-show, moved) and tell
    staff; moved bookings still in their window are reserved at their new place."""
    now = now or timezone.now()
    moved = []
    for booking in load_bookings(booking_ids):
        keep = placement_for(booking) if booking.status == Status.RESERVED else None
        to_cancel = charger_services.reservation_release(booking_id=booking.pk, keep=keep, now=now)
        lost = any(r.status == CR.LOST for r in _cancel(to_cancel, now=now))
        if booking.status == Status.RESERVED:
            moved.append(booking.pk)
            still_held = Reservation.objects.current().of_booking(booking.pk).exists()
            if to_cancel and not still_held and not in_reserve_window(booking, now):
                booking_record_charger_state(
                    booking=booking.pk, state=CR.NOT_SENT,
                    detail="Moved: the charger is reserved again shortly before the new start.",
                    actor=Actor.system(SYSTEM), now=now,
                )  # fmt: skip
            continue
        if booking.charger_reservation not in (CR.NOT_SENT, CR.NOT_SUPPORTED, CR.RELEASED):
            left = Reservation.objects.of_booking(booking.pk).filter(status=CR.CANCEL_DUE)
            if left.exists():
                detail = "CancelReservation pending: the charger did not confirm yet."
            elif lost:
                detail = "Released; the charger no longer held the reservation."
            else:
                detail = "Reservation cancelled at the charger."
            booking_record_charger_state(
                booking=booking.pk, state=CR.RELEASED, detail=detail,
                actor=Actor.system(SYSTEM), now=now,
            )  # fmt: skip
    if moved:
        reserve_bookings(moved, now=now)


def flag_unheld(booking_ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Flag for staff the bookings that started without a reservation held at the charger."""
    now = now or timezone.now()
    flagged = 0
    for booking in load_bookings(booking_ids):
        if booking.status != Status.RESERVED or booking.needs_attention:
            continue
        if booking.charger_reservation in (CR.HELD, CR.NOT_SUPPORTED):
            continue
        label = booking.get_charger_reservation_display().lower()
        booking_record_charger_state(
            booking=booking.pk, state=booking.charger_reservation,
            detail=f"Started without a reservation held at the charger ({label}).",
            actor=Actor.system(SYSTEM), needs_attention=True, now=now,
        )  # fmt: skip
        flagged += 1
    return flagged


def mark_lost_holds(*, now: datetime, charge_point_id: int | None = None) -> list[int]:
    """Find the holds a charger accepted before it last booted or connected (it may have lost
    them) and make them due again: the placement and its booking show RESEND, with why.
    Returns the bookings' ids. The reservation sweep runs it for every charger (it reads the
    boots and connections the csms recorded), a charger's boot for that charger at once."""
    with transaction.atomic():  # placements locked before bookings, as everywhere
        marked = charger_services.reservations_mark_resend(now=now, charge_point_id=charge_point_id)
        updates = [
            ChargerState(r.booking_id, CR.RESEND, Actor.charger(r.charge_point.identity), r.detail)
            for r in marked
        ]
        booking_record_charger_states(updates=updates, now=now)
    if marked:
        logger.info("%d holds to send again: %s", len(marked), sorted(r.pk for r in marked))
    return [r.booking_id for r in marked]


def resend_lost_holds(*, charge_point_id: int, now: datetime | None = None) -> dict[str, int]:
    """Send again, now, the holds a charger that booted may have lost (mark_lost_holds)."""
    now = now or timezone.now()
    booking_ids = mark_lost_holds(now=now, charge_point_id=charge_point_id)
    return reserve_bookings(booking_ids, now=now) if booking_ids else {}


# --- what is due: read from the database by the beat sweep (bookings.sweeps) ---


def _max_lead() -> timedelta:
    lead = BookingPolicy.objects.aggregate(m=Max("reserve_lead_minutes"))["m"]
    return timedelta(minutes=max(lead or 0, DEFAULT_LEAD_MINUTES))


def _reservable_bookings() -> QuerySet[Booking]:
    return Booking.objects.filter(
        status=Status.RESERVED, evse__capabilities__contains=[Capability.RESERVABLE]
    )


def reserve_due_ids(now: datetime, *, limit: int) -> list[int]:
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
    # An OCPI RESERVE_NOW starts when made and is held for as long as it lasts
    # (in_reserve_window).
    immediate = Q(
        channel=Booking.Channel.COMMAND, period__startswith__lte=now, period__endswith__gt=now
    )
    rows = (
        _reservable_bookings()
        .filter(upcoming | immediate)
        .annotate(lead=lead)
        .order_by("period")  # the soonest first: a slow charger takes them in this order
        .values_list("pk", "period", "lead", "channel")[:limit]
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
    return [
        pk
        for pk in in_window
        if pk not in current or charger_services.reservation_retry_due(current[pk], now)
    ]


def release_due_ids(now: datetime, *, limit: int) -> list[int]:
    """Bookings with a placement at a charger they no longer want: cancelled or finished, moved
    (another EVSE or time), or a CancelReservation not yet confirmed."""
    rows = list(
        Reservation.objects.filter(
            Q(is_current=True) & ~Q(status__in=CLOSED_STATUSES) | Q(status=CR.CANCEL_DUE)
        ).values_list("booking_id", "status", "is_current", "evse_id", "expires_at")[:limit]
    )
    due = {row[0] for row in rows if row[1] == CR.CANCEL_DUE}
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


def unheld_started_ids(now: datetime, *, limit: int) -> list[int]:
    """Bookings that started without a held reservation and are not flagged yet."""
    return list(
        _reservable_bookings()
        .filter(
            needs_attention=False,
            period__startswith__lte=now,
            period__startswith__gt=now - FLAG_LOOKBACK,
        )
        .exclude(charger_reservation__in=[CR.HELD, CR.NOT_SUPPORTED])
        # An OCPI RESERVE_NOW starts when made; its eMSP learns the outcome from the command.
        .exclude(channel=Booking.Channel.COMMAND)
        .values_list("pk", flat=True)[:limit]
    )


# --- what chargers report (chargers.signals, received in bookings.receivers) ---


@transaction.atomic
def booking_fulfil_from_session(
    *, session: ChargingSession, at: datetime, now: datetime | None = None
) -> Booking | None:
    """Fulfil the booking a session started (or authorised) at `at` redeems: one of its
    tokens, on its EVSE, inside its window. In one transaction: the booking becomes FULFILLED
    with its audit row, the session is linked to it, its placement is marked used and its hold
    released. Returns None when the session redeems no booking.

    Raises the database's error (or Busy) when the booking stays locked past
    LOCK_TIMEOUT_SECONDS: inside the transaction that records the session, nothing of the
    start is then written, and the charger, answered with a CallError, sends it again.
    """
    if session.booking_id or session.evse_id is None or not session.id_tag:
        return None
    booking = booking_for_session(evse=session.evse, token_uid=session.id_tag, at=at)
    if booking is None:
        return None
    now = now or timezone.now()
    actor = Actor.charger(session.charge_point.identity)
    bound_lock_waits()
    try:
        with transaction.atomic():  # savepoint: a booking gone meanwhile leaves no trace
            # The placement before the booking: recording a ReserveNow reply locks in the
            # same order, so the two cannot deadlock.
            charger_services.reservation_mark_used(booking_id=booking.pk, now=now)
            booking = booking_fulfil(booking=booking.pk, actor=actor, at=at, now=now)
    except Busy:
        raise  # not a refusal: the start fails whole and comes again
    except BookingError as error:
        logger.info("Session %s did not fulfil booking %s: %s", session.pk, booking.pk, error)
        return None
    charger_services.session_link_booking(session=session, booking_id=booking.pk)
    return booking_record_charger_state(
        booking=booking, state=CR.RELEASED, actor=actor, now=now,
        detail=f"Used by session {session.transaction_id}.",
    )  # fmt: skip


def booking_release_dropped_hold(
    *, reservation: Reservation, update_status: str, now: datetime | None = None
) -> Booking:
    """Record that the charger dropped the booking's current placement (2.0.1
    ReservationStatusUpdate Expired or Removed): the booking's hold is released."""
    return booking_record_charger_state(
        booking=reservation.booking_id, state=CR.RELEASED,
        actor=Actor.charger(reservation.charge_point.identity), now=now,
        detail=f"The charger reports the reservation {update_status.lower()}.",
    )  # fmt: skip
