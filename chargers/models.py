"""What the CSMS owns: the reservations it placed at chargers and the sessions chargers report.

Bookings are referred to by plain id (`booking_id`): `bookings` depends on `chargers`, not the
other way round (STYLE.md, dependency direction).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from locations.models import EVSE, ChargePoint


class ChargerReservation(models.TextChoices):
    """Where a booking's hold at its charger stands (OCPP ReserveNow/CancelReservation).

    One vocabulary for both sides of the hold: each placement the csms makes
    (Reservation.status, PLACEMENT_STATES) and the booking's own summary for staff
    (bookings' Booking.charger_reservation, BOOKING_STATES). A booking shows its current
    placement's state while that placement is being sent or answered. Defined here
    because bookings depends on chargers, not the other way round.
    """

    # A booking that has no placement yet, or never will.
    NOT_SENT = "NOT_SENT", "Not sent yet"
    NOT_SUPPORTED = "NOT_SUPPORTED", "Not reservable"
    # A placement being sent, and the charger's answer.
    SENDING = "SENDING", "Sending"
    HELD = "HELD", "Held at charger"
    OCCUPIED = "OCCUPIED", "Charger occupied"
    FAULTED = "FAULTED", "Charger faulted"
    UNAVAILABLE = "UNAVAILABLE", "Charger unavailable"
    REJECTED = "REJECTED", "Charger rejected"
    OFFLINE = "OFFLINE", "Charger offline"
    # Held, then the charger restarted or reconnected: it may have lost it, so it is sent again.
    RESEND = "RESEND", "Sending again"
    # A placement no longer wanted, or no longer held at the charger.
    CANCEL_DUE = "CANCEL_DUE", "To cancel"
    CANCELED = "CANCELED", "Canceled"
    EXPIRED = "EXPIRED", "Expired at charger"
    REMOVED = "REMOVED", "Removed at charger"
    USED = "USED", "Used by a session"
    DROPPED = "DROPPED", "No longer wanted"
    # Believed held, but the charger answered its CancelReservation Rejected: it had lost it.
    LOST = "LOST", "Lost by the charger"
    # A booking whose hold ended: cancelled, finished, used by a session or dropped.
    RELEASED = "RELEASED", "Released"


# A charger refused or could not be reached, or may have lost the hold: ReserveNow is tried
# again once next_attempt_at has passed.
RETRY_STATUSES = [
    ChargerReservation.OCCUPIED,
    ChargerReservation.FAULTED,
    ChargerReservation.UNAVAILABLE,
    ChargerReservation.REJECTED,
    ChargerReservation.OFFLINE,
    ChargerReservation.RESEND,
]
CLOSED_STATUSES = [
    ChargerReservation.CANCELED,
    ChargerReservation.EXPIRED,
    ChargerReservation.REMOVED,
    ChargerReservation.USED,
    ChargerReservation.DROPPED,
    ChargerReservation.LOST,
]
# A placement being sent or answered; a booking shows its current placement's state as its own.
ATTEMPT_STATES = [ChargerReservation.SENDING, ChargerReservation.HELD, *RETRY_STATUSES]
# What one placement at a charger can be (Reservation.status).
PLACEMENT_STATES = [*ATTEMPT_STATES, ChargerReservation.CANCEL_DUE, *CLOSED_STATUSES]
# What a booking can show staff (Booking.charger_reservation).
BOOKING_STATES = [
    ChargerReservation.NOT_SENT,
    ChargerReservation.NOT_SUPPORTED,
    *ATTEMPT_STATES,
    ChargerReservation.RELEASED,
]


class ReservationQuerySet(models.QuerySet["Reservation"]):
    def current(self) -> ReservationQuerySet:
        return self.filter(is_current=True)

    def of_booking(self, booking_id: int) -> ReservationQuerySet:
        return self.filter(booking_id=booking_id)


class Reservation(models.Model):
    """One placement of a booking at a charger: (EVSE, token, expiry). Its id is the OCPP
    reservationId, so resending ReserveNow for the same placement replaces rather than adds
    (OCPP 1.6 §5.13, 2.0.1 H01.FR.02), and cancelling an old placement never hits a new one."""

    id = models.AutoField(primary_key=True)  # int4: OCPP reservationId is a 32-bit integer
    booking_id = models.BigIntegerField(db_index=True)
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="reservations"
    )
    evse = models.ForeignKey(EVSE, on_delete=models.CASCADE, related_name="reservations")
    id_tag = models.CharField(max_length=36)
    token_type = models.CharField(max_length=16, blank=True, help_text="OCPI TokenType")
    connector_type = models.CharField(max_length=20, blank=True, help_text="OCPP 2.0.1 code")
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=16,
        choices=[(state.value, state.label) for state in PLACEMENT_STATES],
        default=ChargerReservation.SENDING,
    )
    is_current = models.BooleanField(
        default=True, help_text="The placement the booking wants now (one per booking)."
    )
    detail = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    held_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the charger last accepted it (while HELD); a boot or reconnect of the "
        "charger after this means it may have lost it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReservationQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=Q(is_current=True),
                name="reservation_due_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["booking_id"],
                condition=Q(is_current=True),
                name="reservation_one_current_per_booking",
            ),
            models.CheckConstraint(
                condition=Q(status__in=PLACEMENT_STATES), name="reservation_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Reservation {self.pk} for booking {self.booking_id} ({self.status})"


class ChargingSession(models.Model):
    """A transaction a charger reported (1.6 Start/StopTransaction, 2.0.1 TransactionEvent)."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="sessions")
    evse = models.ForeignKey(
        EVSE, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions"
    )
    transaction_id = models.CharField(
        max_length=36, help_text="Charger's id (2.0.1) or ours (1.6: this row's id)."
    )
    id_tag = models.CharField(max_length=36, blank=True)
    reservation_id = models.IntegerField(null=True, blank=True)
    booking_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    meter_start_wh = models.IntegerField(null=True, blank=True)
    meter_stop_wh = models.IntegerField(null=True, blank=True)
    # The latest meter value (the register, in Wh) and when it was read: energy so far.
    meter_last_wh = models.DecimalField(max_digits=16, decimal_places=3, null=True, blank=True)
    meter_last_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    authorization_reference = models.CharField(
        max_length=36,
        blank=True,
        help_text="The reference of the remote start that began it (OCPI START_SESSION), if any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "transaction_id"], name="chargingsession_unique_per_cp"
            )
        ]
        indexes = [
            # Availability asks which EVSEs have a session running now (bookings.selectors).
            models.Index(
                fields=["evse"],
                condition=Q(stopped_at__isnull=True),
                name="chargingsession_running_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Session {self.transaction_id} on {self.charge_point_id}"

    @property
    def energy_wh(self) -> Decimal | None:
        """Energy delivered so far (or in all, once stopped), from the meter's readings."""
        last = self.meter_stop_wh if self.meter_stop_wh is not None else self.meter_last_wh
        if last is None or self.meter_start_wh is None:
            return None
        return max(Decimal(last) - self.meter_start_wh, Decimal(0))


class MeterReading(models.Model):
    """A meter value of a session: the energy register, power and current at a moment (what
    CDR charging periods are made of)."""

    session = models.ForeignKey(
        ChargingSession, on_delete=models.CASCADE, related_name="meter_readings"
    )
    at = models.DateTimeField()
    energy_wh = models.DecimalField(max_digits=16, decimal_places=3, null=True, blank=True)
    power_w = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    current_a = models.DecimalField(max_digits=9, decimal_places=3, null=True, blank=True)

    class Meta:
        ordering = ["session", "at"]
        constraints = [
            models.UniqueConstraint(fields=["session", "at"], name="meterreading_once_per_moment")
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.energy_wh} Wh"


class ChargeDetailRecord(models.Model):
    """What a finished session, or a booking that owes a fee without one, costs: issued once
    (bookings.billing) and never changed. It keeps its own copy of the charging periods and the
    priced lines, so later meter readings or tariff edits do not change an issued record."""

    class Kind(models.TextChoices):
        SESSION = "SESSION", "Charging session"
        NO_SHOW = "NO_SHOW", "No-show fee"
        CANCELLATION = "CANCELLATION", "Cancellation fee"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    session = models.OneToOneField(
        ChargingSession, on_delete=models.PROTECT, null=True, blank=True, related_name="cdr"
    )
    booking_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    location = models.ForeignKey(
        "locations.Location", on_delete=models.PROTECT, related_name="cdrs"
    )
    evse = models.ForeignKey(
        EVSE, on_delete=models.SET_NULL, null=True, blank=True, related_name="cdrs"
    )
    id_tag = models.CharField(max_length=36, blank=True, help_text="The token uid charged.")
    authorization_reference = models.CharField(max_length=36, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    tariff_id = models.CharField(max_length=36, blank=True, help_text="OCPI id of the tariff.")
    currency = models.CharField(max_length=3)
    energy_wh = models.DecimalField(max_digits=16, decimal_places=3, default=Decimal(0))
    charging_seconds = models.PositiveIntegerField(default=0)
    parking_seconds = models.PositiveIntegerField(default=0)
    # [{"start", "end", "energy_wh", "charging", "power_kw"}] of the session, or the booked or
    # held time of a fee: [{"start", "end", "dimension"}]
    periods = models.JSONField(default=list)
    # [{"dimension", "volume", "price", "amount", "fee"}]: `fee` is the booking element kind
    # (RESERVATION, ...) for booking fees, "" for the session's own lines.
    lines = models.JSONField(default=list)
    before_taxes = models.DecimalField(max_digits=14, decimal_places=4)
    after_taxes = models.DecimalField(max_digits=14, decimal_places=4)
    tax_name = models.CharField(max_length=32, blank=True)
    tax_percentage = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    prices_include_taxes = models.BooleanField(
        default=False, help_text="Whether the amounts of `lines` include taxes (as the tariff's)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "charge detail record"
        constraints = [
            models.UniqueConstraint(
                fields=["booking_id", "kind"],
                condition=~Q(kind="SESSION"),
                name="cdr_one_fee_per_booking",
            ),
            models.CheckConstraint(
                condition=Q(kind="SESSION", session__isnull=False)
                | (~Q(kind="SESSION") & Q(session__isnull=True, booking_id__isnull=False)),
                name="cdr_kind_matches_source",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__gte=models.F("started_at")), name="cdr_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"CDR {self.pk} ({self.get_kind_display()}, {self.after_taxes} {self.currency})"

    def amount_of(self, *, fee: bool, dimension: str | None = None) -> Decimal:
        """The sum of the priced lines of booking fees (`fee`) or of the session itself, of one
        dimension or all (in the tariff's prices, before or after taxes as it says)."""
        return sum(
            (Decimal(x["amount"]) for x in self.lines
             if bool(x.get("fee")) == fee and dimension in (None, x["dimension"])),
            Decimal(0),
        )  # fmt: skip


class RemoteCommand(models.Model):
    """A remote start, stop or unlock sent to a charger on someone's behalf (OCPI START_SESSION,
    STOP_SESSION, UNLOCK_CONNECTOR), and the charger's answer. Sent at most once: a command that
    cannot go out at once is not sent later, when the driver may have left. Its id is the OCPP
    2.0.1 remoteStartId, which the charger repeats in the transaction it starts."""

    class Action(models.TextChoices):
        START = "START", "Remote start"
        STOP = "STOP", "Remote stop"
        UNLOCK = "UNLOCK", "Unlock connector"

    id = models.AutoField(primary_key=True)  # int4: OCPP 2.0.1 remoteStartId is an integer
    action = models.CharField(max_length=8, choices=Action.choices)
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="remote_commands"
    )
    evse = models.ForeignKey(
        EVSE, on_delete=models.SET_NULL, null=True, blank=True, related_name="remote_commands"
    )
    ocpp_connector_id = models.PositiveSmallIntegerField(null=True, blank=True)
    id_tag = models.CharField(max_length=36, blank=True, help_text="START: the token to start for.")
    token_type = models.CharField(max_length=16, blank=True, help_text="OCPP 2.0.1 IdTokenEnum")
    authorization_reference = models.CharField(max_length=36, blank=True)
    transaction_id = models.CharField(max_length=36, blank=True, help_text="STOP: the session's.")
    session = models.ForeignKey(
        ChargingSession,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="remote_commands",
        help_text="START: the session the charger then started; STOP: the session to stop.",
    )
    reply = models.CharField(
        max_length=32, blank=True, help_text="The charger's answer, or Offline/Timeout/NotSent."
    )
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # A session start looks for the remote start it answers (services.session_start).
            models.Index(
                fields=["charge_point", "created_at"],
                condition=Q(action="START", session__isnull=True),
                name="remotecommand_open_start_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["START", "STOP", "UNLOCK"]),
                name="remotecommand_action_valid",
            ),
            models.CheckConstraint(
                condition=~Q(action="START") | ~Q(id_tag=""), name="remotecommand_start_has_id_tag"
            ),
            models.CheckConstraint(
                condition=~Q(action="STOP") | ~Q(transaction_id=""),
                name="remotecommand_stop_has_transaction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.pk} on {self.charge_point_id}"
