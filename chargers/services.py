"""Charger-side writes: what chargers report (status, boot, sessions) and the bookkeeping of the
reservations the csms places. Short transactions only: callers never hold one across an OCPP
round trip (STYLE rule 7). Reports other apps act on are announced with chargers.signals, sent
inside the recording transaction."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from locations.models import (
    EVSE,
    ChargePoint,
    Connector,
    ConnectorFormat,
    ConnectorStandard,
    EVSEStatus,
)
from locations.services import charge_point_set_status, evse_set_status

from . import gateway, signals
from .meter import Reading
from .models import (
    RETRY_STATUSES,
    ChargeDetailRecord,
    ChargerReservation,
    ChargingSession,
    MeterReading,
    RemoteCommand,
    Reservation,
)

RS = ChargerReservation

RETRY_BACKOFF_SECONDS = (30, 60, 120, 240, 300)  # then every 300 s: a charger back online soon
# A SENDING row older than this lost its worker (crash): send again. Past the longest a worker
# waits for replies (gateway.longest_wait), so a slow charger's answer is never overtaken.
SENDING_STALE_SECONDS = 60
# OFFLINE may be a timeout the charger did see; RESEND may have survived a reconnect.
MAY_BE_HELD = (RS.HELD, RS.SENDING, RS.OFFLINE, RS.RESEND)

# OCPP 1.6 ChargePointStatus / 2.0.1 ConnectorStatus -> OCPI EVSE status.
CONNECTOR_STATUS = {
    "Available": EVSEStatus.AVAILABLE,
    "Preparing": EVSEStatus.CHARGING,
    "Charging": EVSEStatus.CHARGING,
    "SuspendedEV": EVSEStatus.CHARGING,
    "SuspendedEVSE": EVSEStatus.CHARGING,
    "Finishing": EVSEStatus.CHARGING,
    "Occupied": EVSEStatus.CHARGING,
    "Reserved": EVSEStatus.RESERVED,
    "Unavailable": EVSEStatus.INOPERATIVE,
    "Faulted": EVSEStatus.OUTOFORDER,
}

# ReserveNow reply -> reservation status.
REPLY_STATUS = {
    "Accepted": RS.HELD,
    "Occupied": RS.OCCUPIED,
    "Faulted": RS.FAULTED,
    "Unavailable": RS.UNAVAILABLE,
    "Rejected": RS.REJECTED,
    "Offline": RS.OFFLINE,
    "Timeout": RS.OFFLINE,
    "CallError": RS.REJECTED,
}


# OCPI TokenType -> OCPP 2.0.1 IdTokenEnumType; other token types are held as "Central".
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


def retry_backoff(attempts: int) -> timedelta:
    """How long to wait before the next ReserveNow after `attempts` tries."""
    index = min(max(attempts, 1), len(RETRY_BACKOFF_SECONDS)) - 1
    return timedelta(seconds=RETRY_BACKOFF_SECONDS[index])


# --- what chargers report ---


def charger_status_notification(
    *, charge_point: ChargePoint, ocpp_evse_id: int, ocpp_status: str, at: datetime
) -> bool:
    """Apply a connector/EVSE status report to the EVSE; connector 0 (OCPP 1.6) reports on the
    whole station (see charge_point_set_status). Unknown statuses change nothing. Returns
    whether an EVSE changed."""
    status = CONNECTOR_STATUS.get(ocpp_status)
    if status is None or ocpp_evse_id < 0:
        return False
    if ocpp_evse_id == 0:
        return bool(charge_point_set_status(charge_point=charge_point, status=status, at=at))
    return bool(
        evse_set_status(charge_point=charge_point, ocpp_evse_id=ocpp_evse_id, status=status, at=at)
    )


@transaction.atomic
def charger_booted(*, charge_point: ChargePoint, at: datetime) -> None:
    """Announce that the charger's BootNotification was answered Accepted (signals.
    charger_booted): it restarted, so what it held is gone. Called once the answer is sent, so
    that what receivers send the charger comes after its boot was accepted."""
    signals.charger_booted.send(sender=ChargePoint, charge_point=charge_point, at=at)


@transaction.atomic
def session_start(
    *,
    charge_point: ChargePoint,
    ocpp_evse_id: int | None,
    id_tag: str,
    started_at: datetime,
    transaction_id: str | None = None,
    reservation_id: int | None = None,
    meter_start_wh: int | None = None,
    remote_start_id: int | None = None,
) -> ChargingSession:
    """Record a started session and send signals.session_started in the same transaction, so
    what receivers write (a booking the session fulfils) commits with it or not at all.
    OCPP 1.6 sessions (no transaction_id) get this row's id; starting the same 2.0.1
    transaction twice returns the first row. A session a remote start began takes that
    start's authorization reference (see remote_start_link)."""
    evse = None
    if ocpp_evse_id:
        evse = EVSE.objects.filter(charge_point=charge_point, ocpp_evse_id=ocpp_evse_id).first()
    if transaction_id is not None:
        session, created = ChargingSession.objects.get_or_create(
            charge_point=charge_point,
            transaction_id=transaction_id,
            defaults={"evse": evse, "id_tag": id_tag, "started_at": started_at,
                      "reservation_id": reservation_id, "meter_start_wh": meter_start_wh},
        )  # fmt: skip
        fresh = created
        if not created and id_tag and not session.id_tag:
            session.id_tag = id_tag
            session.save(update_fields=["id_tag"])
            fresh = True
    else:
        fresh = True
        session = ChargingSession.objects.create(
            charge_point=charge_point, evse=evse, transaction_id=uuid.uuid4().hex,
            id_tag=id_tag, started_at=started_at, reservation_id=reservation_id,
            meter_start_wh=meter_start_wh,
        )  # fmt: skip
        session.transaction_id = str(session.pk)
        session.save(update_fields=["transaction_id"])
    if fresh:  # 2.0.1 repeats the start in every Updated event: look the remote start up once
        remote_start_link(session=session, remote_start_id=remote_start_id)
    signals.session_started.send(sender=ChargingSession, session=session, at=started_at)
    return session


# How long after a remote start the charger's transaction is taken as its answer: an OCPP 1.6
# charger waits for the cable to be plugged in (its ConnectionTimeOut, often 1-3 minutes).
REMOTE_START_MATCH_SECONDS = 600


def remote_start_link(
    *, session: ChargingSession, remote_start_id: int | None = None
) -> RemoteCommand | None:
    """Link a session to the remote start it answers, and give it that start's authorization
    reference: by remoteStartId (2.0.1), else the latest open remote start for its token on
    its EVSE (or on any EVSE of the charger) that the charger did not refuse. A 1.6 charger
    was sent a longer token cut to 20 characters: the session takes the whole token back, so
    that its booking, Session and CDR name the driver's token. Returns the start."""
    if not session.id_tag and remote_start_id is None:
        return None
    if session.remote_commands.filter(action=RemoteCommand.Action.START).exists():
        return None
    starts = RemoteCommand.objects.select_for_update().filter(
        charge_point=session.charge_point_id,
        action=RemoteCommand.Action.START,
        session__isnull=True,
        created_at__gte=session.started_at - timedelta(seconds=REMOTE_START_MATCH_SECONDS),
    )
    if remote_start_id is not None:
        start = starts.filter(pk=remote_start_id).first()
    else:
        tag = Q(id_tag__iexact=session.id_tag)
        if len(session.id_tag) == gateway.OCPP16_ID_TAG_LENGTH:
            tag |= Q(id_tag__istartswith=session.id_tag)
        start = (
            starts.filter(tag, Q(reply="") | Q(reply="Accepted"))
            .filter(Q(evse=session.evse_id) | Q(evse__isnull=True))
            .order_by("-id")
            .first()
        )
    if start is None:
        return None
    start.session = session
    start.save(update_fields=["session"])
    if len(start.id_tag) > len(session.id_tag) and start.id_tag.upper().startswith(
        session.id_tag.upper()
    ):
        session.id_tag = start.id_tag
        session.save(update_fields=["id_tag"])
    if start.authorization_reference:
        session.authorization_reference = start.authorization_reference
        session.save(update_fields=["authorization_reference"])
    return start


def session_link_booking(*, session: ChargingSession, booking_id: int) -> None:
    """Note the booking a session redeemed."""
    ChargingSession.objects.filter(pk=session.pk).update(booking_id=booking_id)
    session.booking_id = booking_id


def reservation_mark_used(*, booking_id: int, now: datetime) -> int:
    """Mark the booking's current placement used by a session: the charger consumed it, so it
    is neither cancelled nor placed again. Returns the rows changed (0 or 1)."""
    return (
        Reservation.objects.current()
        .of_booking(booking_id)
        .update(status=RS.USED, answered_at=now, updated_at=now)
    )


@transaction.atomic
def session_stop(
    *,
    charge_point: ChargePoint,
    transaction_id: str,
    stopped_at: datetime,
    meter_stop_wh: int | None = None,
    reason: str = "",
) -> ChargingSession | None:
    """Record the end of a session and send signals.session_stopped in the same transaction (a
    receiver issues its charge detail record). Returns None for a transaction never started
    here; a session already stopped keeps its first end."""
    session = (
        ChargingSession.objects.select_for_update()
        .filter(charge_point=charge_point, transaction_id=transaction_id)
        .first()
    )
    if session is None:
        return None
    if session.stopped_at is not None:
        return session  # the charger sent the end again (it got no answer the first time)
    session.stopped_at = stopped_at
    session.meter_stop_wh = meter_stop_wh
    session.stop_reason = (reason or "")[:32]
    session.save(update_fields=["stopped_at", "meter_stop_wh", "stop_reason"])
    signals.session_stopped.send(sender=ChargingSession, session=session)
    return session


@transaction.atomic
def session_meter_values(
    *,
    charge_point: ChargePoint,
    readings: Sequence[Reading],
    transaction_id: str | None = None,
    ocpp_evse_id: int | None = None,
) -> ChargingSession | None:
    """Store a session's meter readings (a reading sent twice is kept once) and note the latest
    as the session's energy so far. The session is found by its transaction id or, without one,
    as the session running on the EVSE. Returns None when there is no such session."""
    sessions = ChargingSession.objects.filter(charge_point=charge_point)
    if transaction_id is not None:
        session = sessions.filter(transaction_id=transaction_id).first()
    elif ocpp_evse_id:
        session = sessions.filter(evse__ocpp_evse_id=ocpp_evse_id, stopped_at__isnull=True).first()
    else:
        session = None
    if session is None or not readings:
        return session
    MeterReading.objects.bulk_create(
        [MeterReading(session=session, at=r.at, energy_wh=r.energy_wh, power_w=r.power_w,
                      current_a=r.current_a) for r in readings],
        ignore_conflicts=True,
    )  # fmt: skip
    energy = sorted((r for r in readings if r.energy_wh is not None), key=lambda r: r.at)
    if not energy:
        return session
    changed = []
    if session.meter_start_wh is None:  # 2.0.1 sends the start register as a meter value
        session.meter_start_wh = int(energy[0].energy_wh)
        changed.append("meter_start_wh")
    if session.meter_last_at is None or energy[-1].at >= session.meter_last_at:
        session.meter_last_wh, session.meter_last_at = energy[-1].energy_wh, energy[-1].at
        changed += ["meter_last_wh", "meter_last_at"]
    if changed:
        session.save(update_fields=changed)
        if session.stopped_at is None:
            signals.session_updated.send(sender=ChargingSession, session=session)
    return session


def cdr_issue(**fields: Any) -> ChargeDetailRecord:
    """Write a charge detail record (fields as ChargeDetailRecord has them) and send
    signals.cdr_issued in the same transaction. Issued once: a session's second record, or a
    booking's second fee of one kind, returns the first (the database keeps them unique)."""
    if fields.get("session") is not None:
        unique = {"session": fields["session"]}
    else:
        unique = {"booking_id": fields["booking_id"], "kind": fields["kind"]}
    with transaction.atomic():
        existing = ChargeDetailRecord.objects.filter(**unique).first()
        if existing is not None:
            return existing
        cdr = ChargeDetailRecord.objects.create(**fields)
        signals.cdr_issued.send(sender=ChargeDetailRecord, cdr=cdr)
    return cdr


# --- reservations placed at chargers ---


@dataclass(frozen=True)
class Placement:
    """Where and for whom a booking should be held at the charger."""

    evse: EVSE
    id_tag: str
    token_type: str
    expires_at: datetime
    connector_type: str = ""

    def same_as(self, reservation: Reservation) -> bool:
        return (
            reservation.evse_id == self.evse.pk
            and reservation.id_tag == self.id_tag
            and reservation.expires_at == self.expires_at
        )


def _connector_type(connector: Connector | None) -> str:
    if connector is None:
        return ""
    if connector.standard == ConnectorStandard.IEC_62196_T2:
        return "cType2" if connector.format == ConnectorFormat.CABLE else "sType2"
    return CONNECTOR_TYPES.get(connector.standard, "")


def placement(
    *,
    evse: EVSE,
    id_tag: str,
    ocpi_token_type: str | None,
    expires_at: datetime,
    connector: Connector | None = None,
) -> Placement:
    """A placement for a token (its OCPI type, None for a central id tag) and optionally one
    connector, with the OCPP 2.0.1 codes a ReserveNow carries."""
    return Placement(
        evse=evse,
        id_tag=id_tag,
        token_type=TOKEN_TYPES.get(ocpi_token_type or "", "Central"),
        expires_at=expires_at,
        connector_type=_connector_type(connector),
    )


def _sending_stale(reservation: Reservation, now: datetime) -> bool:
    sent = reservation.sent_at or reservation.updated_at
    stale = max(SENDING_STALE_SECONDS, gateway.longest_wait() + 15)
    return sent is None or sent <= now - timedelta(seconds=stale)


def reservation_is_due(
    reservation: Reservation | None, placement: Placement, now: datetime
) -> bool:
    """Whether a ReserveNow should go out for this placement, given the booking's current row."""
    if reservation is None or not placement.same_as(reservation):
        return True
    return reservation_retry_due(reservation, now)


def reservation_retry_due(reservation: Reservation, now: datetime) -> bool:
    """Whether ReserveNow should go out again for an unchanged placement: refused or offline
    and past its backoff, or lost while sending."""
    if reservation.status == RS.SENDING:
        return _sending_stale(reservation, now)
    if reservation.status in RETRY_STATUSES:
        return reservation.next_attempt_at is None or reservation.next_attempt_at <= now
    return False


def _supersede(reservation: Reservation, now: datetime) -> None:
    reservation.is_current = False
    if reservation.status in MAY_BE_HELD:
        reservation.status = RS.CANCEL_DUE
    elif reservation.status not in (RS.CANCEL_DUE, RS.CANCELED):
        reservation.status = RS.DROPPED
    reservation.updated_at = now


@transaction.atomic
def reservations_claim(
    *, placements: Mapping[int, Placement], now: datetime
) -> dict[int, Reservation]:
    """Claim the right to send ReserveNow now, for many bookings in a few queries: each
    booking's current row (by booking id) becomes SENDING, or a new row is made when its
    placement changed (the old one is marked for cancelling). Bookings with nothing due, or
    whose row another worker holds, are left out of the result."""
    ids = list(placements)
    locked = {
        r.booking_id: r
        for r in Reservation.objects.select_for_update(skip_locked=True)
        .current()
        .filter(booking_id__in=ids)
    }
    busy = (
        set(
            Reservation.objects.current()
            .filter(booking_id__in=ids)
            .values_list("booking_id", flat=True)
        )
        - locked.keys()
    )  # another worker is claiming these right now
    claimed: dict[int, Reservation] = {}
    resend: list[Reservation] = []
    superseded: list[Reservation] = []
    new: list[Reservation] = []
    for booking_id, placement in placements.items():
        if booking_id in busy:
            continue
        current = locked.get(booking_id)
        if current is not None and placement.same_as(current):
            if reservation_is_due(current, placement, now):
                current.status = RS.SENDING
                current.attempts += 1
                current.sent_at = now
                current.next_attempt_at = None
                current.updated_at = now
                resend.append(current)
                claimed[booking_id] = current
            continue
        if current is not None:
            _supersede(current, now)
            superseded.append(current)
        new.append(Reservation(
            booking_id=booking_id, charge_point_id=placement.evse.charge_point_id,
            evse=placement.evse, id_tag=placement.id_tag, token_type=placement.token_type,
            connector_type=placement.connector_type, expires_at=placement.expires_at,
            status=RS.SENDING, attempts=1, sent_at=now,
        ))  # fmt: skip
    # Grouped UPDATEs rather than bulk_update, whose CASE per row and field is slow to build.
    if resend:
        Reservation.objects.filter(pk__in=[r.pk for r in resend]).update(
            status=RS.SENDING, attempts=F("attempts") + 1, sent_at=now, next_attempt_at=None,
            updated_at=now,
        )  # fmt: skip
    _update_grouped(superseded, ["is_current", "status", "updated_at"])
    try:
        with transaction.atomic():  # savepoint: a parallel claim may have made a row first
            created = Reservation.objects.bulk_create(new)
    except IntegrityError:
        created = []
        for reservation in new:  # one by one, leaving out the bookings that lost the race
            try:
                with transaction.atomic():
                    reservation.save(force_insert=True)
                created.append(reservation)
            except IntegrityError:
                reservation.pk = None
    claimed.update({r.booking_id: r for r in created})
    return claimed


def _update_grouped(rows: list[Reservation], fields: list[str]) -> None:
    """Save `fields` of rows with one UPDATE per distinct set of values (a batch's replies are
    mostly alike)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for row in rows:
        groups[tuple(getattr(row, f) for f in fields)].append(row.pk)
    for values, pks in groups.items():
        Reservation.objects.filter(pk__in=pks).update(**dict(zip(fields, values, strict=True)))


def reservation_claim(
    *, booking_id: int, placement: Placement, now: datetime
) -> Reservation | None:
    """Claim the right to send ReserveNow for one booking (see reservations_claim)."""
    return reservations_claim(placements={booking_id: placement}, now=now).get(booking_id)


@transaction.atomic
def reservations_record_replies(
    *, replies: Mapping[int, tuple[str, str]], now: datetime
) -> list[Reservation]:
    """Record chargers' ReserveNow answers, {reservation id: (status, detail)}. A reply for a
    placement superseded while in flight marks it for cancelling when the charger may hold
    it; a reply for a row no longer SENDING (a duplicate) changes nothing."""
    rows = list(Reservation.objects.select_for_update().filter(pk__in=list(replies)))
    # Compared with the csms's record of the charger's boots and connections, which use the
    # clock, not the `now` a sweep was given.
    held_at = timezone.now()
    changed = []
    for reservation in rows:
        if reservation.status != RS.SENDING:
            continue
        reply_status, detail = replies[reservation.pk]
        status = REPLY_STATUS.get(reply_status, RS.REJECTED)
        if not reservation.is_current:
            status = RS.CANCEL_DUE if status in MAY_BE_HELD else RS.DROPPED
        reservation.status = status
        reservation.detail = detail[:255]
        reservation.answered_at = now
        reservation.held_at = held_at if reply_status == "Accepted" else None
        reservation.next_attempt_at = (
            now + retry_backoff(reservation.attempts) if status in RETRY_STATUSES else None
        )
        reservation.updated_at = now
        changed.append(reservation)
    _update_grouped(
        changed, ["status", "detail", "answered_at", "held_at", "next_attempt_at", "updated_at"]
    )
    return rows


@transaction.atomic
def reservations_mark_resend(
    *, now: datetime, charge_point_id: int | None = None
) -> list[Reservation]:
    """The current placements a charger accepted before it last booted or connected (it may
    have lost them: a reboot clears a charger's reservations) become RESEND, due now. Returns
    them, with their charge point. Placements awaiting CancelReservation from before then
    are no longer counted as held, so a Rejected cancel is not reported as a lost hold. Rows
    another worker holds are left for the next run."""
    rows = (
        Reservation.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(Q(is_current=True, status=RS.HELD) | Q(status=RS.CANCEL_DUE, held_at__isnull=False))
        .filter(
            Q(charge_point__last_boot__gt=F("held_at"))
            | Q(charge_point__connected_at__gt=F("held_at"))
        )
        .select_related("charge_point")
        .order_by("pk")
    )
    if charge_point_id is not None:
        rows = rows.filter(charge_point_id=charge_point_id)
    marked = []
    for reservation in rows:
        if reservation.status == RS.CANCEL_DUE:
            Reservation.objects.filter(pk=reservation.pk).update(held_at=None, updated_at=now)
            continue
        marked.append(reservation)
    for reservation in marked:
        charge_point = reservation.charge_point
        if charge_point.last_boot and charge_point.last_boot > reservation.held_at:
            what = f"restarted at {charge_point.last_boot:%H:%M:%S} UTC"
        else:
            what = f"reconnected at {charge_point.connected_at:%H:%M:%S} UTC"
        reservation.status = RS.RESEND
        reservation.detail = f"The charger {what} after accepting the hold: sending it again."
        reservation.held_at = None
        reservation.next_attempt_at = now
        reservation.updated_at = now
    _update_grouped(marked, ["status", "detail", "held_at", "next_attempt_at", "updated_at"])
    return marked


def reservations_unclaim(*, reservation_ids: list[int], detail: str, now: datetime) -> int:
    """Make claimed (SENDING) rows due again now: their command may not have gone out."""
    return Reservation.objects.filter(pk__in=reservation_ids, status=RS.SENDING).update(
        status=RS.OFFLINE, detail=detail[:255], next_attempt_at=now, updated_at=now
    )


def reservation_record_reply(
    *, reservation_id: int, reply_status: str, detail: str, now: datetime
) -> Reservation:
    """Record one charger's ReserveNow answer (see reservations_record_replies)."""
    return reservations_record_replies(replies={reservation_id: (reply_status, detail)}, now=now)[0]


@transaction.atomic
def reservation_release(
    *, booking_id: int, keep: Placement | None, now: datetime
) -> list[Reservation]:
    """Stop wanting every placement of the booking except `keep` (all when None): those the
    charger may hold become CANCEL_DUE. Returns the booking's rows awaiting CancelReservation."""
    for reservation in Reservation.objects.select_for_update().current().of_booking(booking_id):
        if keep is None or not keep.same_as(reservation):
            _supersede(reservation, now)
            reservation.save(update_fields=["is_current", "status", "updated_at"])
    return list(Reservation.objects.of_booking(booking_id).filter(status=RS.CANCEL_DUE))


@transaction.atomic
def reservation_record_cancel(
    *, reservation_id: int, reply_status: str, detail: str, now: datetime
) -> Reservation:
    """Record a CancelReservation answer. Rejected means the charger holds no such
    reservation, so it is gone either way; when the charger had accepted it (held_at), it
    lost it unnoticed, and the placement shows LOST rather than CANCELED. No answer leaves
    it due for another try."""
    reservation = Reservation.objects.select_for_update().get(pk=reservation_id)
    if reservation.status != RS.CANCEL_DUE:
        return reservation
    if reply_status == "Rejected" and reservation.held_at is not None:
        reservation.status = RS.LOST
    elif reply_status in ("Accepted", "Rejected"):
        reservation.status = RS.CANCELED
    elif reply_status == "Expired" or reservation.expires_at <= now - timedelta(minutes=10):
        reservation.status = RS.DROPPED  # lapsed at the charger by itself
    reservation.detail = f"CancelReservation: {reply_status} {detail}".strip()[:255]
    reservation.answered_at = now
    reservation.save(update_fields=["status", "detail", "answered_at", "updated_at"])
    return reservation


@transaction.atomic
def reservation_status_update(
    *, charge_point: ChargePoint, reservation_id: int, update_status: str, now: datetime
) -> Reservation | None:
    """A 2.0.1 ReservationStatusUpdate: the charger dropped the reservation (Expired/Removed).
    When that placement was the one its booking wants, signals.reservation_dropped is sent in
    the same transaction."""
    reservation = (
        Reservation.objects.select_for_update()
        .filter(pk=reservation_id, charge_point=charge_point)
        .first()
    )
    if reservation is None:
        return None
    if reservation.status in (RS.HELD, RS.SENDING, RS.RESEND, RS.CANCEL_DUE):
        reservation.status = RS.EXPIRED if update_status == "Expired" else RS.REMOVED
        reservation.detail = f"ReservationStatusUpdate: {update_status}"
        reservation.answered_at = now
        reservation.save(update_fields=["status", "detail", "answered_at", "updated_at"])
        if reservation.is_current:
            signals.reservation_dropped.send(
                sender=Reservation, reservation=reservation, update_status=update_status
            )
    return reservation


# --- remote commands (start, stop, unlock) ---


@transaction.atomic
def remote_command_create(
    *,
    action: str,
    evse: EVSE,
    connector: Connector | None = None,
    id_tag: str = "",
    ocpi_token_type: str | None = None,
    authorization_reference: str = "",
    session: ChargingSession | None = None,
) -> RemoteCommand:
    """Record a remote start, stop or unlock for the charger of `evse` and queue it for a
    worker once the transaction commits (chargers.tasks.remote_command_task)."""
    from config.celery import enqueue_on_commit

    from .tasks import remote_command_task

    command = RemoteCommand.objects.create(
        action=action, charge_point_id=evse.charge_point_id, evse=evse,
        ocpp_connector_id=connector.ocpp_connector_id if connector is not None else None,
        id_tag=id_tag, authorization_reference=authorization_reference,
        transaction_id=session.transaction_id if session is not None else "",
        token_type=TOKEN_TYPES.get(ocpi_token_type or "", "Central"), session=session,
    )  # fmt: skip
    enqueue_on_commit(remote_command_task, remote_command_id=command.pk)
    return command


@transaction.atomic
def remote_command_claim(*, remote_command_id: int, now: datetime) -> RemoteCommand | None:
    """Claim the one send of a remote command: None when it was sent, answered or is being
    sent already (a task run twice never starts a second transaction)."""
    command = (
        RemoteCommand.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("charge_point", "evse", "session")
        .filter(pk=remote_command_id, sent_at__isnull=True, reply="")
        .first()
    )
    if command is None:
        return None
    command.sent_at = now
    command.save(update_fields=["sent_at"])
    return command


def remote_command_bus_command(command: RemoteCommand) -> gateway.Command:
    """The bus command for a remote command row."""
    cp = command.charge_point.identity
    evse_id = command.evse.ocpp_evse_id if command.evse is not None else None
    if command.action == RemoteCommand.Action.START:
        return gateway.remote_start_command(
            charge_point_id=cp, remote_start_id=command.pk, id_tag=command.id_tag,
            evse_id=evse_id, token_type=command.token_type or "Central",
        )  # fmt: skip
    if command.action == RemoteCommand.Action.STOP:
        return gateway.remote_stop_command(
            charge_point_id=cp, transaction_id=command.transaction_id
        )
    return gateway.unlock_connector_command(
        charge_point_id=cp, evse_id=evse_id or 0, connector_id=command.ocpp_connector_id or 1
    )


@transaction.atomic
def remote_command_record_reply(
    *, remote_command_id: int, reply_status: str, detail: str, now: datetime
) -> RemoteCommand:
    """Record the charger's answer to a remote command (once) and announce it with
    signals.remote_command_answered in the same transaction."""
    command = RemoteCommand.objects.select_for_update().get(pk=remote_command_id)
    if command.reply:
        return command
    command.reply = reply_status[:32]
    command.detail = detail[:255]
    command.answered_at = now
    command.save(update_fields=["reply", "detail", "answered_at"])
    signals.remote_command_answered.send(sender=RemoteCommand, remote_command=command)
    return command


def remote_commands_unsent(*, now: datetime, send_within_seconds: float) -> list[int]:
    """Remote commands whose task never ran: those younger than send_within_seconds (still
    worth sending); older ones are answered NotSent, so the requester learns it failed."""
    unsent = RemoteCommand.objects.filter(sent_at__isnull=True, reply="")
    cutoff = now - timedelta(seconds=send_within_seconds)
    for pk in unsent.filter(created_at__lt=cutoff).values_list("pk", flat=True):
        remote_command_record_reply(
            remote_command_id=pk, reply_status=gateway.NOT_SENT,
            detail="Not sent in time (no worker took it).", now=now,
        )  # fmt: skip
    return list(unsent.filter(created_at__gte=cutoff).values_list("pk", flat=True))
