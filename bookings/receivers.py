"""What bookings does when chargers report something (chargers.signals). Connected in
BookingsConfig.ready; each receiver runs inside the transaction that records the report, so
the report and its booking changes are written together or not at all."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from chargers.models import ChargingSession, Reservation
from chargers.signals import charger_booted, reservation_dropped, session_started, session_stopped
from locations.models import ChargePoint, Location
from locations.signals import (
    ActiveBooking,
    OutsideRules,
    active_bookings_wanted,
    outside_rules_wanted,
)

from .availability import zone_label
from .billing import session_record
from .holds import booking_fulfil_from_session, booking_release_dropped_hold
from .models import Booking, Status
from .selectors import active_bookings_on_evses, bookings_outside_rules
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


def _booking_line(booking: Booking) -> str:
    """When, where and who, on the location's clock: the start day and times, the EVSE,
    the driver (or the eMSP)."""
    tz = booking.location.zone
    start, end = booking.start.astimezone(tz), booking.end.astimezone(tz)
    who = booking.driver.name if booking.driver else (
        f"eMSP {booking.emsp_country_code}*{booking.emsp_party_id}" if booking.emsp_party_id
        else "no driver"
    )  # fmt: skip
    return (
        f"{start:%a %d %b %Y %H:%M}–{end:%H:%M} ({zone_label(start, tz)}) on {booking.evse}, {who}"
    )


@receiver(outside_rules_wanted, dispatch_uid="bookings.outside_rules_at_location")
def outside_rules_at_location(
    sender: type, *, location: Location, **kwargs: Any
) -> list[OutsideRules]:
    """The location's active bookings that its rules as they stand would refuse (the admin
    asks before a change that adds some), each with a link to its booking panel on the desk."""
    answers = []
    for rule_break in bookings_outside_rules(location=location, now=timezone.now()):
        b = rule_break.booking
        b.location = location
        text = f"{_booking_line(b)}: {rule_break.reason}"
        url = reverse("bookings:booking_detail", args=[b.uid])
        answers.append(OutsideRules(key=f"booking:{b.pk}", text=text, url=url))
    return answers


_ACTIVE_WORDS = {
    Status.PENDING: "pending",
    Status.RESERVED: "reserved",
    Status.FULFILLED: "charging now",
}


@receiver(active_bookings_wanted, dispatch_uid="bookings.active_bookings_on_evses")
def active_bookings_on(sender: type, *, evse_ids: list[int], **kwargs: Any) -> list[ActiveBooking]:
    """The active bookings on EVSEs the admin wants to delete, each with a link to its booking
    panel on the desk (to move or cancel it: a cancel is pushed to the booking's eMSP)."""
    return [
        ActiveBooking(
            key=f"booking:{b.pk}",
            text=f"{_booking_line(b)} ({_ACTIVE_WORDS.get(b.status, b.status.lower())})",
            url=reverse("bookings:booking_detail", args=[b.uid]),
        )
        for b in active_bookings_on_evses(evse_ids=evse_ids, now=timezone.now())
    ]
