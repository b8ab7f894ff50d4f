"""Immediate webhooks: after a transaction that wrote a booking audit row commits, queue the
webhook sweep soon (at most one run per window across processes). The sweep reads the audit
trail, so a lost nudge only delays deliveries until beat's run."""

from __future__ import annotations

from django.dispatch import receiver

from bookings.signals import booking_audited


@receiver(booking_audited, dispatch_uid="api_booking_audited")
def _booking_audited(sender, booking_ids, **kwargs) -> None:
    from config.celery import sweep_soon_on_commit

    from .tasks import webhook_sweep_task

    sweep_soon_on_commit(webhook_sweep_task)
