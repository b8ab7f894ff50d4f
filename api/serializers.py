"""The API's JSON shapes, camelCase throughout. Output serializers are query-free (selectors
load what they read); input serializers validate shapes, and views resolve references."""

from __future__ import annotations

from datetime import UTC, datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bookings.models import Booking, CanceledReason, Status, TokenType
from chargers.models import BOOKING_STATES
from locations.models import ConnectorStandard, EVSEStatus

from .models import BookingRequest, WebhookEvent

MAX_EXTERNAL_ID = 255


class LowerChoiceField(serializers.ChoiceField):
    """One of our upper-case TextChoices values, shown (and accepted) in lower case."""

    def __init__(self, values, **kwargs):
        super().__init__(choices=[v.lower() for v in values], **kwargs)

    def to_representation(self, value):
        return value.lower() if value else None

    def to_internal_value(self, data):
        return super().to_internal_value(str(data).lower()).upper()


BOOKING_STATUSES = Status.values
HOLD_STATES = [state.value for state in BOOKING_STATES]


# --- Output -----------------------------------------------------------------------------


class CoordinatesSerializer(serializers.Serializer):
    latitude = serializers.DecimalField(max_digits=9, decimal_places=6)
    longitude = serializers.DecimalField(max_digits=9, decimal_places=6)


class LocationSerializer(serializers.Serializer):
    id = serializers.CharField(source="ocpi_id", help_text="The location's OCPI id.")
    name = serializers.CharField()
    address = serializers.CharField()
    city = serializers.CharField()
    postalCode = serializers.CharField(source="postal_code")
    state = serializers.CharField()
    country = serializers.CharField(help_text="ISO 3166-1 alpha-3.")
    coordinates = CoordinatesSerializer(source="*")
    timeZone = serializers.CharField(source="time_zone", help_text="IANA time zone.")
    twentyfourseven = serializers.BooleanField()
    lastUpdatedAt = serializers.DateTimeField(source="last_updated")


class ChargePointSerializer(serializers.Serializer):
    id = serializers.CharField(source="identity", help_text="The OCPP charge point identity.")
    locationId = serializers.CharField(source="location.ocpi_id")
    ocppVersion = serializers.CharField(source="ocpp_version")
    vendor = serializers.CharField()
    model = serializers.CharField()
    connected = serializers.BooleanField(
        source="is_connected", help_text="Whether the charger is connected over OCPP now."
    )
    lastSeenAt = serializers.DateTimeField(source="last_seen", allow_null=True)


class ConnectorSerializer(serializers.Serializer):
    id = serializers.CharField(source="connector_id")
    type = serializers.ChoiceField(source="standard", choices=ConnectorStandard.values)
    format = serializers.CharField()
    powerType = serializers.CharField(source="power_type")
    currentType = serializers.SerializerMethodField()
    maxVoltage = serializers.IntegerField(source="max_voltage")
    maxAmperage = serializers.IntegerField(source="max_amperage")
    maxPowerKw = serializers.FloatField(source="power_kw")

    def get_currentType(self, connector) -> str:
        return "dc" if connector.is_dc else "ac"


class EVSESerializer(serializers.Serializer):
    id = serializers.CharField(source="uid", help_text="The EVSE's OCPI uid.")
    evseId = serializers.CharField(source="evse_id", help_text="eMI3 EVSE id.")
    locationId = serializers.CharField(source="charge_point.location.ocpi_id")
    chargePointId = serializers.CharField(source="charge_point.identity")
    ocppEvseId = serializers.IntegerField(
        source="ocpp_evse_id", help_text="evseId in OCPP 2.0.1; connectorId in OCPP 1.6."
    )
    physicalReference = serializers.CharField(source="physical_reference")
    status = LowerChoiceField(EVSEStatus.values, help_text="Live status from the charger.")
    currentType = serializers.SerializerMethodField()
    maxPowerKw = serializers.SerializerMethodField()
    bookingEnabled = serializers.BooleanField(source="booking_enabled")
    bookable = serializers.SerializerMethodField()
    reservable = serializers.BooleanField(help_text="The charger can hold it (OCPP ReserveNow).")
    online = serializers.BooleanField(source="charge_point.is_connected")
    connectors = ConnectorSerializer(source="connector_list", many=True)
    lastUpdatedAt = serializers.DateTimeField(source="last_updated")

    def get_currentType(self, evse) -> str | None:
        kinds = {"dc" if c.is_dc else "ac" for c in evse.connector_list()}
        return kinds.pop() if len(kinds) == 1 else ("ac_dc" if kinds else None)

    def get_maxPowerKw(self, evse) -> float | None:
        return max((c.power_kw for c in evse.connector_list()), default=None)

    def get_bookable(self, evse) -> bool:
        from bookings.selectors import evse_unbookable_reason

        return not evse_unbookable_reason(evse)


class TokenSerializer(serializers.Serializer):
    uid = serializers.CharField()
    type = serializers.ChoiceField(choices=TokenType.values)
    contractId = serializers.CharField(source="contract_id")


class DriverSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField(help_text="Empty when not known.")
    phone = serializers.CharField()
    licensePlate = serializers.CharField(source="license_plate")
    tokens = TokenSerializer(many=True, source="tokens.all")
    createdAt = serializers.DateTimeField(source="created_at")


class RejectionSerializer(serializers.Serializer):
    code = serializers.CharField(source="reason_code", help_text="Machine-readable reason.")
    message = serializers.CharField(source="reason", help_text="The reason as a sentence.")


class BookingRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=BookingRequest.Type.values)
    status = serializers.ChoiceField(choices=BookingRequest.Status.values)
    externalId = serializers.CharField(source="external_id", allow_null=True)
    bookingId = serializers.UUIDField(source="booking.uid", allow_null=True, default=None)
    driverId = serializers.IntegerField(source="driver_id", allow_null=True)
    locationId = serializers.CharField(source="location.ocpi_id", allow_null=True, default=None)
    evseId = serializers.CharField(source="evse.uid", allow_null=True, default=None)
    startAt = serializers.DateTimeField(source="start_at", allow_null=True)
    endAt = serializers.DateTimeField(source="end_at", allow_null=True)
    rejection = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    decidedAt = serializers.DateTimeField(source="decided_at")

    @extend_schema_field(RejectionSerializer(allow_null=True))
    def get_rejection(self, request) -> dict | None:
        if request.status != BookingRequest.Status.REJECTED:
            return None
        return RejectionSerializer(request).data


class RequestSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=BookingRequest.Type.values)
    status = serializers.ChoiceField(choices=BookingRequest.Status.values)
    externalId = serializers.CharField(source="external_id")
    createdAt = serializers.DateTimeField(source="created_at")


class BookingSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="uid")
    status = LowerChoiceField(BOOKING_STATUSES, help_text="See the state mapping in docs/api.md.")
    holdState = LowerChoiceField(
        HOLD_STATES, source="charger_reservation", help_text="The hold at the charger."
    )
    holdDetail = serializers.CharField(source="charger_reservation_detail")
    channel = LowerChoiceField(Booking.Channel.values)
    locationId = serializers.CharField(source="location.ocpi_id")
    evseId = serializers.CharField(source="evse.uid", allow_null=True)
    chargePointId = serializers.CharField(source="evse.charge_point.identity", allow_null=True)
    connectorId = serializers.CharField(
        source="connector.connector_id", allow_null=True, default=None
    )
    driverId = serializers.IntegerField(source="driver_id", allow_null=True)
    startAt = serializers.DateTimeField(source="start")
    endAt = serializers.DateTimeField(source="end")
    tokens = TokenSerializer(many=True, source="tokens.all")
    canceledReason = LowerChoiceField(
        CanceledReason.values, source="canceled_reason", allow_null=True
    )
    canceledAt = serializers.DateTimeField(source="canceled_at", allow_null=True)
    requests = RequestSummarySerializer(many=True, source="api_requests.all")
    createdAt = serializers.DateTimeField(source="created_at")
    lastUpdatedAt = serializers.DateTimeField(source="last_updated")


class SlotSerializer(serializers.Serializer):
    startAt = serializers.DateTimeField(source="start")
    endAt = serializers.DateTimeField(source="end")


class EVSEAvailabilitySerializer(serializers.Serializer):
    evseId = serializers.CharField(source="evse.uid")
    chargePointId = serializers.CharField(source="evse.charge_point.identity")
    online = serializers.BooleanField(source="evse.charge_point.is_connected")
    stepMinutes = serializers.SerializerMethodField()
    minDurationMinutes = serializers.SerializerMethodField()
    maxDurationMinutes = serializers.SerializerMethodField()
    availableSlots = SlotSerializer(source="free", many=True)

    def get_stepMinutes(self, ea) -> int:
        return int(ea.rules.step.total_seconds() // 60)

    def get_minDurationMinutes(self, ea) -> int:
        return int(ea.rules.min_duration.total_seconds() // 60)

    def get_maxDurationMinutes(self, ea) -> int:
        return int(ea.rules.max_duration.total_seconds() // 60)


class AvailabilitySerializer(serializers.Serializer):
    data = EVSEAvailabilitySerializer(many=True)


class ReservationCreatedSerializer(serializers.Serializer):
    reservationId = serializers.UUIDField()
    message = serializers.CharField()
    booking = BookingSerializer()


class LinksSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
    prev = serializers.URLField(allow_null=True)


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField(required=False)
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Messages per field path, e.g. startAt or evseCriteria.minPower.",
    )


# --- Input ------------------------------------------------------------------------------


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


class Moment(serializers.DateTimeField):
    """An input time between 2000 and 2999: nothing is booked outside, and the engine's
    windows around a time (a day either side, buffers) stay within what Python represents."""

    def to_internal_value(self, value):
        moment = super().to_internal_value(value)
        if not EARLIEST <= moment < LATEST:
            raise serializers.ValidationError("Give a time between the years 2000 and 2999.")
        return moment


class EVSECriteriaSerializer(serializers.Serializer):
    currentType = serializers.ChoiceField(choices=["ac", "dc"], required=False)
    minPower = serializers.FloatField(required=False, min_value=0, help_text="kW")
    maxPower = serializers.FloatField(required=False, min_value=0, help_text="kW")
    connectorType = serializers.ChoiceField(choices=ConnectorStandard.values, required=False)

    def validate(self, attrs):
        low, high = attrs.get("minPower"), attrs.get("maxPower")
        if low is not None and high is not None and high < low:
            raise serializers.ValidationError({"maxPower": ["Must not be below minPower."]})
        return attrs


def criteria_of(data: dict | None):
    from bookings.selectors import Criteria

    data = data or {}
    current = data.get("currentType")
    return Criteria(
        power_type=current.upper() if current else None,
        standards=(data["connectorType"],) if data.get("connectorType") else (),
        min_power_kw=data.get("minPower"),
        max_power_kw=data.get("maxPower"),
    )


class EVSEFilterSerializer(EVSECriteriaSerializer):
    locationId = serializers.CharField(required=False)
    chargePointId = serializers.CharField(required=False)
    bookable = serializers.BooleanField(required=False, allow_null=True, default=None)


class AvailabilityQuerySerializer(EVSECriteriaSerializer):
    startAfter = Moment(help_text="Start of the window.")
    endBefore = Moment(help_text="End of the window, at most 7 days later.")
    evseId = serializers.CharField(required=False, help_text="One EVSE only.")


class BookingRequestInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=BookingRequest.Type.values)
    externalId = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_EXTERNAL_ID,
        help_text="Idempotency key: the same external id from this client returns the same "
        "request.",
    )  # fmt: skip
    driverId = serializers.IntegerField(required=False, help_text="create: the driver.")
    locationId = serializers.CharField(required=False, help_text="create: the location.")
    startAt = Moment(required=False)
    endAt = Moment(required=False)
    evseId = serializers.CharField(
        required=False, help_text="create/update: a specific EVSE (else evseCriteria)."
    )
    connectorId = serializers.CharField(required=False)
    evseCriteria = EVSECriteriaSerializer(required=False)
    authorizedTokenUids = serializers.ListField(
        child=serializers.CharField(max_length=36), required=False,
        help_text="create: which of the driver's tokens may redeem the booking (default all).",
    )  # fmt: skip
    bookingId = serializers.UUIDField(required=False, help_text="update/cancel: the booking.")
    canceledReason = LowerChoiceField(CanceledReason.values, required=False)

    REQUIRED = {
        "create": ("driverId", "locationId", "startAt", "endAt"),
        "update": ("bookingId",),
        "cancel": ("bookingId",),
    }

    def validate(self, attrs):
        kind = attrs["type"]
        errors = {
            name: ["This field is required."]
            for name in self.REQUIRED[kind]
            if attrs.get(name) is None
        }
        start, end = attrs.get("startAt"), attrs.get("endAt")
        if start and end and end <= start:
            errors["endAt"] = ["Must be after startAt."]
        if kind == "update" and not (start or end or attrs.get("evseId")):
            errors["startAt"] = ["Give a new startAt, endAt or evseId."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DriverFilterSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, help_text="Exact email (case-insensitive).")
    createdAfter = Moment(required=False)


class TokenInputSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=36)
    type = serializers.ChoiceField(choices=TokenType.values, default=TokenType.RFID)
    contractId = serializers.CharField(max_length=36, required=False)


class DriverInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    licensePlate = serializers.CharField(
        max_length=16, required=False, allow_blank=True, default=""
    )
    tokens = TokenInputSerializer(many=True, required=False, default=list)


class ReservationInputSerializer(serializers.Serializer):
    reservationStart = Moment()
    reservationEnd = Moment()
    authorizationType = serializers.ChoiceField(choices=TokenType.values, default=TokenType.RFID)
    authorizationValue = serializers.CharField(max_length=36, help_text="e.g. the RFID uid.")
    externalId = serializers.CharField(required=False, allow_blank=True, max_length=MAX_EXTERNAL_ID)

    def validate(self, attrs):
        if attrs["reservationEnd"] <= attrs["reservationStart"]:
            raise serializers.ValidationError({"reservationEnd": ["Must be after the start."]})
        return attrs


class BookingFilterSerializer(serializers.Serializer):
    status = LowerChoiceField(BOOKING_STATUSES, required=False)
    driverId = serializers.IntegerField(required=False)
    locationId = serializers.CharField(required=False)
    evseId = serializers.CharField(required=False)
    startAfter = Moment(required=False)
    startBefore = Moment(required=False)
    endAfter = Moment(required=False)
    endBefore = Moment(required=False)
    updatedAfter = Moment(required=False)
    updatedBefore = Moment(required=False)


class RequestFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BookingRequest.Status.values, required=False)
    type = serializers.ChoiceField(choices=BookingRequest.Type.values, required=False)
    driverId = serializers.IntegerField(required=False)
    locationId = serializers.CharField(required=False)
    bookingId = serializers.UUIDField(required=False)
    externalId = serializers.CharField(required=False)
    startAfter = Moment(required=False)
    startBefore = Moment(required=False)
    endAfter = Moment(required=False)
    endBefore = Moment(required=False)
    createdAfter = Moment(required=False)
    createdBefore = Moment(required=False)


class LocationFilterSerializer(serializers.Serializer):
    bookable = serializers.BooleanField(required=False, allow_null=True, default=None)


class ChargePointFilterSerializer(serializers.Serializer):
    locationId = serializers.CharField(required=False)


class WebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.values),
        help_text="The events sent; empty means all.",
    )
    active = serializers.BooleanField()
    createdAt = Moment(source="created_at")


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="Verifies X-Chargebook-Signature; shown only in this answer."
    )


class WebhookInputSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.values), required=False, default=list
    )
