"""Sites and their hardware: Location > ChargePoint > EVSE > Connector, with opening hours and
booking policy. Names and enums follow OCPI 2.3.0 (Locations module, BookingTerms)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from functools import cached_property

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (for example Europe/Amsterdam).")


class EVSEStatus(models.TextChoices):
    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


# EVSEs in these states offer no bookable time at all (issue 3: out of order or removed).
UNBOOKABLE_EVSE_STATUSES = (EVSEStatus.OUTOFORDER, EVSEStatus.REMOVED, EVSEStatus.PLANNED)


class Capability(models.TextChoices):
    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorStandard(models.TextChoices):
    CHADEMO = "CHADEMO", "CHAdeMO"
    CHAOJI = "CHAOJI", "ChaoJi"
    DOMESTIC_F = "DOMESTIC_F", "Schuko (CEE 7/4)"
    GBT_AC = "GBT_AC", "GB/T AC"
    GBT_DC = "GBT_DC", "GB/T DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16", "IEC 60309 1-phase 16 A"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16", "IEC 60309 3-phase 16 A"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32", "IEC 60309 3-phase 32 A"
    IEC_62196_T1 = "IEC_62196_T1", "Type 1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO", "CCS1"
    IEC_62196_T2 = "IEC_62196_T2", "Type 2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO", "CCS2"
    IEC_62196_T3A = "IEC_62196_T3A", "Type 3A"
    IEC_62196_T3C = "IEC_62196_T3C", "Type 3C"
    MCS = "MCS", "MCS"
    NEMA_5_20 = "NEMA_5_20", "NEMA 5-20"
    NEMA_14_50 = "NEMA_14_50", "NEMA 14-50"
    SAE_J3400 = "SAE_J3400", "NACS (SAE J3400)"
    TESLA_S = "TESLA_S", "Tesla S"


class ConnectorFormat(models.TextChoices):
    SOCKET = "SOCKET"
    CABLE = "CABLE"


def unlock_capability_refusal(capabilities: Sequence[str], formats: Sequence[str]) -> str:
    """Why these capabilities do not fit an EVSE with connectors of these formats, or "".
    UNLOCK_CAPABLE promises a connector lock an eMSP can ask to release: a socket has one, a
    fixed cable has none."""
    unlock = Capability.UNLOCK_CAPABLE in capabilities
    if unlock and formats and ConnectorFormat.SOCKET not in formats:
        return (
            "UNLOCK_CAPABLE needs a socket: every connector of this EVSE is a fixed cable, "
            "which has no lock to release."
        )
    return ""


class PowerType(models.TextChoices):
    AC_1_PHASE = "AC_1_PHASE", "AC 1-phase"
    AC_2_PHASE = "AC_2_PHASE", "AC 2-phase"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT", "AC 2-phase split"
    AC_3_PHASE = "AC_3_PHASE", "AC 3-phase"
    DC = "DC", "DC"


class ParkingType(models.TextChoices):
    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class LocationAccess(models.TextChoices):
    OPEN = "OPEN"
    TOKEN = "TOKEN"
    LICENSE_PLATE = "LICENSE_PLATE"
    ACCESS_CODE = "ACCESS_CODE"
    INTERCOM = "INTERCOM"
    PARKING_TICKET = "PARKING_TICKET"


ocpi_id_validator = RegexValidator(
    r"^[A-Za-z0-9_.\-*#]+$", "Use letters, digits and . _ - * # only (OCPI CiString)."
)


class LocationQuerySet(models.QuerySet["Location"]):
    def published(self) -> LocationQuerySet:
        return self.filter(publish=True)

    def with_rules(self) -> LocationQuerySet:
        """With what availability reads: the policy, regular hours and exceptional periods."""
        return self.select_related("booking_policy").prefetch_related(
            "regular_hours", "exceptional_periods"
        )


class Location(models.Model):
    ocpi_id = models.CharField(
        "OCPI id", max_length=36, unique=True, validators=[ocpi_id_validator]
    )
    name = models.CharField(max_length=255)
    address = models.CharField(max_length=255)
    city = models.CharField(max_length=45)
    postal_code = models.CharField(max_length=10, blank=True)
    state = models.CharField(max_length=45, blank=True)
    country = models.CharField(
        max_length=3,
        help_text="ISO 3166-1 alpha-3, e.g. NLD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "Three capital letters (ISO 3166-1 alpha-3).")],
    )
    latitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-90), MaxValueValidator(90)]
    )
    longitude = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )
    time_zone = models.CharField(
        max_length=64, validators=[validate_time_zone], help_text="IANA zone, e.g. Europe/Amsterdam"
    )
    parking_type = models.CharField(max_length=32, choices=ParkingType.choices, blank=True)
    twentyfourseven = models.BooleanField(
        "open 24/7", default=True, help_text="When off, the regular hours below apply."
    )
    charging_when_closed = models.BooleanField(default=False)
    publish = models.BooleanField(default=True, help_text="Published to eMSPs over OCPI.")
    help_phone = models.CharField(max_length=25, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_updated = models.DateTimeField(auto_now=True)

    objects = LocationQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(country__regex=r"^[A-Z]{3}$"), name="location_country_alpha3"
            ),
            # OCPI ids are case-insensitive (CiString): one location per id in any case, and
            # the index of every lookup by OCPI id (upper(ocpi_id) = upper(%s)).
            models.UniqueConstraint(
                Upper("ocpi_id"),
                name="location_ocpi_id_ci_unique",
                violation_error_message="A location with this OCPI id, in any case, exists.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.city})"

    @cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class RegularHours(models.Model):
    """One opening period on a weekday (OCPI RegularHours; weekday 1 = Monday)."""

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="regular_hours")
    weekday = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(7)],
        choices=[(1, "Monday"), (2, "Tuesday"), (3, "Wednesday"), (4, "Thursday"),
                 (5, "Friday"), (6, "Saturday"), (7, "Sunday")],
    )  # fmt: skip
    period_begin = models.TimeField()
    period_end = models.TimeField(help_text="00:00 means midnight at the end of the day.")

    class Meta:
        ordering = ["weekday", "period_begin"]
        verbose_name_plural = "regular hours"
        constraints = [
            models.CheckConstraint(
                condition=Q(weekday__gte=1, weekday__lte=7), name="regularhours_weekday_range"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_begin")) | Q(period_end="00:00"),
                name="regularhours_end_after_begin",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.period_begin:%H:%M}-{self.period_end:%H:%M}"


class ExceptionalPeriod(models.Model):
    """An exceptional opening or closing (OCPI exceptional_openings / exceptional_closings)."""

    class Kind(models.TextChoices):
        OPENING = "OPENING", "Exceptional opening"
        CLOSING = "CLOSING", "Exceptional closing"

    location = models.ForeignKey(
        Location, on_delete=models.CASCADE, related_name="exceptional_periods"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    period_begin = models.DateTimeField()
    period_end = models.DateTimeField()

    class Meta:
        ordering = ["period_begin"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_begin")),
                name="exceptionalperiod_end_after_begin",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.period_begin:%Y-%m-%d %H:%M}"


class ChargePoint(models.Model):
    """A charging station as the CSMS knows it (one OCPP connection)."""

    class OcppVersion(models.TextChoices):
        V16 = "1.6", "OCPP 1.6-J"
        V201 = "2.0.1", "OCPP 2.0.1"

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="charge_points")
    identity = models.CharField(
        "charge point id",
        max_length=48,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9_.\-:*]+$", "No spaces or slashes.")],
        help_text="The OCPP identity: the last segment of the WebSocket URL.",
    )
    ocpp_version = models.CharField(
        max_length=8, choices=OcppVersion.choices, default=OcppVersion.V16
    )
    password_hash = models.CharField(
        max_length=128,
        blank=True,
        help_text="OCPP security profile 1 (HTTP Basic). Empty: the charger is refused unless "
        "CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD is on (development).",
    )
    vendor = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=50, blank=True)
    serial_number = models.CharField(max_length=50, blank=True)
    firmware_version = models.CharField(max_length=50, blank=True)
    is_connected = models.BooleanField(default=False)
    station_down_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the charger last reported itself unavailable or faulted as a whole "
        "(OCPP 1.6 connector 0); empty once it reported itself available again.",
    )
    last_seen = models.DateTimeField(null=True, blank=True)
    last_boot = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(
        null=True, blank=True, help_text="When its current or last connection opened."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["location", "identity"]

    def __str__(self) -> str:
        return self.identity

    def set_password(self, raw: str | None) -> None:
        from django.contrib.auth.hashers import make_password

        self.password_hash = make_password(raw) if raw else ""

    def check_password(self, raw: str) -> bool:
        from django.contrib.auth.hashers import check_password

        return bool(self.password_hash) and check_password(raw, self.password_hash)


class EVSEQuerySet(models.QuerySet["EVSE"]):
    def of_location(self, location: Location) -> EVSEQuerySet:
        return self.filter(charge_point__location=location)

    def bookable(self) -> EVSEQuerySet:
        return self.filter(booking_enabled=True).exclude(status__in=UNBOOKABLE_EVSE_STATUSES)


class EVSE(models.Model):
    charge_point = models.ForeignKey(ChargePoint, on_delete=models.PROTECT, related_name="evses")
    uid = models.CharField(
        "OCPI uid",
        max_length=36,
        unique=True,
        validators=[ocpi_id_validator],
        help_text="Unique and never reused.",
    )
    evse_id = models.CharField(
        "EVSE ID", max_length=48, blank=True, help_text="eMI3 id, e.g. NL*CBK*E12345*1"
    )
    ocpp_evse_id = models.PositiveSmallIntegerField(
        "OCPP EVSE number",
        help_text="evseId in OCPP 2.0.1; the connectorId in OCPP 1.6 (one connector per EVSE).",
    )
    status = models.CharField(max_length=16, choices=EVSEStatus.choices, default=EVSEStatus.UNKNOWN)
    status_updated_at = models.DateTimeField(null=True, blank=True)
    capabilities = ArrayField(
        models.CharField(max_length=40, choices=Capability.choices), default=list, blank=True
    )
    physical_reference = models.CharField(max_length=16, blank=True)
    floor_level = models.CharField(max_length=4, blank=True)
    booking_enabled = models.BooleanField(default=True)
    last_updated = models.DateTimeField(auto_now=True)

    objects = EVSEQuerySet.as_manager()

    class Meta:
        verbose_name = "EVSE"
        ordering = ["charge_point", "ocpp_evse_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "ocpp_evse_id"], name="evse_unique_ocpp_id_per_charge_point"
            ),
            models.CheckConstraint(
                condition=Q(status__in=EVSEStatus.values), name="evse_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.physical_reference or self.evse_id or self.uid

    @property
    def reservable(self) -> bool:
        return Capability.RESERVABLE in self.capabilities

    # The commands the capabilities promise (OCPI START_SESSION/STOP_SESSION, UNLOCK_CONNECTOR)
    # are part of OCPP's core in both versions this platform speaks (1.6 Core profile; 2.0.1
    # Core), so the capability an operator sets on the EVSE is the one thing that decides.
    @property
    def remote_startable(self) -> bool:
        return Capability.REMOTE_START_STOP_CAPABLE in self.capabilities

    @property
    def unlockable(self) -> bool:
        return Capability.UNLOCK_CAPABLE in self.capabilities

    @property
    def start_needs_connector(self) -> bool:
        return Capability.START_SESSION_CONNECTOR_REQUIRED in self.capabilities

    def connector_list(self) -> list[Connector]:
        """The EVSE's connectors in id order: those locations.selectors.evses_of_location loaded
        with it (a Prefetch to `loaded_connectors`), else one query."""
        loaded = getattr(self, "loaded_connectors", None)
        return loaded if loaded is not None else list(self.connectors.order_by("id"))


class Connector(models.Model):
    evse = models.ForeignKey(EVSE, on_delete=models.CASCADE, related_name="connectors")
    connector_id = models.CharField(
        "OCPI connector id", max_length=36, help_text="Unique within its EVSE, e.g. 1"
    )
    ocpp_connector_id = models.PositiveSmallIntegerField(
        "OCPP connector number", default=1, help_text="connectorId within the EVSE (2.0.1)."
    )
    standard = models.CharField(max_length=32, choices=ConnectorStandard.choices)
    format = models.CharField(max_length=8, choices=ConnectorFormat.choices)
    power_type = models.CharField(max_length=16, choices=PowerType.choices)
    max_voltage = models.PositiveIntegerField(help_text="V")
    max_amperage = models.PositiveIntegerField(help_text="A")
    max_electric_power = models.PositiveIntegerField(null=True, blank=True, help_text="W")
    last_updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["evse", "connector_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["evse", "connector_id"], name="connector_unique_per_evse"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_standard_display()} {self.power_kw:g} kW"

    @property
    def is_dc(self) -> bool:
        return self.power_type == PowerType.DC

    @property
    def power_watts(self) -> int:
        if self.max_electric_power:
            return self.max_electric_power
        phases = 3 if self.power_type == PowerType.AC_3_PHASE else 1
        return self.max_voltage * self.max_amperage * phases

    @property
    def power_kw(self) -> float:
        return round(self.power_watts / 1000, 1)


class BookingPolicy(models.Model):
    """Booking rules for a location, or an override for one EVSE (it then replaces the
    location's policy entirely). The terms fields are OCPI BookingTerms."""

    location = models.OneToOneField(
        Location, on_delete=models.CASCADE, null=True, blank=True, related_name="booking_policy"
    )
    evse = models.OneToOneField(
        EVSE, on_delete=models.CASCADE, null=True, blank=True, related_name="booking_policy"
    )
    slot_step_minutes = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1)])
    min_duration_minutes = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)]
    )
    max_duration_minutes = models.PositiveIntegerField(
        default=240, validators=[MinValueValidator(1)]
    )
    buffer_minutes = models.PositiveIntegerField(
        default=0, help_text="Kept free after every booking."
    )
    min_notice_minutes = models.PositiveIntegerField(
        default=0, help_text="How far ahead of its start a booking must be made."
    )
    horizon_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)], help_text="How far ahead one can book."
    )
    reserve_lead_minutes = models.PositiveIntegerField(
        default=10, help_text="ReserveNow goes to the charger this long before the start."
    )
    # OCPI BookingTerms
    change_until_minutes = models.PositiveIntegerField(default=15)
    cancel_until_minutes = models.PositiveIntegerField(default=15)
    change_not_allowed = models.BooleanField(default=False)
    early_start_allowed = models.BooleanField(default=True)
    early_start_minutes = models.PositiveIntegerField(default=10)
    noshow_timeout_minutes = models.PositiveIntegerField(
        null=True, blank=True, default=15, help_text="Empty: no timeout (released at the end)."
    )
    noshow_fee = models.BooleanField(default=False)
    cancel_fee_minutes = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="A cancellation by the driver's side this close to the start (or later) owes "
        "the tariff's cancellation fee. Empty: cancelling is free.",
    )  # fmt: skip
    late_stop_allowed = models.BooleanField(default=False)
    late_stop_minutes = models.PositiveIntegerField(default=0)
    rfid_auth_required = models.BooleanField(default=False)
    remote_auth_supported = models.BooleanField(default=True)
    token_groups_supported = models.BooleanField(default=False)
    overlapping_bookings_allowed = models.BooleanField(default=False)
    supported_access_methods = ArrayField(
        models.CharField(max_length=16, choices=LocationAccess.choices),
        default=list,
        blank=True,
    )
    terms_url = models.URLField(blank=True)
    last_updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "booking policies"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(location__isnull=False, evse__isnull=True)
                    | Q(location__isnull=True, evse__isnull=False)
                ),
                name="bookingpolicy_location_xor_evse",
            ),
            models.CheckConstraint(
                condition=Q(max_duration_minutes__gte=models.F("min_duration_minutes")),
                name="bookingpolicy_max_ge_min_duration",
            ),
        ]

    def __str__(self) -> str:
        return f"Policy for {self.evse or self.location}"

    def clean(self) -> None:
        if bool(self.location_id) == bool(self.evse_id):
            raise ValidationError("A policy belongs to exactly one location or one EVSE.")
        if self.max_duration_minutes < self.min_duration_minutes:
            raise ValidationError(
                {"max_duration_minutes": "Must be at least the minimum duration."}
            )


# --- Tariffs (OCPI 2.3.0 Tariffs module): what charging and booking cost at a site ---


class TariffType(models.TextChoices):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT", "Ad hoc payment"
    PROFILE_CHEAP = "PROFILE_CHEAP", "Profile: cheap"
    PROFILE_FAST = "PROFILE_FAST", "Profile: fast"
    PROFILE_GREEN = "PROFILE_GREEN", "Profile: green"
    REGULAR = "REGULAR", "Regular"


class TaxIncluded(models.TextChoices):
    YES = "YES", "Prices include taxes"
    NO = "NO", "Prices exclude taxes"
    NOT_APPLICABLE = "N/A", "No taxes apply"


class TariffDimension(models.TextChoices):
    ENERGY = "ENERGY", "Energy (per kWh)"
    FLAT = "FLAT", "Flat fee"
    PARKING_TIME = "PARKING_TIME", "Parking time (per hour)"
    TIME = "TIME", "Charging time (per hour)"


class ReservationRestriction(models.TextChoices):
    """What a booking element prices (Bookings 1.0 names; 1.1 calls them BOOKING_*)."""

    RESERVATION = "RESERVATION", "The booked time"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES", "A booking that expired (no-show)"
    RESERVATION_CANCELLATION_FEES = "RESERVATION_CANCELLATION_FEES", "Cancelling a booking"
    RESERVATION_OVERTIME = "RESERVATION_OVERTIME", "Charging past the booked end"


class Weekday(models.TextChoices):
    MONDAY = "MONDAY", "Monday"
    TUESDAY = "TUESDAY", "Tuesday"
    WEDNESDAY = "WEDNESDAY", "Wednesday"
    THURSDAY = "THURSDAY", "Thursday"
    FRIDAY = "FRIDAY", "Friday"
    SATURDAY = "SATURDAY", "Saturday"
    SUNDAY = "SUNDAY", "Sunday"


class Tariff(models.Model):
    """A price list for charging and booking. It applies to the EVSEs it names, or else to every
    EVSE of the locations it names (an EVSE's own tariffs replace its location's). Prices are
    Decimal, in `currency`, before or after taxes as `tax_included` says."""

    ocpi_id = models.CharField(
        "tariff id", max_length=36, validators=[RegexValidator(r"^[ -~]+$", "Printable ASCII.")]
    )
    name = models.CharField(max_length=120, help_text="For staff; eMSPs see the id and texts.")
    currency = models.CharField(
        max_length=3, validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code, e.g. EUR.")]
    )
    type = models.CharField(max_length=16, choices=TariffType.choices, blank=True)
    tax_included = models.CharField(
        max_length=3, choices=TaxIncluded.choices, default=TaxIncluded.YES
    )
    tax_name = models.CharField(max_length=32, blank=True, default="VAT")
    tax_percentage = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )  # fmt: skip
    alt_text = models.TextField(
        blank=True, help_text="Extra information for drivers (not the prices themselves)."
    )
    alt_text_language = models.CharField(max_length=2, default="en")
    alt_url = models.URLField(blank=True)
    min_price = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="A session costs at least this, before taxes.",
    )  # fmt: skip
    max_price = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="A session costs at most this, before taxes.",
    )  # fmt: skip
    start_date_time = models.DateTimeField(null=True, blank=True)
    end_date_time = models.DateTimeField(null=True, blank=True)
    locations = models.ManyToManyField(Location, blank=True, related_name="tariffs")
    evses = models.ManyToManyField(EVSE, blank=True, related_name="tariffs", verbose_name="EVSEs")
    last_updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ocpi_id"]
        constraints = [
            models.UniqueConstraint(Upper("ocpi_id"), name="tariff_ocpi_id_ci_unique"),
            models.CheckConstraint(
                condition=Q(min_price__isnull=True)
                | Q(max_price__isnull=True)
                | Q(max_price__gte=models.F("min_price")),
                name="tariff_max_price_ge_min_price",
            ),
            models.CheckConstraint(
                condition=Q(start_date_time__isnull=True)
                | Q(end_date_time__isnull=True)
                | Q(end_date_time__gt=models.F("start_date_time")),
                name="tariff_ends_after_start",
            ),
            # Totals are given before and after taxes: that needs the rate, unless none applies.
            models.CheckConstraint(
                condition=Q(tax_included=TaxIncluded.NOT_APPLICABLE)
                | Q(tax_percentage__isnull=False),
                name="tariff_tax_rate_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.ocpi_id})"

    def clean(self) -> None:
        if self.tax_included != TaxIncluded.NOT_APPLICABLE and self.tax_percentage is None:
            raise ValidationError(
                {"tax_percentage": "Give the tax rate (or choose “No taxes apply”)."}
            )


class TariffElement(models.Model):
    """Price components that apply while every restriction holds; the first element of a
    dimension whose restrictions hold is the one used (OCPI order)."""

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="elements")
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")
    start_time = models.TimeField(null=True, blank=True, help_text="Local time of the location.")
    end_time = models.TimeField(null=True, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    min_kwh = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    max_kwh = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    min_current = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    max_current = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    min_power = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True, help_text="kW"
    )
    max_power = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True, help_text="kW"
    )
    min_duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    max_duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    day_of_week = ArrayField(
        models.CharField(max_length=9, choices=Weekday.choices), default=list, blank=True
    )
    reservation = models.CharField(
        max_length=29, choices=ReservationRestriction.choices, blank=True,
        help_text="Set for an element that prices a booking (FLAT and TIME components only).",
    )  # fmt: skip

    class Meta:
        ordering = ["tariff", "position", "id"]

    def __str__(self) -> str:
        return f"{self.tariff.ocpi_id} element {self.position}"


class PriceComponent(models.Model):
    """One dimension's price within an element: per kWh (ENERGY), per hour (TIME,
    PARKING_TIME) or per session (FLAT); billed in steps of `step_size` Wh or seconds."""

    element = models.ForeignKey(
        TariffElement, on_delete=models.CASCADE, related_name="price_components"
    )
    type = models.CharField(max_length=12, choices=TariffDimension.choices)
    price = models.DecimalField(max_digits=12, decimal_places=4, validators=[MinValueValidator(0)])
    step_size = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Wh for energy, seconds for time."
    )

    class Meta:
        ordering = ["element", "id"]
        constraints = [
            models.UniqueConstraint(fields=["element", "type"], name="pricecomponent_one_per_type"),
            models.CheckConstraint(
                condition=Q(price__gte=0), name="pricecomponent_price_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(step_size__gte=1), name="pricecomponent_step_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.price}"

    def clean(self) -> None:
        booking = self.element_id and self.element.reservation
        if booking and self.type not in (TariffDimension.FLAT, TariffDimension.TIME):
            raise ValidationError(
                {"type": "A booking element can only have FLAT and TIME components."}
            )
