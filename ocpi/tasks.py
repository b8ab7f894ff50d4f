"""Celery tasks of the OCPI app: thin wrappers over ocpi.push and the command results."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def push_sweep_task() -> None:
    """Read new booking audit rows into the outbox and start one deliverer per due party."""
    from .models import Command
    from .push import sweep

    due = sweep()
    for party_id in due.parties:
        push_deliver_task.delay(party_id=party_id)
    # A charger answered (or the booking ended) for a ReserveNow: its CommandResult can go.
    for pk in Command.objects.filter(
        booking_id__in=due.command_bookings, result_sent_at__isnull=True
    ).values_list("pk", flat=True):
        command_result_task.delay(command_id=pk)


# A deliverer starts no send after partners.outbox.BUDGET (60 s), and one send ends by the HTTP
# deadline (20 s): the soft limit leaves room for both, and releases the lease if it ever hits.
@shared_task(ignore_result=True, soft_time_limit=100, time_limit=120)
def push_deliver_task(party_id: int) -> None:
    from .push import deliver

    countdown = deliver(party_id=party_id).countdown()
    if countdown is not None:
        push_deliver_task.apply_async(kwargs={"party_id": party_id}, countdown=countdown)


@shared_task(bind=True, ignore_result=True, max_retries=5, soft_time_limit=40, time_limit=60)
def command_result_task(self, command_id: int) -> None:
    """POST the CommandResult if the charger's outcome is known. Until then nothing happens: the
    push sweep calls this again when the booking's charger state changes, and the beat sweep
    when the command times out."""
    from .services import command_result_deliver

    if command_result_deliver(command_id=command_id) == "failed":
        raise self.retry(countdown=5 * 2**self.request.retries)


@shared_task(ignore_result=True)
def command_results_sweep_task() -> None:
    """Beat safety net: commands whose result was never delivered (lost task, worker crash)."""
    from datetime import timedelta

    from django.utils import timezone

    from .models import Command
    from .services import COMMAND_TIMEOUT_SECONDS

    now = timezone.now()
    # Commands past their timeout (TIMEOUT goes out) or whose result POST failed earlier.
    for pk in Command.objects.filter(
        result_sent_at__isnull=True, received_at__gte=now - timedelta(hours=1),
        received_at__lt=now - timedelta(seconds=COMMAND_TIMEOUT_SECONDS), attempts__lt=6,
    ).values_list("pk", flat=True):  # fmt: skip
        command_result_task.delay(command_id=pk)
