import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from chargers.models import ChargingSession
from tests.locations.factories import EVSEFactory


class ChargingSessionFactory(DjangoModelFactory[ChargingSession]):
    """A session running on an EVSE (OCPP 1.6 style: its transaction id is a number)."""

    class Meta:
        model = ChargingSession

    evse = factory.SubFactory(EVSEFactory)
    charge_point = factory.LazyAttribute(lambda o: o.evse.charge_point)
    transaction_id = factory.Sequence(lambda n: str(900_000 + n))
    id_tag = factory.Sequence(lambda n: f"04CD{n:08X}")
    started_at = factory.LazyFunction(timezone.now)
    meter_start_wh = 1_000_000
