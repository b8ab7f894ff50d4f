"""Bookings, their OCPI request history and the append-only audit trail.

States are the OCPI ReservationStatus values. Only `bookings.services` changes `status`.
"""

from __future__ import annotations

import uuid

import pgtrigger
from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, DateTimeRangeField, RangeOperators
from django.contrib.postgres.indexes import GistIndex
from django.db import models
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import F, Func, Q, Value
from django.db.models.functions import Cast, Lower

from chargers.models import BOOKING_STATES, ChargerReservation
from locations.models import EVSE, Connector, Location


def tstzrange(start, end) -> DateTimeTZRange:
    """A [start, end) timestamp range as the period fields store it."""
    return DateTimeTZRange(start, end, "[)")


def bigint(pk: int) -> Cast:
    """A primary key as a bigint SQL value.

    The client-side bound `evse_id = 123` compares bigint with int4, an operator btree_gist does
    not index: PostgreSQL would then scan the GiST index by period alone, across every EVSE
    (256 ms instead of 0.1 ms at a million bookings). The cast keeps the id in the index cond.
    """
    return Cast(Value(int(pk)), output_field=models.BigIntegerField())


class Status(models.TextChoices):
    PENDING = "PENDING", "Pending"
    RESERVED = "RESERVED", "Reserved"
    CANCELED = "CANCELED", "Canceled"
    FAILED = "FAILED", "Failed"
    NO_SHOW = "NO_SHOW", "No-show"
    FULFILLED = "FULFILLED", "Fulfilled"
    REJECTED = "REJECTED", "Rejected"


# Bookings in these states hold their slot (a fulfilled one until its end: the driver is
# charging); module level because Meta cannot see the class body.
BLOCKING_STATUSES = [Status.PENDING, Status.RESERVED, Status.FULFILLED]
BLOCKING_STATUSES_SQL = ", ".join(f"'{status}'" for status in BLOCKING_STATUSES)
# Bookings in these states have not started yet: they may still change or be cancelled.
OPEN_STATUSES = [Status.PENDING, Status.RESERVED]
# The CREATED audit code of a booking made to undo a cancel; its details name the cancelled one
# as "rebook_of" (bookings.services.booking_rebook).
REBOOK_CODE = "rebook"
# Ended without a charge, yet part of the day a desk looks back on (the timeline draws them).
ENDED_STATUSES = [Status.CANCELED, Status.NO_SHOW]
ENDED_STATUSES_SQL = ", ".join(f"'{status}'" for status in ENDED_STATUSES)
FINAL_STATUSES = [Status.CANCELED, Status.FAILED, Status.NO_SHOW, Status.FULFILLED, Status.REJECTED]


def _epoch_us(bound: str, range_field: str) -> models.GeneratedField:
    """A stored column holding a range's `lower` or `upper` bound as epoch microseconds.

    `AT TIME ZONE 'UTC'` makes the expression immutable, as a generated column must be, with
    the same value.
    """
    template = (
        f"((extract(epoch FROM ({bound}(%(expressions)s) AT TIME ZONE 'UTC')) * 1000000)::bigint)"
    )
    return models.GeneratedField(
        expression=Func(F(range_field), template=template, output_field=models.BigIntegerField()),
        output_field=models.BigIntegerField(),
        db_persist=True,
    )


class CanceledReason(models.TextChoices):
    POWER_OUTAGE = "POWER_OUTAGE", "Power outage"
    BROKEN_CHARGER = "BROKEN_CHARGER", "Broken charger"
    FULL = "FULL", "Chargers occupied"
    BLOCKED = "BLOCKED", "Charger blocked"
    TRAFFIC = "TRAFFIC", "Traffic"
    BROKEN_VEHICLE = "BROKEN_VEHICLE", "Broken vehicle"
    NO_CANCELED = "NO_CANCELED", "No reason given"
    UNKNOWN = "UNKNOWN", "Other"


class Role(models.TextChoices):
    CPO = "CPO"
    EMSP = "EMSP"


# TokenType is an OCPI OpenEnum: an eMSP may send types beyond ours, kept as sent up to this length.
TOKEN_TYPE_MAX_LENGTH = 64


class TokenType(models.TextChoices):
    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    EMAID = "EMAID"
    OTHER = "OTHER"
    RFID = "RFID"
    LICENSE_PLATE = "LICENSE_PLATE"


class Driver(models.Model):
    """A person staff book for; their tokens become the booking's tokens."""

    name = models.CharField(max_length=120)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    license_plate = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["email"], name="driver_email_idx")]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name


class DriverToken(models.Model):
    """An identification token of a driver (an OCPI Token, cut down to what bookings need)."""

    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="tokens")
    country_code = models.CharField(max_length=2)
    party_id = models.CharField(max_length=3)
    uid = models.CharField(max_length=36)
    type = models.CharField(max_length=16, choices=TokenType.choices, default=TokenType.RFID)
    contract_id = models.CharField(max_length=36)

    class Meta:
        ordering = ["uid"]
        constraints = [
            models.UniqueConstraint(
                fields=["country_code", "party_id", "uid", "type"], name="drivertoken_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.uid}"


class BookingQuerySet(models.QuerySet["Booking"]):
    def blocking(self) -> BookingQuerySet:
        return self.filter(status__in=BLOCKING_STATUSES)

    def overlapping(self, window: tuple) -> BookingQuerySet:
        """Bookings whose blocked time (slot plus buffer) meets the [start, end) window."""
        return self.filter(blocked_period__overlap=window)

    def of_evse(self, evse_id: int) -> BookingQuerySet:
        """Filter on one EVSE in a way the GiST indexes can use (see `bigint`)."""
        return self.filter(evse_id=bigint(evse_id))

    def of_location(self, location_id: int) -> BookingQuerySet:
        return self.filter(location_id=bigint(location_id))

    def for_party(self, country_code: str, party_id: str) -> BookingQuerySet:
        return self.filter(emsp_country_code=country_code, emsp_party_id=party_id)


class Booking(models.Model):
    class Channel(models.TextChoices):
        STAFF = "STAFF", "Site staff"
        OCPI = "OCPI", "eMSP (OCPI booking)"
        COMMAND = "COMMAND", "eMSP (OCPI ReserveNow command)"
        API = "API", "Operator API client"

    uid = models.UUIDField("booking id", default=uuid.uuid4, unique=True, editable=False)
    # The EVSE's location, kept on the booking so that a location's bookings over a window are
    # one scan of booking_location_blocking_gist; the trigger booking_location_is_evse_location
    # keeps it equal to the EVSE's.
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="bookings")
    evse = models.ForeignKey(
        EVSE,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bookings",
        help_text="Empty only on a request refused before an EVSE was assigned.",
        db_index=False,  # booking_evse_updated_idx leads with it
    )
    connector = models.ForeignKey(
        Connector,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bookings",
        db_index=False,  # partial index in Meta, like the other mostly-empty references
    )
    period = DateTimeRangeField(help_text="The booked slot, [start, end).")
    blocked_period = DateTimeRangeField(
        help_text="The slot plus the policy's buffer after it; what the no-overlap rule guards."
    )
    # The blocked period's bounds as exact epoch microseconds, for the availability read, which
    # subtracts integers (docs/adr/0002-blocked-time-as-microseconds.md).
    blocked_from_us = _epoch_us("lower", "blocked_period")
    blocked_until_us = _epoch_us("upper", "blocked_period")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # Who booked: a staff user, or an eMSP party (stored as plain OCPI data).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bookings_created",
        db_index=False,
    )
    driver = models.ForeignKey(
        Driver,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bookings",
        db_index=False,
    )
    emsp_country_code = models.CharField(max_length=2, blank=True)
    emsp_party_id = models.CharField(max_length=3, blank=True)
    request_id = models.CharField(max_length=36, blank=True)
    authorization_reference = models.CharField(max_length=36)
    power_required_kw = models.PositiveIntegerField(null=True, blank=True)
    terms = models.JSONField(default=dict, blank=True, help_text="The accepted OCPI BookingTerms.")
    tariff_ids = ArrayField(
        models.CharField(max_length=36), default=list, blank=True,
        help_text="The tariffs in force at its EVSE when it was booked or moved (OCPI ids).",
    )  # fmt: skip
    access_methods = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    # Cancellation (OCPI Cancellation).
    canceled_reason = models.CharField(max_length=16, choices=CanceledReason.choices, blank=True)
    canceled_by_role = models.CharField(max_length=4, choices=Role.choices, blank=True)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bookings_canceled",
        db_index=False,
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    # The booking's hold at its charger (bookings.holds), in the vocabulary of its placements.
    charger_reservation = models.CharField(
        max_length=16,
        choices=[(state.value, state.label) for state in BOOKING_STATES],
        default=ChargerReservation.NOT_SENT,
    )
    charger_reservation_detail = models.CharField(max_length=255, blank=True)
    charger_reservation_updated_at = models.DateTimeField(null=True, blank=True)
    # The desk saw the driver arrive (staff check-in); a session still fulfils the booking.
    checked_in_at = models.DateTimeField(null=True, blank=True)
    needs_attention = models.BooleanField(
        default=False, help_text="Flagged for staff (e.g. the charger could not be reserved)."
    )
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_updated = models.DateTimeField(auto_now=True)

    objects = BookingQuerySet.as_manager()

    class Meta:
        ordering = ["period", "id"]
        indexes = [
            models.Index(fields=["status", "last_updated"], name="booking_status_updated_idx"),
            models.Index(fields=["last_updated", "id"], name="booking_last_updated_idx"),
            # An EVSE's newest booking change (OCPI BookingLocation last_updated) is one index
            # probe; it also serves the foreign key.
            models.Index(fields=["evse", "-last_updated"], name="booking_evse_updated_idx"),
            # References that most bookings leave empty are indexed where set only: a new
            # booking writes no entry for them, and a lookup by one (a deleted user, driver or
            # connector, a driver's bookings) implies NOT NULL, so these serve it.
            *(
                models.Index(
                    fields=[name],
                    name=f"booking_{name}_set_idx",
                    condition=Q(**{f"{name}__isnull": False}),
                )
                for name in ("connector", "created_by", "driver", "canceled_by")
            ),
            # Availability of a whole location over a window: one GiST scan, whatever the
            # table size (issue 3). Filter with a bigint location id so btree_gist can use it.
            GistIndex(
                fields=["location", "blocked_period"],
                name="booking_location_blocking_gist",
                condition=Q(status__in=BLOCKING_STATUSES),
            ),
            # The same for the cancelled and no-show bookings the timeline still draws.
            GistIndex(
                fields=["location", "period"],
                name="booking_location_ended_gist",
                condition=Q(status__in=ENDED_STATUSES),
            ),
        ]
        constraints = [
            ExclusionConstraint(
                name="booking_no_overlap_per_evse",
                expressions=[
                    ("evse", RangeOperators.EQUAL),
                    ("blocked_period", RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=BLOCKING_STATUSES),
                violation_error_code="slot_unavailable",
                violation_error_message="That time is already booked on this EVSE.",
            ),
            models.CheckConstraint(
                condition=Q(
                    period__isempty=False,
                    period__lower_inf=False,
                    period__upper_inf=False,
                    blocked_period__contains=F("period"),
                ),
                name="booking_period_bounded",
            ),
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="booking_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(charger_reservation__in=[state.value for state in BOOKING_STATES]),
                name="booking_charger_reservation_valid",
            ),
            models.CheckConstraint(
                condition=Q(evse__isnull=False) | Q(status__in=[Status.REJECTED, Status.FAILED]),
                name="booking_evse_assigned_unless_refused",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status=Status.CANCELED, canceled_at__isnull=False)
                    & ~Q(canceled_reason="")
                    & ~Q(canceled_by_role="")
                )
                | Q(~Q(status=Status.CANCELED), canceled_at__isnull=True, canceled_reason=""),
                name="booking_canceled_fields_match_status",
            ),
            models.CheckConstraint(
                condition=Q(status=Status.FULFILLED, fulfilled_at__isnull=False)
                | Q(~Q(status=Status.FULFILLED), fulfilled_at__isnull=True),
                name="booking_fulfilled_at_matches_status",
            ),
            models.CheckConstraint(
                # Staff and operator API bookings are the CPO's own; the rest come from an eMSP.
                condition=Q(channel__in=["STAFF", "API"])
                | (~Q(emsp_country_code="") & ~Q(emsp_party_id="") & ~Q(request_id="")),
                name="booking_emsp_identity_present",
            ),
            # request_id is an OCPI CiString: "ABC" and "abc" name one request.
            models.UniqueConstraint(
                F("emsp_country_code"),
                F("emsp_party_id"),
                Lower("request_id"),
                condition=~Q(request_id=""),
                name="booking_unique_request_id_per_party",
            ),
        ]
        triggers = [
            # A booking's location is its EVSE's (the location column serves the per-location
            # GiST index); a cross-table rule, so a trigger rather than a constraint.
            pgtrigger.Trigger(
                name="booking_location_is_evse_location",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert | pgtrigger.UpdateOf("location_id", "evse_id"),
                func=(
                    """
                    IF NEW.evse_id IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM locations_evse e
                          JOIN locations_chargepoint cp ON cp.id = e.charge_point_id
                         WHERE e.id = NEW.evse_id AND cp.location_id = NEW.location_id
                    ) THEN
                        RAISE EXCEPTION 'Booking location % is not the location of its EVSE %.',
                            NEW.location_id, NEW.evse_id
                            USING ERRCODE = 'check_violation',
                                  CONSTRAINT = 'booking_location_is_evse_location';
                    END IF;
                    RETURN NEW;
                    """
                ),
            ),
            # The token rule's copies (BookingToken.period and .blocking) follow the booking:
            # touching the period makes bookingtoken_copy_booking read the booking again.
            pgtrigger.Trigger(
                name="booking_to_tokens",
                when=pgtrigger.After,
                operation=pgtrigger.UpdateOf("period", "status", "terms"),
                condition=pgtrigger.AnyChange("period", "status", "terms"),
                func=(
                    """
                    UPDATE bookings_bookingtoken SET period = NEW.period
                     WHERE booking_id = NEW.id;
                    RETURN NULL;
                    """
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"Booking {str(self.uid)[:8]} on {self.evse_id} ({self.status})"

    @property
    def start(self):
        return self.period.lower

    @property
    def end(self):
        return self.period.upper

    @property
    def is_blocking(self) -> bool:
        return self.status in BLOCKING_STATUSES


class BookingToken(models.Model):
    """A token that may redeem the booking (OCPI BookingToken)."""

    booking = models.ForeignKey(
        Booking,
        on_delete=models.CASCADE,
        related_name="tokens",
        db_index=False,  # bookingtoken_unique_per_booking leads with it
    )
    country_code = models.CharField(max_length=2)
    party_id = models.CharField(max_length=3)
    uid = models.CharField(max_length=36)
    type = models.CharField(max_length=TOKEN_TYPE_MAX_LENGTH, choices=TokenType.choices)
    contract_id = models.CharField(max_length=36)
    # Copies of the booking's period and of whether it holds the token (a blocking booking
    # whose terms do not allow overlapping bookings), kept by the trigger
    # bookingtoken_copy_booking whatever writes the booking or the token: the token rule
    # (bookingtoken_no_overlap) is an exclusion constraint, which sees one table only.
    period = DateTimeRangeField(null=True, editable=False)
    blocking = models.BooleanField(db_default=False, default=False, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["booking", "country_code", "party_id", "uid", "type"],
                name="bookingtoken_unique_per_booking",
            ),
            # A token (its owner's country code and party id, and its uid) holds one blocking
            # booking at a time, unless that booking's terms allow overlapping bookings.
            ExclusionConstraint(
                name="bookingtoken_no_overlap",
                expressions=[
                    ("country_code", RangeOperators.EQUAL),
                    ("party_id", RangeOperators.EQUAL),
                    ("uid", RangeOperators.EQUAL),
                    ("booking", RangeOperators.NOT_EQUAL),
                    ("period", RangeOperators.OVERLAPS),
                ],
                condition=Q(blocking=True),
                violation_error_code="token_overlap",
                violation_error_message="This token already holds a booking at that time.",
            ),
        ]
        indexes = [models.Index(fields=["uid"], name="bookingtoken_uid_idx")]
        triggers = [
            pgtrigger.Trigger(
                name="bookingtoken_copy_booking",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert | pgtrigger.UpdateOf("booking_id", "period", "blocking"),
                func=(
                    f"""
                    SELECT b.period,
                           b.status IN ({BLOCKING_STATUSES_SQL})
                           AND NOT coalesce((b.terms->>'overlapping_bookings_allowed')::boolean,
                                            false)
                      INTO NEW.period, NEW.blocking
                      FROM bookings_booking b WHERE b.id = NEW.booking_id;
                    RETURN NEW;
                    """
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.uid}"


class RequestStatus(models.TextChoices):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    FAILED = "FAILED"


class BookingRequest(models.Model):
    """One received OCPI BookingRequest and what became of it (BookingRequestStatus)."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="requests")
    request_status = models.CharField(max_length=8, choices=RequestStatus.choices)
    payload = models.JSONField(help_text="The BookingRequest as received.")
    received_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    reason_code = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(request_status__in=RequestStatus.values),
                name="bookingrequest_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.request_status} at {self.received_at:%Y-%m-%d %H:%M}"


class BookingTransition(models.Model):
    """Append-only audit row: one per state change or change of a booking.

    The OCPI app reads these rows (past its own cursor) to push changes to eMSPs.
    """

    class Event(models.TextChoices):
        CREATED = "CREATED", "Created"
        STATUS = "STATUS", "Status changed"
        CHANGED = "CHANGED", "Changed"
        CHARGER = "CHARGER", "Charger reservation"
        REQUEST = "REQUEST", "Request decided"
        CHECK_IN = "CHECK_IN", "Driver arrived"

    class ActorType(models.TextChoices):
        STAFF = "STAFF", "Staff"
        EMSP = "EMSP", "eMSP"
        CHARGER = "CHARGER", "Charger"
        SYSTEM = "SYSTEM", "System"
        API = "API", "API client"

    booking = models.ForeignKey(
        Booking,
        on_delete=models.PROTECT,
        related_name="transitions",
        db_index=False,  # transition_booking_at_idx leads with it
    )
    event = models.CharField(max_length=8, choices=Event.choices)
    from_status = models.CharField(max_length=16, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=Status.choices)
    at = models.DateTimeField()
    actor_type = models.CharField(max_length=8, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_index=False,  # indexed where set (Meta): most audit rows have no user
    )
    actor_label = models.CharField(max_length=120, blank=True)
    code = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["booking", "at"], name="transition_booking_at_idx"),
            models.Index(
                fields=["actor_user"],
                name="transition_actor_user_set_idx",
                condition=Q(actor_user__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} ({self.get_event_display()})"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise RuntimeError("Audit rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("Audit rows are append-only.")
