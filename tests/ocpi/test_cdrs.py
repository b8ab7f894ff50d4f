"""CDRs: a finished session's record with its booking's fees, a no-show's and a late
cancellation's fee, read from the CDRs module and pushed to the eMSP's receivers with the
Sessions and Tariffs pushes, in order."""

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.models import Booking, CanceledReason
from bookings.services import Actor, booking_cancel, booking_mark_no_show
from chargers.meter import Reading
from chargers.models import ChargeDetailRecord, ChargingSession, MeterReading
from chargers.services import session_meter_values, session_start, session_stop
from locations.models import EVSE, PriceComponent, TariffDimension, TaxIncluded
from ocpi.models import Push
from ocpi.push import deliver
from tests.bookings.factories import BookingFactory, BookingTokenFactory
from tests.locations.factories import PriceComponentFactory, TariffElementFactory, TariffFactory
from tests.ocpi.emsp import FakeEmsp
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db

CDRS = "/ocpi/cpo/2.3.0/cdrs"
REQUEST_IDS = itertools.count(1)
D = Decimal


@pytest.fixture
def tariff(site):
    """0.40/kWh and 1.00 a session, 21% VAT on top; a booking costs 2.00, 6.00 an hour past
    its end (in started minutes), a no-show 1.00 and 4.00 an hour held, a late cancellation
    3.00."""
    tariff = TariffFactory(ocpi_id="AMS-BOOK", tax_included=TaxIncluded.NO,
                           tax_percentage=D("21"), locations=[site])  # fmt: skip
    charging = TariffElementFactory(tariff=tariff, position=0)
    PriceComponentFactory(element=charging, type=TariffDimension.ENERGY, price=D("0.40"))
    PriceComponentFactory(element=charging, type=TariffDimension.FLAT, price=D("1.00"))
    for position, reservation, components in (
        (1, "RESERVATION", [(TariffDimension.FLAT, "2.00", 1)]),
        (2, "RESERVATION_OVERTIME", [(TariffDimension.TIME, "6.00", 60)]),
        (3, "RESERVATION_EXPIRES", [(TariffDimension.FLAT, "1.00", 1),
                                    (TariffDimension.TIME, "4.00", 60)]),
        (4, "RESERVATION_CANCELLATION_FEES", [(TariffDimension.FLAT, "3.00", 1)]),
    ):  # fmt: skip
        element = TariffElementFactory(tariff=tariff, position=position, reservation=reservation)
        for dimension, price, step in components:
            PriceComponentFactory(element=element, type=dimension, price=D(price), step_size=step)
    return tariff


def emsp_booking(evse, *, start, duration=timedelta(hours=1), uid="04AA", **kwargs):
    booking = BookingFactory(evse=evse, start=start, duration=duration, channel="OCPI",
                             emsp_country_code="DE", emsp_party_id="XMS",
                             request_id=f"R-{next(REQUEST_IDS)}", **kwargs)  # fmt: skip
    BookingTokenFactory(booking=booking, country_code="DE", party_id="XMS", uid=uid,
                        contract_id="DE-XMS-C1")  # fmt: skip
    return booking


def charge(evse, *, booking=None, start, tx="TX-1"):
    """A session that charged 20 kWh in 40 minutes, then stood parked; stopped at 60 minutes
    through the service the csms calls."""
    session = ChargingSession.objects.create(
        charge_point=evse.charge_point, evse=evse, transaction_id=tx, id_tag="04aa",
        started_at=start, meter_start_wh=10_000, booking_id=booking.pk if booking else None,
    )  # fmt: skip
    for minutes, wh, w in ((20, 20_000, 30_000), (40, 30_000, 30_000), (50, 30_000, 0)):
        MeterReading.objects.create(session=session, at=start + timedelta(minutes=minutes),
                                    energy_wh=wh, power_w=w)  # fmt: skip
    return session_stop(charge_point=evse.charge_point, transaction_id=tx,
                        stopped_at=start + timedelta(hours=1), meter_stop_wh=30_000)  # fmt: skip


def test_a_finished_booked_session_has_a_cdr_with_the_booking_and_its_fees(
    client, emsp, site, tariff
):
    evse = EVSE.objects.get(uid="EVSE-1")
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    # Booked for 45 minutes from 5 minutes before the start: 15 minutes of overtime.
    booking = emsp_booking(evse, start=start - timedelta(minutes=5),
                           duration=timedelta(minutes=50), status="FULFILLED")  # fmt: skip
    charge(evse, booking=booking, start=start)

    response = client.get(CDRS, HTTP_AUTHORIZATION=emsp.auth)
    assert response.status_code == 200 and response["X-Total-Count"] == "1"
    cdr = response.json()["data"][0]
    assert cdr["booking_id"] == str(booking.uid)
    assert cdr["authorization_reference"] == booking.authorization_reference
    assert cdr["cdr_token"]["uid"] == "04AA" and cdr["cdr_token"]["contract_id"] == "DE-XMS-C1"
    assert (cdr["total_energy"], cdr["total_time"], cdr["total_parking_time"]) == (20, 1, 0.3333)
    assert cdr["cdr_location"]["id"] == site.ocpi_id and cdr["cdr_location"]["evse_uid"] == "EVSE-1"
    assert [t["id"] for t in cdr["tariffs"]] == ["AMS-BOOK"]
    # By hand: 20 kWh x 0.40 + 1.00 start = 9.00; booking 2.00 + 0.25 h x 6.00 = 3.50.
    # 12.50 before taxes, 21% VAT = 2.625 -> 15.13 after.
    vat = {"name": "VAT", "amount": 2.63, "percentage": 21}
    assert cdr["total_cost"] == {"before_taxes": 12.5, "taxes": [vat]}
    assert cdr["total_energy_cost"]["before_taxes"] == 8
    assert cdr["total_fixed_cost"]["before_taxes"] == 1
    assert cdr["total_reservation_cost"]["before_taxes"] == 3.5
    overtime = [p for p in cdr["charging_periods"]
                if p["dimensions"][0]["type"] == "RESERVATION_OVERTIME"]  # fmt: skip
    assert overtime[0]["dimensions"][0]["volume"] == 0.25


def test_a_cdr_does_not_change_when_the_tariff_or_the_meter_does(client, emsp, site, tariff):
    evse = EVSE.objects.get(uid="EVSE-1")
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    session = charge(evse, start=start)
    from tests.ocpi.factories import TokenFactory

    TokenFactory(owner=emsp, country_code="DE", party_id="XMS", uid="04AA")
    first = client.get(CDRS, HTTP_AUTHORIZATION=emsp.auth).json()["data"][0]
    assert first["total_cost"]["before_taxes"] == 9  # no booking: no booking fees
    PriceComponent.objects.filter(type=TariffDimension.ENERGY).update(price=D("9.99"))
    MeterReading.objects.create(session=session, at=start + timedelta(minutes=55),
                                energy_wh=90_000)  # fmt: skip
    session_stop(
        charge_point=evse.charge_point,
        transaction_id="TX-1",
        stopped_at=start + timedelta(hours=3),
        meter_stop_wh=99_000,
    )  # sent again
    again = client.get(CDRS, HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    assert len(again) == 1 and again[0]["total_cost"] == first["total_cost"]
    assert again[0]["end_date_time"] == first["end_date_time"]


def test_a_no_show_with_a_fee_has_a_cdr_without_a_session(client, emsp, site, tariff):
    evse = EVSE.objects.get(uid="EVSE-1")
    start = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    booking = emsp_booking(evse, start=start)
    Booking.objects.filter(pk=booking.pk).update(terms={**booking.terms, "noshow_fee": True})
    no_fee = emsp_booking(EVSE.objects.get(uid="EVSE-2"), start=start, uid="04BB")
    booking_mark_no_show(booking=booking)
    booking_mark_no_show(booking=no_fee)  # its terms did not say noshow_fee

    cdrs = client.get(CDRS, HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    assert [c["booking_id"] for c in cdrs] == [str(booking.uid)]
    cdr = cdrs[0]
    assert "session_id" not in cdr and cdr["total_energy"] == 0
    # Held the whole booked hour for nobody: 1.00 + 1 h x 4.00 = 5.00, 6.05 with VAT.
    assert cdr["total_cost"]["before_taxes"] == 5
    assert cdr["total_cost"]["taxes"][0]["amount"] == 1.05
    assert cdr["charging_periods"][0]["dimensions"] == [{"type": "RESERVATION_EXPIRES",
                                                         "volume": 1}]  # fmt: skip
    assert cdr["remark"] == "No-show fee"


@pytest.mark.parametrize(
    ("before_start", "actor", "reason", "owes"),
    [
        (timedelta(minutes=60), Actor.emsp("DE", "XMS"), CanceledReason.TRAFFIC, True),
        (timedelta(hours=3), Actor.emsp("DE", "XMS"), CanceledReason.TRAFFIC, False),
        (timedelta(minutes=60), Actor.emsp("DE", "XMS"), CanceledReason.BROKEN_CHARGER, False),
        (timedelta(minutes=60), Actor.system("staff"), CanceledReason.TRAFFIC, False),
    ],
    ids=["inside-the-fee-window", "before-the-window", "operator-reason", "staff"],
)
def test_a_late_cancellation_by_the_driver_side_owes_the_fee(
    client, emsp, site, tariff, before_start, actor, reason, owes
):
    site.booking_policy.cancel_fee_minutes = 120  # cancelling is free until 2 h before
    site.booking_policy.save()
    now = timezone.now().replace(microsecond=0)
    booking = emsp_booking(EVSE.objects.get(uid="EVSE-1"), start=now + before_start)
    booking_cancel(booking=booking, actor=actor, reason=reason, now=now)
    cdrs = client.get(CDRS, HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    assert len(cdrs) == int(owes)
    if owes:
        assert cdrs[0]["booking_id"] == str(booking.uid)
        assert cdrs[0]["total_cost"]["before_taxes"] == 3
        assert cdrs[0]["total_reservation_cost"]["before_taxes"] == 3


def test_a_party_reads_only_its_own_cdrs(client, emsp, other_emsp, site, tariff):
    evse = EVSE.objects.get(uid="EVSE-1")
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    charge(evse, booking=emsp_booking(evse, start=start, status="FULFILLED"), start=start)
    assert client.get(CDRS, HTTP_AUTHORIZATION=emsp.auth)["X-Total-Count"] == "1"
    assert client.get(CDRS, HTTP_AUTHORIZATION=other_emsp.auth)["X-Total-Count"] == "0"


def test_cdrs_page_without_a_query_per_cdr(client, emsp, site, tariff):
    evse = EVSE.objects.get(uid="EVSE-1")
    base = timezone.now().replace(microsecond=0) - timedelta(days=1)

    def read() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(CDRS, HTTP_AUTHORIZATION=emsp.auth).status_code == 200
        return len(queries)

    for i in range(2):
        start = base + timedelta(hours=2 * i)
        charge(evse, booking=emsp_booking(evse, start=start, status="FULFILLED"), start=start,
               tx=f"TX-{i}")  # fmt: skip
    few = read()
    for i in range(2, 7):
        start = base + timedelta(hours=2 * i)
        charge(evse, booking=emsp_booking(evse, start=start, status="FULFILLED"), start=start,
               tx=f"TX-{i}")  # fmt: skip
    assert read() == few


@pytest.fixture
def emsp_server(httpserver):
    return FakeEmsp(httpserver).install()


def test_a_booked_charge_is_pushed_as_sessions_then_its_cdr(emsp_server, site, tariff, settings):
    settings.OCPI_SESSION_PUSH_INTERVAL_SECONDS = 60
    party = PartyFactory(country_code="DE", party_id="XMS", token_b=emsp_server.token_b,
                         endpoints=emsp_server.receivers("sessions", "cdrs"))  # fmt: skip
    evse = EVSE.objects.get(uid="EVSE-1")
    now = timezone.now().replace(microsecond=0)
    booking = emsp_booking(evse, start=now - timedelta(minutes=5))
    session = session_start(charge_point=evse.charge_point, ocpp_evse_id=evse.ocpp_evse_id,
                            id_tag="04aa", started_at=now, transaction_id="TX-9",
                            meter_start_wh=1_000)  # fmt: skip
    assert Booking.objects.get(pk=booking.pk).status == "FULFILLED"
    for minutes, wh in ((1, 2_000), (2, 3_000), (3, 4_000)):  # three meter values in a minute
        reading = Reading(now + timedelta(minutes=minutes), D(wh))
        session_meter_values(charge_point=evse.charge_point, transaction_id="TX-9",
                             readings=[reading])  # fmt: skip
    sessions = Push.objects.filter(party=party, kind="SESSION")
    assert sessions.count() == 1  # the start: meter values inside the interval wait
    settings.OCPI_SESSION_PUSH_INTERVAL_SECONDS = 0
    session_meter_values(charge_point=evse.charge_point, transaction_id="TX-9",
                         readings=[Reading(now + timedelta(minutes=4), D(5_000))])  # fmt: skip
    assert sessions.count() == 2
    session_stop(charge_point=evse.charge_point, transaction_id="TX-9",
                 stopped_at=now + timedelta(minutes=30), meter_stop_wh=9_000)  # fmt: skip
    assert deliver(party_id=party.pk).sent >= 2

    charges = [(m, p, b) for m, p, b in emsp_server.pushes if "/bookings/" not in p]
    session_url = f"/ocpi/emsp/2.3.0/sessions/NL/CBK/{session.pk}"
    # Coalesced: the session's newest state once, then its CDR.
    assert [(m, p) for m, p, _ in charges] == [("PUT", session_url),
                                               ("POST", "/ocpi/emsp/2.3.0/cdrs")]  # fmt: skip
    assert charges[0][2]["status"] == "COMPLETED" and charges[0][2]["kwh"] == 8
    cdr = charges[1][2]
    assert cdr["booking_id"] == str(booking.uid) and cdr["session_id"] == str(session.pk)
    assert cdr["id"] == str(ChargeDetailRecord.objects.get(session=session).pk)
    # 8 kWh x 0.40 + 1.00 + booking 2.00 = 6.20 (it ended inside the booked hour).
    assert cdr["total_cost"]["before_taxes"] == 6.2


def test_cdrs_are_not_sent_to_a_party_without_a_cdrs_receiver(emsp_server, site, tariff):
    party = PartyFactory(country_code="DE", party_id="XMS", token_b=emsp_server.token_b,
                         endpoints=emsp_server.receivers("sessions"))  # fmt: skip
    evse = EVSE.objects.get(uid="EVSE-1")
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    charge(evse, booking=emsp_booking(evse, start=start, status="FULFILLED"), start=start)
    deliver(party_id=party.pk)
    cdr_push = Push.objects.get(party=party, kind="CDR")
    assert cdr_push.state == "SKIPPED" and "cdrs" in cdr_push.last_error
    assert [m for m, p, _ in emsp_server.pushes if "/cdrs" in p] == []


def test_a_tariff_saved_or_deleted_is_pushed_to_every_party(emsp_server, site, tariff):
    party = PartyFactory(country_code="DE", party_id="XMS", token_b=emsp_server.token_b,
                         endpoints=emsp_server.receivers("tariffs"))  # fmt: skip
    Push.objects.all().delete()
    tariff.name = "Renamed"
    tariff.save()
    deliver(party_id=party.pk)
    url = "/ocpi/emsp/2.3.0/tariffs/NL/CBK/AMS-BOOK"
    assert [(m, p, b["id"]) for m, p, b in emsp_server.pushes] == [("PUT", url, "AMS-BOOK")]
    tariff.delete()
    deliver(party_id=party.pk)
    assert emsp_server.pushes[-1][:2] == ("DELETE", url)


def test_a_deliverer_that_reaches_its_limit_says_to_go_on(emsp_server, site):
    """A deliverer sends at most `limit` pushes per task; with more waiting it asks for a fresh
    task at once instead of leaving them to beat's next sweep."""
    party = PartyFactory(country_code="DE", party_id="XMS", token_b=emsp_server.token_b,
                         endpoints=emsp_server.receivers("tariffs"))  # fmt: skip
    for n in range(3):
        TariffFactory(ocpi_id=f"T-{n}", locations=[site])
    first = deliver(party_id=party.pk, limit=2)
    assert first.sent == 2 and first.retry_at is not None
    last = deliver(party_id=party.pk, limit=2)
    assert last.sent == 1 and last.retry_at is None
