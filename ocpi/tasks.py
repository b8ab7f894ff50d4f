"""Celery tasks of the OCPI app: thin wrappers over ocpi.push and the command results."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def push_sweep_task() -> None:
    """Read new booking audit rows into the outbox and start one deliverer per due party."""
    from .push import sweep

    for party_id in sweep():
        push_deliver_task.delay(party_id=party_id)


@shared_task(ignore_result=True)
def push_deliver_task(party_id: int) -> None:
    from django.utils import timezone

    from .push import deliver

    result = deliver(party_id=party_id)
    if result.retry_at is not None:
        delay = max((result.retry_at - timezone.now()).total_seconds(), 1)
        push_deliver_task.apply_async(kwargs={"party_id": party_id}, countdown=delay)


@shared_task(bind=True, ignore_result=True, max_retries=None)
def command_result_task(self, command_id: int) -> None:
    """POST the CommandResult once the charger answered (polling the booking's charger state)."""
    from .services import command_result_deliver

    outcome = command_result_deliver(command_id=command_id)
    if outcome == "wait":
        raise self.retry(countdown=2)
    if outcome == "failed" and self.request.retries < 5:
        raise self.retry(countdown=5 * 2**self.request.retries)


@shared_task(ignore_result=True)
def command_results_sweep_task() -> None:
    """Beat safety net: commands whose result was never delivered (lost task, worker crash)."""
    from datetime import timedelta

    from django.utils import timezone

    from .models import Command

    recent = timezone.now() - timedelta(hours=1)
    for pk in Command.objects.filter(result_sent_at__isnull=True, received_at__gte=recent,
                                     attempts__lt=6).values_list("pk", flat=True):  # fmt: skip
        command_result_task.delay(command_id=pk)
