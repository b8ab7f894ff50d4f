from decimal import Decimal

import factory
from django.contrib.auth.hashers import make_password
from factory.django import DjangoModelFactory

from locations.models import (
    EVSE,
    BookingPolicy,
    Capability,
    ChargePoint,
    Connector,
    ConnectorFormat,
    ConnectorStandard,
    EVSEStatus,
    ExceptionalPeriod,
    Location,
    PowerType,
    PriceComponent,
    RegularHours,
    Tariff,
    TariffDimension,
    TariffElement,
)


class LocationFactory(DjangoModelFactory[Location]):
    class Meta:
        model = Location

    ocpi_id = factory.Sequence(lambda n: f"LOC-{n:04d}")
    name = factory.Sequence(lambda n: f"Test site {n}")
    address = "Teststraat 1"
    city = "Amsterdam"
    postal_code = "1011 AA"
    country = "NLD"
    latitude = Decimal("52.370216")
    longitude = Decimal("4.895168")
    time_zone = "Europe/Amsterdam"
    twentyfourseven = True
    publish = True


class RegularHoursFactory(DjangoModelFactory[RegularHours]):
    class Meta:
        model = RegularHours

    location = factory.SubFactory(LocationFactory)
    weekday = 1
    period_begin = "08:00"
    period_end = "20:00"


class ExceptionalPeriodFactory(DjangoModelFactory[ExceptionalPeriod]):
    class Meta:
        model = ExceptionalPeriod

    location = factory.SubFactory(LocationFactory)
    kind = ExceptionalPeriod.Kind.CLOSING


CHARGER_PASSWORD = "charger-pass-123"  # every factory charge point's OCPP Basic-auth password


class ChargePointFactory(DjangoModelFactory[ChargePoint]):
    class Meta:
        model = ChargePoint

    location = factory.SubFactory(LocationFactory)
    identity = factory.Sequence(lambda n: f"CP-{n:05d}")
    ocpp_version = ChargePoint.OcppVersion.V16
    vendor = "TestVendor"
    model = "TestModel"
    is_connected = True
    password_hash = factory.LazyFunction(lambda: make_password(CHARGER_PASSWORD))


class EVSEFactory(DjangoModelFactory[EVSE]):
    """An EVSE with one 22 kW Type 2 connector; `connectors__dc=True` gives a 150 kW CCS2 one,
    `connectors=[]` none."""

    class Meta:
        model = EVSE
        skip_postgeneration_save = True

    charge_point = factory.SubFactory(ChargePointFactory)
    uid = factory.Sequence(lambda n: f"EVSE-{n:05d}")
    evse_id = factory.LazyAttribute(lambda o: f"NL*CBK*E{o.uid.replace('-', '')}")
    ocpp_evse_id = factory.Sequence(lambda n: n + 1)
    status = EVSEStatus.AVAILABLE
    capabilities = factory.LazyFunction(lambda: [Capability.RESERVABLE, Capability.RFID_READER])
    booking_enabled = True

    @factory.post_generation
    def connectors(self, create, extracted, **kwargs):
        if not create or extracted == []:
            return
        if extracted is None:
            ConnectorFactory(evse=self, connector_id="1", **kwargs)


class ConnectorFactory(DjangoModelFactory[Connector]):
    class Meta:
        model = Connector

    class Params:
        dc = factory.Trait(
            standard=ConnectorStandard.IEC_62196_T2_COMBO,
            format=ConnectorFormat.CABLE,
            power_type=PowerType.DC,
            max_voltage=920,
            max_amperage=200,
            max_electric_power=150000,
        )

    evse = factory.SubFactory(EVSEFactory, connectors=[])
    connector_id = factory.Sequence(lambda n: str(n + 1))
    standard = ConnectorStandard.IEC_62196_T2
    format = ConnectorFormat.SOCKET
    power_type = PowerType.AC_3_PHASE
    max_voltage = 400
    max_amperage = 32
    max_electric_power = 22000


class BookingPolicyFactory(DjangoModelFactory[BookingPolicy]):
    class Meta:
        model = BookingPolicy

    location = factory.SubFactory(LocationFactory)
    evse = None
    slot_step_minutes = 15
    min_duration_minutes = 15
    max_duration_minutes = 240
    buffer_minutes = 0
    min_notice_minutes = 0
    horizon_days = 30


class TariffFactory(DjangoModelFactory[Tariff]):
    class Meta:
        model = Tariff
        skip_postgeneration_save = True

    ocpi_id = factory.Sequence(lambda n: f"TARIFF-{n:03d}")
    name = factory.Sequence(lambda n: f"Tariff {n}")
    currency = "EUR"
    tax_percentage = Decimal("21.00")

    @factory.post_generation
    def locations(self, create, extracted, **kwargs):
        if create and extracted:
            self.locations.set(extracted)

    @factory.post_generation
    def evses(self, create, extracted, **kwargs):
        if create and extracted:
            self.evses.set(extracted)


class TariffElementFactory(DjangoModelFactory[TariffElement]):
    class Meta:
        model = TariffElement

    tariff = factory.SubFactory(TariffFactory)


class PriceComponentFactory(DjangoModelFactory[PriceComponent]):
    class Meta:
        model = PriceComponent

    element = factory.SubFactory(TariffElementFactory)
    type = TariffDimension.ENERGY
    price = Decimal("0.35")
    step_size = 1
