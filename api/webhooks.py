"""Webhooks: an outbox over the bookings audit trail, like the OCPI pushes (ocpi.push). The
sweep reads BookingTransition rows past its own cursor and queues one delivery per event for
each subscription of the client that owns the booking; a deliverer per subscription POSTs them
in id order (so in order per booking), stopping at the first failure, which is retried with
backoff. Everything is decided from the database: a lost task or a restarted worker loses
nothing, the next sweep finds what is due.

Each delivery is signed: `X-Chargebook-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`
with the subscription's secret, `X-Chargebook-Timestamp` in epoch seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bookings.models import BookingTransition, Status
from bookings.selectors import audit_rows_after
from partners import outbound

from .models import (
    BookingRequest,
    Client,
    WebhookCursor,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from .selectors import client_booking_get

logger = logging.getLogger(__name__)

SWEEP_BATCH = 2000  # audit rows read per sweep pass
LEASE = timedelta(minutes=2)  # how long one deliverer owns a subscription's queue
MAX_ATTEMPTS = 12  # with the backoff below, about 5 hours of retrying before giving up
BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 3600

Event = BookingTransition.Event
STATUS_EVENTS = {
    Status.CANCELED: WebhookEvent.CANCELED,
    Status.FULFILLED: WebhookEvent.FULFILLED,
    Status.NO_SHOW: WebhookEvent.NO_SHOW,
    Status.FAILED: WebhookEvent.FAILED,
    Status.RESERVED: WebhookEvent.CHANGED,
}


def backoff(attempts: int) -> timedelta:
    """Exponential: 5 s, 10 s, 20 s, ... capped at an hour."""
    seconds = BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, BACKOFF_MAX_SECONDS))


def event_of(row: BookingTransition) -> str | None:
    """The webhook event an audit row announces, if any."""
    if row.event == Event.CREATED:
        return WebhookEvent.CREATED
    if row.event == Event.CHANGED:
        return WebhookEvent.CHANGED
    if row.event == Event.STATUS:
        return STATUS_EVENTS.get(row.to_status)
    if row.event == Event.CHARGER:
        return WebhookEvent.HELD if row.code == "HELD" else WebhookEvent.CHANGED
    return None  # REQUEST rows record OCPI requests


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def new_secret() -> str:
    return secrets.token_hex(32)


def sweep(*, now: datetime | None = None) -> set[int]:
    """Queue deliveries for new audit rows; returns the subscriptions with something due."""
    now = now or timezone.now()
    with transaction.atomic():
        cursor, _ = WebhookCursor.objects.select_for_update().get_or_create(name="bookings")
        rows, new_cursor = audit_rows_after(
            last_id=cursor.last_transition_id, now=now, limit=SWEEP_BATCH
        )
        wanted = [(row, event_of(row)) for row in rows]
        wanted = [(row, event) for row, event in wanted if event is not None]
        owners = dict(
            BookingRequest.objects.filter(
                type=BookingRequest.Type.CREATE,
                booking_id__in={row.booking_id for row, _ in wanted},
            ).values_list("booking_id", "client_id")
        )
        subscriptions: dict[int, list[WebhookSubscription]] = {}
        for sub in WebhookSubscription.objects.filter(
            active=True, client_id__in=set(owners.values())
        ):
            subscriptions.setdefault(sub.client_id, []).append(sub)
        deliveries = [
            WebhookDelivery(subscription=sub, transition=row, booking_id=row.booking_id,
                            event=event)
            for row, event in wanted
            for sub in subscriptions.get(owners.get(row.booking_id), [])
            if not sub.events or event in sub.events
        ]  # fmt: skip
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        if new_cursor != cursor.last_transition_id:
            cursor.last_transition_id = new_cursor
            cursor.save(update_fields=["last_transition_id", "updated_at"])
    return set(
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("subscription_id", flat=True)
        .distinct()
    )


def payload(delivery: WebhookDelivery, client: Client) -> dict:
    """The delivery's body: the event, the audit row's time, and the booking as it is now."""
    from .serializers import BookingSerializer

    booking = client_booking_get(client=client, booking_id=str(delivery.booking.uid))
    return {
        "id": delivery.pk,
        "event": delivery.event,
        "occurredAt": delivery.transition.at.isoformat().replace("+00:00", "Z"),
        "booking": BookingSerializer(booking).data,
    }


def _post(sub: WebhookSubscription, delivery: WebhookDelivery, now: datetime) -> int:
    body = json.dumps(payload(delivery, sub.client), separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    status, _ = outbound.send(
        "POST",
        sub.url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Chargebook-Webhooks/1",
            "X-Chargebook-Event": delivery.event,
            "X-Chargebook-Delivery": str(delivery.pk),
            "X-Chargebook-Timestamp": str(timestamp),
            "X-Chargebook-Signature": sign(sub.secret, timestamp, body),
        },
    )
    return status


@dataclass
class Delivered:
    sent: int = 0
    failed: bool = False
    retry_at: datetime | None = None


def _claim(subscription_id: int, now: datetime) -> datetime | None:
    """Take the subscription's queue for LEASE unless another deliverer holds it."""
    until = now + LEASE
    taken = (
        WebhookSubscription.objects.filter(pk=subscription_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=until)
    )
    return until if taken else None


def _renew(subscription_id: int, lease: datetime) -> datetime | None:
    """Extend a lease still held (unchanged since taken); None once another deliverer has it.
    Renewed before every POST, and a POST lasts at most the outbound deadline, so a backlog
    longer than LEASE never lets two deliverers send at once."""
    until = timezone.now() + LEASE
    kept = WebhookSubscription.objects.filter(pk=subscription_id, lease_until=lease).update(
        lease_until=until
    )
    return until if kept else None


def deliver(*, subscription_id: int, now: datetime | None = None, limit: int = 500) -> Delivered:
    """POST this subscription's pending deliveries in id order, stopping at the first failure
    (retried with exponential backoff). One deliverer per subscription runs at a time."""
    now = now or timezone.now()
    result = Delivered()
    lease = _claim(subscription_id, now)
    if lease is None:
        return result
    try:
        sub = WebhookSubscription.objects.select_related("client").get(pk=subscription_id)
        pending = WebhookDelivery.objects.filter(
            subscription_id=subscription_id, state=WebhookDelivery.State.PENDING
        )
        for _ in range(limit):
            delivery = pending.select_related("booking", "transition").order_by("id").first()
            if delivery is None:
                break
            if delivery.next_attempt_at and delivery.next_attempt_at > now:
                result.retry_at = delivery.next_attempt_at
                break  # in order: later deliveries wait behind this one
            lease = _renew(subscription_id, lease)
            if lease is None:
                logger.warning("Webhook lease of subscription %s lost", subscription_id)
                break
            started = max(now, timezone.now())
            try:
                status = _post(sub, delivery, started)
                error = "" if 200 <= status < 300 else f"HTTP {status}"
            except outbound.OutboundError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if not error:
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    state=WebhookDelivery.State.SENT, attempts=delivery.attempts + 1,
                    sent_at=timezone.now(), last_status=str(status), last_error="",
                )  # fmt: skip
                result.sent += 1
                continue
            attempts = delivery.attempts + 1
            gave_up = attempts >= MAX_ATTEMPTS
            retry_at = started + backoff(attempts)
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                attempts=attempts, last_error=error[:2000],
                last_status=str(status or "unreachable"), next_attempt_at=retry_at,
                state=WebhookDelivery.State.GAVE_UP if gave_up else WebhookDelivery.State.PENDING,
            )  # fmt: skip
            logger.warning("Webhook %s to %s failed (%s): %s", delivery.pk, sub.url, attempts,
                           error)  # fmt: skip
            result.failed = True
            if not gave_up:
                result.retry_at = retry_at
                break
        else:  # `limit` deliveries done: if more wait, a fresh task goes on at once
            if pending.exists():
                result.retry_at = timezone.now()
    finally:
        if lease is not None:  # only our own lease: a lost one belongs to the next deliverer
            WebhookSubscription.objects.filter(pk=subscription_id, lease_until=lease).update(
                lease_until=None
            )
    return result


def resend(*, delivery_ids: list[int]) -> int:
    """Admin action: send these deliveries again (sent, failed or given up alike). Each goes
    back to its place in its subscription's queue, so later events still wait behind it."""
    return WebhookDelivery.objects.filter(pk__in=delivery_ids).update(
        state=WebhookDelivery.State.PENDING, next_attempt_at=None
    )
