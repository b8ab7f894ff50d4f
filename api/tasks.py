"""Celery tasks of the API app: thin wrappers over api.webhooks."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def webhook_sweep_task() -> None:
    """Queue deliveries for new booking audit rows and start one deliverer per due
    subscription (beat runs it; a lost run is caught up by the next)."""
    from .webhooks import sweep

    for subscription_id in sweep():
        webhook_deliver_task.delay(subscription_id=subscription_id)


@shared_task(ignore_result=True)
def webhook_deliver_task(subscription_id: int) -> None:
    from django.utils import timezone

    from .webhooks import deliver

    result = deliver(subscription_id=subscription_id)
    if result.retry_at is not None:
        delay = max((result.retry_at - timezone.now()).total_seconds(), 1)
        webhook_deliver_task.apply_async(
            kwargs={"subscription_id": subscription_id}, countdown=delay
        )
