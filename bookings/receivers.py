"""What bookings does when chargers report something (chargers.signals). Connected in
BookingsConfig.ready; each receiver runs inside the transaction that records the report, so
the report and its booking changes are written together or not at all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import receiver

from chargers.models import ChargingSession, Reservation
from chargers.signals import reservation_dropped, session_started

from .holds import booking_fulfil_from_session, booking_release_dropped_hold


@receiver(session_started, dispatch_uid="bookings.fulfil_on_session_start")
def fulfil_on_session_start(
    sender: type, *, session: ChargingSession, at: datetime, **kwargs: Any
) -> None:
    booking_fulfil_from_session(session=session, at=at)


@receiver(reservation_dropped, dispatch_uid="bookings.release_on_reservation_dropped")
def release_on_reservation_dropped(
    sender: type, *, reservation: Reservation, update_status: str, **kwargs: Any
) -> None:
    booking_release_dropped_hold(reservation=reservation, update_status=update_status)
