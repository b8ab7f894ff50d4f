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


# The default time limits (120 s soft) leave room for partners.outbox.BUDGET (60 s) and one
# send's HTTP deadline (20 s).
@shared_task(ignore_result=True)
def webhook_deliver_task(subscription_id: int) -> None:
    from .webhooks import deliver

    countdown = deliver(subscription_id=subscription_id).countdown()
    if countdown is not None:
        webhook_deliver_task.apply_async(
            kwargs={"subscription_id": subscription_id}, countdown=countdown
        )
