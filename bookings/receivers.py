"""What bookings does when chargers report something (chargers.signals). Connected in
BookingsConfig.ready; each receiver runs inside the transaction that records the report, so
the report and its booking changes are written together or not at all."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from chargers.models import ChargingSession, Reservation
from chargers.signals import charger_booted, reservation_dropped, session_started, session_stopped
from locations.models import ChargePoint

from .billing import session_record
from .holds import booking_fulfil_from_session, booking_release_dropped_hold
from .tasks import resend_holds_task


@receiver(session_started, dispatch_uid="bookings.fulfil_on_session_start")
def fulfil_on_session_start(
    sender: type, *, session: ChargingSession, at: datetime, **kwargs: Any
) -> None:
    booking_fulfil_from_session(session=session, at=at)


@receiver(session_stopped, dispatch_uid="bookings.record_on_session_stop")
def record_on_session_stop(sender: type, *, session: ChargingSession, **kwargs: Any) -> None:
    session_record(session)


@receiver(reservation_dropped, dispatch_uid="bookings.release_on_reservation_dropped")
def release_on_reservation_dropped(
    sender: type, *, reservation: Reservation, update_status: str, **kwargs: Any
) -> None:
    booking_release_dropped_hold(reservation=reservation, update_status=update_status)


@receiver(charger_booted, dispatch_uid="bookings.resend_holds_on_boot")
def resend_holds_on_boot(
    sender: type, *, charge_point: ChargePoint, at: datetime, **kwargs: Any
) -> None:
    # robust: a broker that is away must not fail the charger's boot; the reservation sweep
    # finds the lost holds from the database then (holds.mark_lost_holds).
    transaction.on_commit(
        partial(resend_holds_task.delay, charge_point_id=charge_point.pk), robust=True
    )
