"""What the OCPI interface keeps: roaming parties with their credentials and endpoints, the eMSP
Tokens pushed to us, ReserveNow commands, and the push outbox to eMSPs.

The credentials tokens we issue (A and C) are stored only as SHA-256 digests: they are long
random strings, so a fast digest is as safe as a slow password hash and keeps auth to one
indexed lookup. The token an eMSP gives us (B) is kept as is, because we present it to them.
"""

from __future__ import annotations

import hashlib

from django.db import models
from django.db.models import Q

from bookings.models import TOKEN_TYPE_MAX_LENGTH


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Party(models.Model):
    """A roaming partner (eMSP) we exchange OCPI with."""

    class Role(models.TextChoices):
        EMSP = "EMSP", "eMSP"
        CPO = "CPO", "CPO"
        NSP = "NSP", "NSP"
        OTHER = "OTHER", "Other"

    class State(models.TextChoices):
        PENDING = "PENDING", "Token A issued, not registered yet"
        REGISTERED = "REGISTERED", "Registered"
        UNREGISTERED = "UNREGISTERED", "Unregistered"

    country_code = models.CharField(max_length=2, help_text="ISO 3166 alpha-2, e.g. DE")
    party_id = models.CharField(max_length=3, help_text="e.g. XMS")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.EMSP)
    name = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    token_a_digest = models.CharField(max_length=64, blank=True, editable=False)
    token_c_digest = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Digest of the token they call us with.",
    )
    token_b = models.CharField(
        "their token",
        max_length=64,
        blank=True,
        help_text="The credentials token we present when calling them.",
    )
    legacy_raw_token = models.BooleanField(
        default=False,
        help_text="Accept and send the token without Base64 (OCPI 2.1.1/2.2 peers).",
    )
    versions_url = models.URLField(max_length=255, blank=True)
    version = models.CharField(max_length=8, blank=True)
    endpoints = models.JSONField(
        default=list, blank=True, help_text="Their version details endpoints (identifier/role/url)."
    )
    roles = models.JSONField(default=list, blank=True, help_text="Their CredentialsRoles.")
    booking_module_id = models.CharField(
        max_length=16, default="Booking", help_text="Module identifier we publish for Bookings."
    )
    booking_module_version = models.CharField(
        max_length=4,
        choices=[("1.0", "Bookings 1.0"), ("1.1", "Bookings 1.1")],
        default="1.0",
        help_text="Wire shape of the Bookings module for this party (agreed out of band).",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests a minute over all of OCPI; empty: OCPI_RATE_LIMIT_PER_MINUTE.",
    )
    registered_at = models.DateTimeField(null=True, blank=True)
    push_lease_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="A deliverer holds this party's queue."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "parties"
        ordering = ["country_code", "party_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["country_code", "party_id"], name="party_unique_identity"
            ),
            models.UniqueConstraint(
                fields=["token_a_digest"], condition=~Q(token_a_digest=""), name="party_token_a"
            ),
            models.UniqueConstraint(
                fields=["token_c_digest"], condition=~Q(token_c_digest=""), name="party_token_c"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["PENDING", "REGISTERED", "UNREGISTERED"]),
                name="party_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.country_code}*{self.party_id} {self.name}".strip()

    @property
    def is_registered(self) -> bool:
        return self.state == self.State.REGISTERED

    def endpoint(self, identifier: str, role: str | None = None) -> str | None:
        """Their endpoint URL for a module; the Booking identifier is matched leniently (A1)."""
        wanted = identifier.lower()
        aliases = {"booking", "bookings"} if wanted in {"booking", "bookings"} else {wanted}
        for e in self.endpoints or ():
            if str(e.get("identifier", "")).lower() in aliases and (
                role is None or e.get("role") == role
            ):
                return e.get("url")
        return None


class Token(models.Model):
    """A driver Token an eMSP pushed to us (Tokens module, we are the Receiver)."""

    owner = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="tokens")
    country_code = models.CharField(max_length=2)
    party_id = models.CharField(max_length=3)
    uid = models.CharField(max_length=36)
    type = models.CharField(max_length=TOKEN_TYPE_MAX_LENGTH)
    contract_id = models.CharField(max_length=36)
    visual_number = models.CharField(max_length=64, blank=True)
    issuer = models.CharField(max_length=64)
    group_id = models.CharField(max_length=36, blank=True)
    valid = models.BooleanField()
    whitelist = models.CharField(max_length=16)
    language = models.CharField(max_length=2, blank=True)
    default_profile_type = models.CharField(max_length=16, blank=True)
    energy_contract = models.JSONField(null=True, blank=True)
    last_updated = models.DateTimeField()

    class Meta:
        ordering = ["last_updated", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["country_code", "party_id", "uid", "type"], name="token_unique_identity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.uid} ({self.country_code}*{self.party_id})"


class Command(models.Model):
    """A command received from an eMSP, and its CommandResult. A RESERVE_NOW makes a booking;
    START_SESSION, STOP_SESSION and UNLOCK_CONNECTOR go to the charger as a RemoteCommand."""

    class Type(models.TextChoices):
        RESERVE_NOW = "RESERVE_NOW"
        CANCEL_RESERVATION = "CANCEL_RESERVATION"
        START_SESSION = "START_SESSION"
        STOP_SESSION = "STOP_SESSION"
        UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"

    class Result(models.TextChoices):
        ACCEPTED = "ACCEPTED"
        CANCELED_RESERVATION = "CANCELED_RESERVATION"
        EVSE_OCCUPIED = "EVSE_OCCUPIED"
        EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
        FAILED = "FAILED"
        NOT_SUPPORTED = "NOT_SUPPORTED"
        REJECTED = "REJECTED"
        TIMEOUT = "TIMEOUT"
        UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"

    party = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="commands")
    type = models.CharField(max_length=24, choices=Type.choices)
    reservation_id = models.CharField(max_length=36, blank=True)
    response_url = models.URLField(max_length=255)
    booking = models.ForeignKey(
        "bookings.Booking", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    remote_command = models.ForeignKey(
        "chargers.RemoteCommand",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="START_SESSION, STOP_SESSION, UNLOCK_CONNECTOR: what went to the charger.",
    )
    payload = models.JSONField()
    result = models.CharField(max_length=24, choices=Result.choices, blank=True)
    result_sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [models.Index(fields=["party", "reservation_id"], name="command_reservation_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.reservation_id}"


class PushCursor(models.Model):
    """How far the push sweep has read the bookings audit trail (the outbox)."""

    name = models.CharField(max_length=32, unique=True)
    last_transition_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_transition_id}"


class Push(models.Model):
    """One object to push to one party; delivered per party in id order, retried with backoff."""

    class Kind(models.TextChoices):
        BOOKING = "BOOKING", "Booking (PUT)"
        BOOKING_LOCATION = "LOCATION", "BookingLocation (PUT)"
        SESSION = "SESSION", "Session (PUT)"
        CDR = "CDR", "CDR (POST)"
        TARIFF = "TARIFF", "Tariff (PUT or DELETE)"

    class State(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SENT = "SENT", "Sent"
        SKIPPED = "SKIPPED", "Superseded or not applicable"
        GAVE_UP = "GAVE_UP", "Gave up"

    party = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="pushes")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    booking = models.ForeignKey(
        "bookings.Booking", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    evse = models.ForeignKey(
        "locations.EVSE", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    session = models.ForeignKey(
        "chargers.ChargingSession", on_delete=models.CASCADE, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    cdr = models.ForeignKey(
        "chargers.ChargeDetailRecord", on_delete=models.CASCADE, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    # A tariff is pushed by its OCPI id, which outlives the row: a deleted tariff is a DELETE.
    tariff_uid = models.CharField(max_length=36, blank=True)
    transition_id = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "pushes"
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["party", "id"], condition=Q(state="PENDING"), name="push_pending_idx"
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["party", "transition_id"],
                condition=Q(kind="BOOKING", transition_id__isnull=False),
                name="push_booking_once_per_transition",
            ),
            models.UniqueConstraint(
                fields=["party", "transition_id", "evse"],
                condition=Q(kind="LOCATION", transition_id__isnull=False),
                name="push_location_once_per_transition",
            ),
            models.CheckConstraint(
                condition=Q(kind="BOOKING", booking__isnull=False)
                | Q(kind="LOCATION", evse__isnull=False)
                | Q(kind="SESSION", session__isnull=False)
                | Q(kind="CDR", cdr__isnull=False)
                | (Q(kind="TARIFF") & ~Q(tariff_uid="")),
                name="push_target_matches_kind",
            ),
            # A CDR is POSTed once to each party (it is not a PUT of a current state).
            models.UniqueConstraint(
                fields=["party", "cdr"], condition=Q(kind="CDR"), name="push_cdr_once"
            ),
        ]

    def __str__(self) -> str:
        target = {
            self.Kind.BOOKING: self.booking_id,
            self.Kind.BOOKING_LOCATION: self.evse_id,
            self.Kind.SESSION: self.session_id,
            self.Kind.CDR: self.cdr_id,
        }.get(self.kind, self.tariff_uid)
        return f"{self.kind} {target} -> {self.party} ({self.state})"
