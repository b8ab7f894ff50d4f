"""The read paths every availability call runs: a location with its rules and the EVSEs of a
location, each in a fixed number of queries whatever the number of rows."""

from datetime import UTC, datetime, time

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from locations.models import EVSE, BookingPolicy, ExceptionalPeriod, Location
from locations.selectors import evses_of_location, location_get, location_get_ci, policy_for
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    ConnectorFactory,
    EVSEFactory,
    ExceptionalPeriodFactory,
    LocationFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db


def test_location_get_loads_the_rules_in_a_fixed_number_of_queries(django_assert_num_queries):
    location = LocationFactory(ocpi_id="SITE-7", twentyfourseven=False)
    RegularHoursFactory(location=location, weekday=2, period_begin="09:00", period_end="17:00")
    RegularHoursFactory(location=location, weekday=1, period_begin="08:00", period_end="00:00")
    ExceptionalPeriodFactory(
        location=location, kind=ExceptionalPeriod.Kind.CLOSING,
        period_begin=datetime(2027, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        period_end=datetime(2027, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    BookingPolicyFactory(location=location, slot_step_minutes=30)
    for key in (location.pk, str(location.pk), "SITE-7"):
        # The location with its policy, then its regular hours, then its exceptional periods.
        with django_assert_num_queries(3):
            got = location_get(location_id=key)
            hours = [(h.weekday, h.period_begin, h.period_end) for h in got.regular_hours.all()]
            periods = list(got.exceptional_periods.all())
            step = got.booking_policy.slot_step_minutes
        assert got == location and got.name == location.name and got.zone.key == "Europe/Amsterdam"
        assert hours == [(1, time(8), time(0)), (2, time(9), time(17))]  # ordered by weekday
        assert periods[0].period_begin == datetime(2027, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
        assert periods[0].kind == ExceptionalPeriod.Kind.CLOSING and step == 30
    with pytest.raises(Location.DoesNotExist):
        location_get(location_id="NOPE")
    assert location_get_ci(ocpi_id="site-7") == location
    with pytest.raises(Location.DoesNotExist):
        location_get_ci(ocpi_id="site-8")


def test_location_without_policy_has_none_loaded(django_assert_num_queries):
    location = LocationFactory()
    with django_assert_num_queries(3):
        got = location_get(location_id=location.pk)
        assert not hasattr(got, "booking_policy")  # DoesNotExist, from the cache
        assert list(got.regular_hours.all()) == []


def test_evses_of_location_come_with_their_relations_in_two_queries(
    django_assert_num_queries,
):
    location = LocationFactory()
    BookingPolicyFactory(location=location, slot_step_minutes=15)
    cp_b = ChargePointFactory(location=location, identity="B-CP", is_connected=False)
    cp_a = ChargePointFactory(location=location, identity="A-CP")
    second = EVSEFactory(charge_point=cp_a, ocpp_evse_id=2, connectors=[])
    first = EVSEFactory(charge_point=cp_a, ocpp_evse_id=1, connectors=[])
    last = EVSEFactory(charge_point=cp_b, ocpp_evse_id=1, connectors=[])
    BookingPolicyFactory(location=None, evse=second, slot_step_minutes=60)
    ac = ConnectorFactory(evse=first, connector_id="1")
    dc = ConnectorFactory(evse=first, connector_id="2", dc=True)
    ConnectorFactory(evse=last, connector_id="1")
    EVSEFactory(charge_point=ChargePointFactory())  # another location's
    location = location_get(location_id=location.pk)
    with django_assert_num_queries(2):  # EVSEs with charge point and policy; connectors
        evses = evses_of_location(location=location)
    with django_assert_num_queries(0):
        assert [e.pk for e in evses] == [first.pk, second.pk, last.pk]  # display order
        assert [c.pk for c in evses[0].connector_list()] == [ac.pk, dc.pk]
        assert evses[0].connector_list()[1].evse_id == evses[0].pk
        assert evses[1].connector_list() == []
        assert evses[2].charge_point.identity == "B-CP" and not evses[2].charge_point.is_connected
        assert evses[0].charge_point.location == location
        assert [policy_for(e, location).slot_step_minutes for e in evses] == [15, 60, 15]
        assert evses[0].capabilities == first.capabilities  # array field
    assert evses[0].last_updated == EVSE.objects.get(pk=first.pk).last_updated
    # Querying further from the relation stays scoped to its EVSE.
    assert list(evses[0].connectors.filter(power_type=dc.power_type)) == [dc]
    assert evses[2].connectors.count() == 1
    # An EVSE loaded another way reads its connectors when asked.
    assert [c.pk for c in EVSE.objects.get(pk=first.pk).connector_list()] == [ac.pk, dc.pk]
    assert not BookingPolicy.objects.filter(evse=evses[0]).exists()


def test_evses_of_an_empty_location(django_assert_num_queries):
    location = LocationFactory()
    with django_assert_num_queries(1):
        assert evses_of_location(location=location) == []


def test_ocpi_ids_are_unique_in_any_case():
    LocationFactory(ocpi_id="Site-9")
    with pytest.raises(ValidationError, match="OCPI id, in any case"):
        LocationFactory.build(ocpi_id="SITE-9").full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        LocationFactory(ocpi_id="site-9")


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT id FROM locations_location l WHERE upper(l.ocpi_id::text) = upper(%s::text)",
        "SELECT id FROM locations_location l WHERE upper(l.ocpi_id) = upper(%s)",
        str(Location.objects.filter(ocpi_id__iexact="X").values("id").query).replace(
            "UPPER(X)", "UPPER(%s)"
        ),
    ],
)
def test_lookups_by_ocpi_id_in_any_case_can_use_an_index(statement):
    # Every OCPI call finds its location this way: without the index it was a sequential scan
    # of all locations. (Tiny test tables make a scan cheaper, so scans are switched off.)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {statement}", ["site-9"])
        plan = " ".join(row[0] for row in cursor.fetchall())
    assert "location_ocpi_id_ci_unique" in plan, plan
