"""Webhooks: an outbox over the bookings audit trail, like the OCPI pushes (ocpi.push). The
sweep reads BookingTransition rows past its own cursor and queues one delivery per event for
each subscription of the client that owns the booking; a deliverer per subscription POSTs them
in id order (so in order per booking), stopping at the first failure, which is retried with
backoff (partners.outbox, which delivers the pushes too). Everything is decided from the
database: a lost task or a restarted worker loses nothing, the next sweep finds what is due.

Each delivery is signed: `X-Chargebook-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`
with the subscription's secret, `X-Chargebook-Timestamp` in epoch seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from bookings.models import BookingTransition, Status
from bookings.selectors import audit_rows_after
from partners import outbound
from partners.outbox import Delivery, Outbox, SendFailed, due_owners

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

Event = BookingTransition.Event
STATUS_EVENTS = {
    Status.CANCELED: WebhookEvent.CANCELED,
    Status.FULFILLED: WebhookEvent.FULFILLED,
    Status.NO_SHOW: WebhookEvent.NO_SHOW,
    Status.FAILED: WebhookEvent.FAILED,
    Status.RESERVED: WebhookEvent.CHANGED,
}


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
    return due_owners(WebhookDelivery.objects.all(), "subscription_id", now=now)


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


class SubscriptionDeliveries(Outbox):
    """A subscription's deliveries (partners.outbox delivers them): each POSTed, signed; any 2xx
    counts as received."""

    lease_field = "lease_until"
    subscription: WebhookSubscription  # loaded under the lease (prepare)

    def __init__(self, subscription_id: int) -> None:
        self.subscription_id = subscription_id

    def __str__(self) -> str:
        return f"Webhooks of subscription {self.subscription_id}"

    def owner(self) -> QuerySet[WebhookSubscription]:
        return WebhookSubscription.objects.filter(pk=self.subscription_id)

    def rows(self) -> QuerySet[WebhookDelivery]:
        return WebhookDelivery.objects.filter(subscription_id=self.subscription_id).select_related(
            "booking", "transition"
        )

    def prepare(self) -> bool:
        self.subscription = WebhookSubscription.objects.select_related("client").get(
            pk=self.subscription_id
        )
        return True

    def send(self, row: WebhookDelivery, *, started: datetime) -> str:
        try:
            status = _post(self.subscription, row, started)
        except outbound.OutboundError as error:
            raise SendFailed(f"{type(error).__name__}: {error}") from error
        if not 200 <= status < 300:
            raise SendFailed(f"HTTP {status}", status=str(status))
        return str(status)


def deliver(*, subscription_id: int, now: datetime | None = None, limit: int = 500) -> Delivery:
    """POST this subscription's pending deliveries in id order, one deliverer per subscription
    at a time, retrying a failure with backoff (partners.outbox)."""
    return SubscriptionDeliveries(subscription_id).deliver(now=now, limit=limit)


def resend(*, delivery_ids: list[int]) -> int:
    """Admin action: send these deliveries again (sent, failed or given up alike). Each goes
    back to its place in its subscription's queue, so later events still wait behind it."""
    return WebhookDelivery.objects.filter(pk__in=delivery_ids).update(
        state=WebhookDelivery.State.PENDING, next_attempt_at=None
    )
