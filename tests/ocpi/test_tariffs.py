"""Tariffs module (Sender): the Tariff objects eMSPs bill from, in the 2.3.0 shape, and the
tariff ids that Locations, BookingLocations and Bookings name."""

import json
from datetime import time, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from locations.models import EVSE, ReservationRestriction, TariffDimension, TaxIncluded, Weekday
from tests.locations.factories import PriceComponentFactory, TariffElementFactory, TariffFactory
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db

TARIFFS = "/ocpi/cpo/2.3.0/tariffs"


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def tariff(site):
    """Energy 0.35/kWh, 2.00/h after 4 h, a 0.50 start fee, and booking fees."""
    tariff = TariffFactory(
        ocpi_id="AMS-STD", currency="EUR", tax_included=TaxIncluded.NO,
        tax_percentage=Decimal("21.00"), min_price=Decimal("1.00"), alt_text="Idle fee after 4 h",
        locations=[site],
    )  # fmt: skip
    energy = TariffElementFactory(tariff=tariff, position=0)
    PriceComponentFactory(element=energy, type=TariffDimension.ENERGY, price=Decimal("0.3500"))
    PriceComponentFactory(element=energy, type=TariffDimension.FLAT, price=Decimal("0.50"))
    idle = TariffElementFactory(tariff=tariff, position=1, min_duration=4 * 3600,
                                start_time=time(7), end_time=time(22),
                                day_of_week=[Weekday.MONDAY, Weekday.FRIDAY])  # fmt: skip
    PriceComponentFactory(element=idle, type=TariffDimension.TIME, price=Decimal("2.00"),
                          step_size=60)  # fmt: skip
    expired = ReservationRestriction.RESERVATION_EXPIRES  # a no-show fee
    booked = TariffElementFactory(tariff=tariff, position=2, reservation=expired)
    PriceComponentFactory(element=booked, type=TariffDimension.FLAT, price=Decimal("5"))
    return tariff


def test_tariff_list_has_the_2_3_0_tariff(client, emsp, tariff):
    response = client.get(TARIFFS, HTTP_AUTHORIZATION=emsp.auth)
    assert response.status_code == 200 and response["X-Total-Count"] == "1"
    t = response.json()["data"][0]
    assert (t["country_code"], t["party_id"], t["id"]) == ("NL", "CBK", "AMS-STD")
    assert t["currency"] == "EUR" and t["tax_included"] == "NO"
    assert t["min_price"] == {"before_taxes": 1, "after_taxes": 1.21}
    assert t["tariff_alt_text"] == [{"language": "en", "text": "Idle fee after 4 h"}]
    energy, idle, booked = t["elements"]
    assert energy == {"price_components": [
        {"type": "ENERGY", "price": 0.35, "step_size": 1},
        {"type": "FLAT", "price": 0.5, "step_size": 1},
    ]}  # fmt: skip
    assert idle["restrictions"] == {
        "start_time": "07:00", "end_time": "22:00", "min_duration": 14400,
        "day_of_week": ["MONDAY", "FRIDAY"],
    }  # fmt: skip
    assert idle["price_components"] == [{"type": "TIME", "price": 2, "step_size": 60}]
    assert booked["restrictions"] == {"reservation": "RESERVATION_EXPIRES"}
    assert t["last_updated"].endswith("Z")


def test_tariff_for_a_bookings_1_1_party_prices_bookings_with_the_booking_restriction(
    client, tariff
):
    party = PartyFactory(country_code="SE", party_id="VOL", booking_module_version="1.1")
    t = client.get(TARIFFS, HTTP_AUTHORIZATION=party.auth).json()["data"][0]
    assert t["elements"][2]["restrictions"] == {"booking": "BOOKING_EXPIRES"}


def test_tariff_list_pages_and_filters_by_last_updated(client, emsp, tariff):
    later = TariffFactory(ocpi_id="AMS-NIGHT")
    from locations.models import Tariff

    Tariff.objects.filter(pk=tariff.pk).update(last_updated=timezone.now() - timedelta(days=2))
    since = z(timezone.now() - timedelta(days=1))
    data = client.get(TARIFFS, {"date_from": since}, HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    assert [t["id"] for t in data] == [later.ocpi_id]
    page = client.get(TARIFFS, {"limit": 1}, HTTP_AUTHORIZATION=emsp.auth)
    assert [t["id"] for t in page.json()["data"]] == ["AMS-STD"]
    assert "offset=1" in page["Link"]


def test_tariff_list_needs_a_party(client, tariff):
    assert client.get(TARIFFS).status_code == 401


def test_versions_list_the_tariffs_module(client, emsp):
    endpoints = client.get("/ocpi/2.3.0/", HTTP_AUTHORIZATION=emsp.auth).json()["data"]["endpoints"]
    assert {"identifier": "tariffs", "role": "SENDER"}.items() <= next(
        e for e in endpoints if e["identifier"] == "tariffs"
    ).items()


def test_evses_name_their_own_tariffs_else_their_locations(client, emsp, site, tariff):
    evse2 = EVSE.objects.get(uid="EVSE-2")
    TariffFactory(ocpi_id="FAST-DC", evses=[evse2])
    location = client.get(f"/ocpi/cpo/2.3.0/locations/{site.ocpi_id}", HTTP_AUTHORIZATION=emsp.auth)
    by_evse = {e["uid"]: e for e in location.json()["data"]["evses"]}
    assert by_evse["EVSE-1"]["connectors"][0]["tariff_ids"] == ["AMS-STD"]
    assert by_evse["EVSE-2"]["connectors"][0]["tariff_ids"] == ["FAST-DC"]
    bls = client.get("/ocpi/cpo/2.3.0/bookings/booking_locations", HTTP_AUTHORIZATION=emsp.auth)
    assert {bl["evse_uid"]: bl["tariff_id"] for bl in bls.json()["data"]} == {
        "EVSE-1": ["AMS-STD"], "EVSE-2": ["FAST-DC"]
    }  # fmt: skip


def test_a_booking_names_the_tariffs_of_its_evse(client, emsp, site, tariff, tomorrow_10):
    body = {
        "country_code": "DE", "party_id": "XMS", "request_id": "REQ-T", "location_id": site.ocpi_id,
        "evse_uid": "EVSE-1", "authorization_reference": "AUTH-T",
        "period": {"start_from": z(tomorrow_10), "end_before": z(tomorrow_10 + timedelta(hours=1))},
    }  # fmt: skip
    posted = client.post("/ocpi/cpo/2.3.0/bookings", json.dumps(body),
                         content_type="application/json", HTTP_AUTHORIZATION=emsp.auth)  # fmt: skip
    assert posted.json()["data"]["tariff_id"] == ["AMS-STD"]
    listed = client.get("/ocpi/cpo/2.3.0/bookings", HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    assert listed[0]["tariff_id"] == ["AMS-STD"]
    # The tariffs accepted with the booking stay with it; moving it to an EVSE with tariffs of
    # its own takes those.
    TariffFactory(ocpi_id="AMS-NEW", locations=[site])
    TariffFactory(ocpi_id="FAST-DC", evses=[EVSE.objects.get(uid="EVSE-2")])
    listed = client.get("/ocpi/cpo/2.3.0/bookings", HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    assert listed[0]["tariff_id"] == ["AMS-STD"]
    body["evse_uid"] = "EVSE-2"
    moved = client.post("/ocpi/cpo/2.3.0/bookings", json.dumps(body),
                        content_type="application/json", HTTP_AUTHORIZATION=emsp.auth)  # fmt: skip
    assert moved.json()["data"]["evse_uid"] == "EVSE-2"
    assert moved.json()["data"]["tariff_id"] == ["FAST-DC"]


def test_tariff_rules_hold_in_the_database(tariff):
    with pytest.raises(IntegrityError), transaction.atomic():
        TariffFactory(ocpi_id="ams-std")  # ids are CiStrings
    with pytest.raises(IntegrityError), transaction.atomic():
        TariffFactory(min_price=Decimal("5"), max_price=Decimal("1"))
    element = tariff.elements.get(position=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceComponentFactory(element=element, type=TariffDimension.ENERGY)  # one per dimension


def test_a_booking_element_takes_only_flat_and_time_components(tariff):
    booked = tariff.elements.get(position=2)
    component = PriceComponentFactory.build(element=booked, type=TariffDimension.ENERGY)
    with pytest.raises(ValidationError, match="FLAT and TIME"):
        component.clean()
