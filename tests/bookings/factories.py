from datetime import datetime, time, timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from bookings.models import (
    Booking,
    BookingRequest,
    BookingToken,
    BookingTransition,
    CanceledReason,
    Driver,
    DriverToken,
    RequestStatus,
    Role,
    Status,
    TokenType,
    tstzrange,
)
from locations.models import Location
from tests.locations.factories import EVSEFactory


def _next_hour():
    return timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def tomorrow_at(location: Location, hour: int, minute: int = 0) -> datetime:
    """hour:minute tomorrow on the location's clock: a time every test can book whenever it runs."""
    day = timezone.now().astimezone(location.zone).date() + timedelta(days=1)
    return datetime.combine(day, time(hour, minute), tzinfo=location.zone)


class DriverFactory(DjangoModelFactory[Driver]):
    class Meta:
        model = Driver

    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"driver{n}@example.com")


class DriverTokenFactory(DjangoModelFactory[DriverToken]):
    class Meta:
        model = DriverToken

    driver = factory.SubFactory(DriverFactory)
    country_code = "NL"
    party_id = "CBK"
    uid = factory.Sequence(lambda n: f"04{n:012X}")
    type = TokenType.RFID
    contract_id = factory.Sequence(lambda n: f"NL-CBK-C{n:08d}")


class BookingFactory(DjangoModelFactory[Booking]):
    """A RESERVED staff booking written directly (no rules): for fixtures and constraint tests."""

    class Meta:
        model = Booking

    class Params:
        start = factory.LazyFunction(_next_hour)
        duration = timedelta(hours=1)
        buffer = timedelta(0)

    evse = factory.SubFactory(EVSEFactory)
    location = factory.LazyAttribute(lambda o: o.evse.charge_point.location)
    period = factory.LazyAttribute(lambda o: tstzrange(o.start, o.start + o.duration))
    blocked_period = factory.LazyAttribute(
        lambda o: tstzrange(o.period.lower, o.period.upper and o.period.upper + o.buffer)
    )
    status = Status.RESERVED
    # Final states carry the fields their check constraints pair with them.
    fulfilled_at = factory.LazyAttribute(
        lambda o: o.period.lower if o.status == Status.FULFILLED else None
    )
    canceled_at = factory.LazyAttribute(
        lambda o: o.period.lower - timedelta(hours=1) if o.status == Status.CANCELED else None
    )
    canceled_reason = factory.LazyAttribute(
        lambda o: CanceledReason.UNKNOWN if o.status == Status.CANCELED else ""
    )
    canceled_by_role = factory.LazyAttribute(
        lambda o: Role.CPO if o.status == Status.CANCELED else ""
    )
    channel = Booking.Channel.STAFF
    authorization_reference = factory.Sequence(lambda n: f"AUTH{n:08d}")
    terms = factory.LazyFunction(
        lambda: {"cancel_until_minutes": 15, "change_until_minutes": 15, "noshow_timeout": 15,
                 "early_start_allowed": True, "early_start_time": 10}
    )  # fmt: skip


class BookingTokenFactory(DjangoModelFactory[BookingToken]):
    class Meta:
        model = BookingToken

    booking = factory.SubFactory(BookingFactory)
    country_code = "NL"
    party_id = "EMS"
    uid = factory.Sequence(lambda n: f"TOKEN{n:06d}")
    type = TokenType.RFID
    contract_id = factory.Sequence(lambda n: f"NL-EMS-C{n:08d}")


class BookingRequestFactory(DjangoModelFactory[BookingRequest]):
    class Meta:
        model = BookingRequest

    booking = factory.SubFactory(BookingFactory)
    request_status = RequestStatus.ACCEPTED
    payload = factory.LazyFunction(dict)
    received_at = factory.LazyFunction(timezone.now)


class BookingTransitionFactory(DjangoModelFactory[BookingTransition]):
    class Meta:
        model = BookingTransition

    booking = factory.SubFactory(BookingFactory)
    event = BookingTransition.Event.CREATED
    from_status = ""
    to_status = Status.RESERVED
    at = factory.LazyFunction(timezone.now)
    actor_type = BookingTransition.ActorType.SYSTEM
    actor_label = "test"
