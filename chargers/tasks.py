"""Charger-side tasks. Holding bookings at their chargers (ReserveNow, CancelReservation) is
booking logic: bookings.holds and bookings.tasks."""

from __future__ import annotations

from celery import shared_task

from locations.models import ChargePoint

from . import gateway


def mark_lost_connections() -> int:
    """Mark offline the chargers the database says are connected but no csms holds any more
    (a csms that crashed could not say so itself; its routes expire in Redis)."""
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
