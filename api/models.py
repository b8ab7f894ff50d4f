"""API clients (an OAuth2 application with scopes and optional location limits), the drivers a
client created, and the booking requests clients send.

Booking rules live in `bookings`; these rows only record who asked for what and what the
domain decided.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from oauth2_provider.models import Application

from bookings.models import Booking, Driver
from locations.models import EVSE, Location


class Scope(models.TextChoices):
    READ = "read", "Read locations, availability, own requests, bookings and drivers"
    BOOK = "book", "Send booking requests and connector reservations"
    DRIVERS = "drivers", "Create drivers and see every driver"
    WEBHOOKS = "webhooks", "Manage webhook subscriptions"


class Client(models.Model):
    """What an OAuth2 application may do through the API."""

    application = models.OneToOneField(
        Application, on_delete=models.CASCADE, related_name="api_client"
    )
    scopes = ArrayField(
        models.CharField(max_length=16, choices=Scope.choices),
        default=list,
        blank=True,
        help_text="read, book, drivers, webhooks.",
    )
    locations = models.ManyToManyField(
        Location,
        blank=True,
        related_name="+",
        help_text="Limit the client to these locations; none means every location.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests a minute per scope; empty: API_RATE_LIMIT_PER_MINUTE.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["application__name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=Scope.values), name="client_scopes_valid"
            )
        ]

    def __str__(self) -> str:
        return self.application.name or self.application.client_id

    @property
    def label(self) -> str:
        """How the audit trail names the client."""
        return f"api:{self}"


class ClientDriver(models.Model):
    """A driver a client created (it may see them without the drivers scope)."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="drivers")
    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="api_clients")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "driver"], name="clientdriver_unique")
        ]

    def __str__(self) -> str:
        return f"{self.driver} ({self.client})"


class BookingRequest(models.Model):
    """One booking request a client sent (create, update or cancel) and its decision."""

    class Type(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        CANCEL = "cancel"

    class Status(models.TextChoices):
        APPROVED = "approved"
        REJECTED = "rejected"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="requests")
    type = models.CharField(max_length=8, choices=Type.choices)
    status = models.CharField(max_length=8, choices=Status.choices)
    external_id = models.CharField(max_length=255, blank=True)
    booking = models.ForeignKey(
        Booking,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_requests",
        help_text="The booking made, changed or canceled; empty for a refused create.",
    )
    driver = models.ForeignKey(
        Driver, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    evse = models.ForeignKey(
        EVSE,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The EVSE asked for (empty when assigned by criteria).",
    )
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(help_text="The request as received.")
    reason_code = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "external_id"],
                condition=~Q(external_id=""),
                name="apibookingrequest_unique_external_id_per_client",
            ),
            models.CheckConstraint(
                condition=Q(status="rejected") | Q(booking__isnull=False),
                name="apibookingrequest_approved_has_booking",
            ),
            # A booking has one create request at most: its owner (api.selectors.client_bookings).
            models.UniqueConstraint(
                fields=["booking"],
                condition=Q(type="create"),
                name="apibookingrequest_one_create_per_booking",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.status} #{self.pk}"


class WebhookEvent(models.TextChoices):
    CREATED = "booking.created", "Booking created"
    CHANGED = "booking.changed", "Booking moved or its charger hold changed"
    CANCELED = "booking.canceled", "Booking canceled"
    HELD = "booking.held", "Booking held at the charger (ReserveNow accepted)"
    FULFILLED = "booking.fulfilled", "Booking fulfilled (a session started)"
    NO_SHOW = "booking.no_show", "Booking no-show"
    FAILED = "booking.failed", "Booking failed"


class WebhookSubscription(models.Model):
    """A URL of a client that receives its bookings' events, signed with this secret."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(
        max_length=64, help_text="Signs every delivery (HMAC-SHA256); shown to the client once."
    )
    events = ArrayField(
        models.CharField(max_length=32, choices=WebhookEvent.choices),
        default=list,
        blank=True,
        help_text="The events to send; none means all.",
    )
    active = models.BooleanField(default=True)
    # One deliverer at a time per subscription, so deliveries leave in order.
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(events__contained_by=WebhookEvent.values),
                name="webhooksubscription_events_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.client}: {self.url}"


class WebhookDelivery(models.Model):
    """One event of one booking for one subscription: sent in id order per subscription,
    retried with backoff, re-sendable from the admin."""

    class State(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SENT = "SENT", "Sent"
        GAVE_UP = "GAVE_UP", "Gave up"

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    transition = models.ForeignKey(
        "bookings.BookingTransition", on_delete=models.PROTECT, related_name="+"
    )
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="+")
    event = models.CharField(max_length=32, choices=WebhookEvent.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["subscription", "id"],
                condition=Q(state="PENDING"),
                name="webhookdelivery_pending_idx",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "transition"], name="webhookdelivery_once_per_row"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk} ({self.state})"


class WebhookCursor(models.Model):
    """How far the webhook sweep has read the bookings audit trail."""

    name = models.CharField(max_length=32, unique=True)
    last_transition_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_transition_id}"
