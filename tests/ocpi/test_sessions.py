"""Sessions module (Sender): an eMSP reads the charging sessions of its bookings and tokens,
with their energy, charging periods from the meter, and the cost so far under the tariff."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from chargers.models import ChargingSession, MeterReading
from locations.models import EVSE, TariffDimension, TaxIncluded
from tests.bookings.factories import BookingFactory
from tests.locations.factories import PriceComponentFactory, TariffElementFactory, TariffFactory
from tests.ocpi.factories import TokenFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/ocpi/cpo/2.3.0/sessions"


@pytest.fixture
def tariff(site):
    tariff = TariffFactory(ocpi_id="AMS-KWH", tax_included=TaxIncluded.NO,
                           tax_percentage=Decimal("21"), locations=[site])  # fmt: skip
    element = TariffElementFactory(tariff=tariff)
    PriceComponentFactory(element=element, type=TariffDimension.ENERGY, price=Decimal("0.40"))
    PriceComponentFactory(element=element, type=TariffDimension.FLAT, price=Decimal("1.00"))
    return tariff


def session_with_readings(evse, *, id_tag, booking=None, stopped=True, tx=None):
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    session = ChargingSession.objects.create(
        charge_point=evse.charge_point, evse=evse, transaction_id=tx or f"TX-{id_tag}",
        id_tag=id_tag,
        started_at=start, meter_start_wh=10_000, booking_id=booking.pk if booking else None,
        stopped_at=start + timedelta(hours=1) if stopped else None,
        meter_stop_wh=30_000 if stopped else None,
    )  # fmt: skip
    for minutes, wh, w in ((20, 20_000, 30_000), (40, 30_000, 30_000), (50, 30_000, 0)):
        MeterReading.objects.create(session=session, at=start + timedelta(minutes=minutes),
                                    energy_wh=wh, power_w=w)  # fmt: skip
    session.meter_last_wh, session.meter_last_at = 30_000, start + timedelta(minutes=50)
    session.save()
    return session


def test_a_booked_session_reads_with_its_energy_periods_and_cost(client, emsp, site, tariff):
    evse = EVSE.objects.get(uid="EVSE-1")
    booking = BookingFactory(evse=evse, channel="OCPI", emsp_country_code="DE",
                             emsp_party_id="XMS", request_id="R-S1",
                             authorization_reference="AUTH-S1")  # fmt: skip
    booking.tokens.create(country_code="DE", party_id="XMS", uid="04AA", type="RFID",
                          contract_id="DE-XMS-C1")  # fmt: skip
    session_with_readings(evse, id_tag="04aa", booking=booking)
    response = client.get(SESSIONS, HTTP_AUTHORIZATION=emsp.auth)
    assert response.status_code == 200 and response["X-Total-Count"] == "1"
    s = response.json()["data"][0]
    assert (s["status"], s["kwh"], s["currency"]) == ("COMPLETED", 20, "EUR")
    assert s["cdr_token"] == {"country_code": "DE", "party_id": "XMS", "uid": "04AA",
                              "type": "RFID", "contract_id": "DE-XMS-C1"}  # fmt: skip
    assert s["authorization_reference"] == "AUTH-S1"
    assert (s["location_id"], s["evse_uid"]) == (site.ocpi_id, "EVSE-1")
    # 10 kWh in the first 20 min, 10 in the next 20, then parked.
    periods = s["charging_periods"]
    assert [p["dimensions"][0] for p in periods[:2]] == [{"type": "ENERGY", "volume": 10}] * 2
    assert {"type": "PARKING_TIME", "volume": 0.1667} in periods[2]["dimensions"]
    assert all(p["tariff_id"] == "AMS-KWH" for p in periods)
    # 20 kWh at 0.40 and a 1.00 start fee, 21% VAT on top.
    vat = {"name": "VAT", "amount": 1.89, "percentage": 21}
    assert s["total_cost"] == {"before_taxes": 9, "taxes": [vat]}


def test_a_running_session_is_active_with_the_energy_so_far(client, emsp, site, tariff):
    evse = EVSE.objects.get(uid="EVSE-2")
    TokenFactory(owner=emsp, country_code="DE", party_id="XMS", uid="app-9", type="APP_USER")
    session_with_readings(evse, id_tag="APP-9", stopped=False)  # uids are case-insensitive
    s = client.get(SESSIONS, HTTP_AUTHORIZATION=emsp.auth).json()["data"][0]
    assert s["status"] == "ACTIVE" and "end_date_time" not in s
    assert s["kwh"] == 20
    assert (s["cdr_token"]["uid"], s["cdr_token"]["type"]) == ("app-9", "APP_USER")
    assert s["total_cost"]["before_taxes"] == 9


def test_a_party_reads_only_its_own_sessions(client, emsp, other_emsp, site, tariff):
    evse = EVSE.objects.get(uid="EVSE-1")
    TokenFactory(owner=emsp, country_code="DE", party_id="XMS", uid="MINE")
    session_with_readings(evse, id_tag="MINE")
    session_with_readings(evse, id_tag="SOMEONE-ELSE")
    assert len(client.get(SESSIONS, HTTP_AUTHORIZATION=emsp.auth).json()["data"]) == 1
    assert client.get(SESSIONS, HTTP_AUTHORIZATION=other_emsp.auth).json()["data"] == []


def test_sessions_page_by_last_updated_without_a_query_per_session(
    client, emsp, site, tariff, django_assert_max_num_queries
):
    evse = EVSE.objects.get(uid="EVSE-1")
    TokenFactory(owner=emsp, country_code="DE", party_id="XMS", uid="MANY")

    def page() -> list:
        return client.get(SESSIONS, HTTP_AUTHORIZATION=emsp.auth).json()["data"]

    session_with_readings(evse, id_tag="MANY", tx="TX-0")
    with django_assert_max_num_queries(20) as few:
        page()
    for n in range(1, 8):
        session_with_readings(evse, id_tag="MANY", tx=f"TX-{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        data = page()
    assert len(data) == 8
    since = data[-1]["last_updated"]
    later = client.get(SESSIONS, {"date_from": since}, HTTP_AUTHORIZATION=emsp.auth).json()
    assert later["data"] and all(s["last_updated"] >= since for s in later["data"])
