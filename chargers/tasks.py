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


# How long after its request a remote command is still worth sending: past this the driver may
# have gone, and the eMSP has been told TIMEOUT (its CommandResponse timeout is 30 s).
REMOTE_COMMAND_SEND_WITHIN_SECONDS = 20


def remote_command_send(remote_command_id: int) -> str:
    """Send a remote command to its charger once and record the answer; returns the reply, or
    "" when it was sent already."""
    from django.utils import timezone

    from . import services

    command = services.remote_command_claim(remote_command_id=remote_command_id, now=timezone.now())
    if command is None:
        return ""
    reply = gateway.send_one(services.remote_command_bus_command(command))
    services.remote_command_record_reply(
        remote_command_id=command.pk, reply_status=reply.status, detail=reply.detail,
        now=timezone.now(),
    )  # fmt: skip
    return reply.status


@shared_task(acks_late=True)
def remote_command_task(remote_command_id: int) -> str:
    return remote_command_send(remote_command_id)


@shared_task(ignore_result=True)
def sweep_remote_commands_task() -> None:
    """Beat safety net: remote commands whose task was lost (a broker outage at commit)."""
    from django.utils import timezone

    from .services import remote_commands_unsent

    for pk in remote_commands_unsent(
        now=timezone.now(), send_within_seconds=REMOTE_COMMAND_SEND_WITHIN_SECONDS
    ):
        remote_command_task.delay(remote_command_id=pk)
