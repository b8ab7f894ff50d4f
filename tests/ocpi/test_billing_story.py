"""The whole story an eMSP bills from, against a real local eMSP HTTP server and a real OCPP
charge point (1.6 and 2.0.1) on a real WebSocket: tariff published -> booking requested ->
ReserveNow held -> the driver starts with the booking's token (or the eMSP with START_SESSION)
-> meter values -> stop -> Session pushes, then the CDR with booking_id, the tariff and a total
that matches a hand computation; a no-show with a fee; a cancellation inside the fee window and
one before it."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bookings.models import Booking, ChargerReservation, Status
from bookings.sweeps import sweep_no_shows, sweep_reservations
from chargers.models import ChargingSession
from locations.models import Capability, TariffDimension, TaxIncluded
from ocpi.tasks import push_sweep_task
from tests.chargers.fixtures import wait_for
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    PriceComponentFactory,
    TariffElementFactory,
    TariffFactory,
)
from tests.ocpi.emsp import FakeEmsp
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db(transaction=True)

BOOKINGS = "/ocpi/cpo/2.3.0/bookings"
TOKEN = {"country_code": "DE", "party_id": "XMS", "uid": "04570A7E", "type": "RFID",
         "contract_id": "DE-XMS-C0457"}  # fmt: skip
D = Decimal


def z(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def request(client, party, location, evse_uid, start, request_id, **extra):
    body = {"country_code": "DE", "party_id": "XMS", "request_id": request_id,
            "location_id": location.ocpi_id, "evse_uid": evse_uid, "tokens": [TOKEN],
            "period": {"start_from": z(start), "end_before": z(start + timedelta(hours=1))},
            "authorization_reference": f"AUTH-{request_id}", **extra}  # fmt: skip
    response = client.post(BOOKINGS, data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=party.auth)  # fmt: skip
    assert response.status_code in (200, 201), response.content
    return response.json()["data"]


def command(client, party, emsp, name, ref, **body):
    """Send an OCPI command; returns the CommandResult the eMSP then receives."""
    path = f"/ocpi/emsp/2.3.0/commands/{name}/{ref}"
    body["response_url"] = emsp.server.url_for(path)
    response = client.post(f"/ocpi/cpo/2.3.0/commands/{name}", data=json.dumps(body),
                           content_type="application/json",
                           HTTP_AUTHORIZATION=party.auth)  # fmt: skip
    assert response.json()["data"]["result"] == "ACCEPTED", response.content
    return wait_for(lambda: [b for _, p, b in emsp.pushes if p == path])[0]


@pytest.mark.parametrize("start_by", ["rfid", "START_SESSION"])
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_booked_charge_flows_from_request_to_invoice_line(
    stack, client, httpserver, version, start_by
):
    emsp = FakeEmsp(httpserver).install()
    party = PartyFactory(country_code="DE", party_id="XMS", token_b=emsp.token_b,
                         endpoints=emsp.receivers("sessions", "cdrs", "tariffs"))  # fmt: skip
    cp = ChargePointFactory(ocpp_version=version)
    location = cp.location
    BookingPolicyFactory(location=location, slot_step_minutes=1, reserve_lead_minutes=10,
                         noshow_fee=True, noshow_timeout_minutes=15, cancel_until_minutes=5,
                         cancel_fee_minutes=120)  # fmt: skip
    capabilities = [Capability.RESERVABLE, Capability.RFID_READER,
                    Capability.REMOTE_START_STOP_CAPABLE]  # fmt: skip
    for n in (1, 2):
        EVSEFactory(charge_point=cp, ocpp_evse_id=n, uid=f"EVSE-S{n}", capabilities=capabilities)

    # The tariff is published: 0.40/kWh and 1.00 a session; a booking 2.00, a no-show 5.00,
    # a late cancellation 3.00; 21% VAT on top.
    tariff = TariffFactory(ocpi_id="STORY", tax_included=TaxIncluded.NO,
                           tax_percentage=D("21"), locations=[location])  # fmt: skip
    charging = TariffElementFactory(tariff=tariff, position=0)
    PriceComponentFactory(element=charging, type=TariffDimension.ENERGY, price=D("0.40"))
    PriceComponentFactory(element=charging, type=TariffDimension.FLAT, price=D("1.00"))
    for position, kind, price in ((1, "RESERVATION", "2.00"), (2, "RESERVATION_EXPIRES", "5.00"),
                                  (3, "RESERVATION_CANCELLATION_FEES", "3.00")):  # fmt: skip
        element = TariffElementFactory(tariff=tariff, position=position, reservation=kind)
        PriceComponentFactory(element=element, type=TariffDimension.FLAT, price=D(price))
    push_sweep_task()
    wait_for(lambda: any("/tariffs/" in p for _, p, _ in emsp.pushes))
    assert [(m, b["id"]) for m, p, b in emsp.pushes if "/tariffs/" in p][-1] == ("PUT", "STORY")

    sim = stack.charger(cp, power_w=3_600_000)  # 1 kWh a second: a visible bill in a test
    now = timezone.now()
    start = (now + timedelta(minutes=2)).replace(second=0, microsecond=0)
    booked = request(client, party, location, "EVSE-S1", start, "R-CHARGE")
    assert booked["reservation_status"] == "RESERVED"
    assert booked["tariff_id"] == ["STORY"]
    booking = Booking.objects.get(request_id="R-CHARGE")

    # The reservation sweep holds the EVSE at the charger.
    sweep_reservations()
    wait_for(lambda: Booking.objects.get(pk=booking.pk).charger_reservation
             == ChargerReservation.HELD)  # fmt: skip
    assert [r.payload for r in sim.received if r.action == "ReserveNow"]

    # The driver arrives and starts with the booking's token, or their eMSP starts it for
    # them with the booking's authorization reference; the meter runs; they stop.
    if start_by == "rfid":
        tx = stack.run(sim.start_session(TOKEN["uid"], 1))
    else:
        token = {**TOKEN, "issuer": "Fake eMSP", "valid": True, "whitelist": "ALLOWED",
                 "last_updated": "2026-01-01T00:00:00Z"}  # fmt: skip
        result = command(client, party, emsp, "START_SESSION", "s1", token=token,
                         location_id=location.ocpi_id, evse_uid="EVSE-S1",
                         authorization_reference="AUTH-R-CHARGE")  # fmt: skip
        assert result["result"] == "ACCEPTED"
        running = wait_for(lambda: ChargingSession.objects.filter(stopped_at=None).first())
        tx = running.transaction_id
        wait_for(lambda: tx in sim.sessions)
    wait_for(lambda: Booking.objects.get(pk=booking.pk).status == Status.FULFILLED)
    for _ in range(3):
        stack.run(sim.send_meter_values())
    if start_by == "rfid":
        stack.run(sim.stop_session(tx, 1))
    else:
        result = command(client, party, emsp, "STOP_SESSION", "s2", session_id=str(running.pk))
        assert result["result"] == "ACCEPTED"
    session = wait_for(lambda: ChargingSession.objects.filter(stopped_at__isnull=False).first())
    push_sweep_task()
    wait_for(lambda: any(p.endswith("/cdrs") for _, p, _ in emsp.pushes))

    pushes = [
        (m, p, b) for m, p, b in emsp.pushes if "/tariffs/" not in p and "/commands/" not in p
    ]
    kinds = ["cdr" if p.endswith("/cdrs") else "session" if "/sessions/" in p else "booking"
             for _, p, _ in pushes]  # fmt: skip
    # Every Session push before the CDR, the last one COMPLETED; the booking FULFILLED.
    cdr_at = kinds.index("cdr")
    assert "session" in kinds and max(i for i, k in enumerate(kinds) if k == "session") < cdr_at
    sessions = [b for (_, p, b), k in zip(pushes, kinds, strict=True) if k == "session"]
    assert sessions[-1]["status"] == "COMPLETED" and sessions[-1]["id"] == str(session.pk)
    assert sessions[-1]["authorization_reference"] == "AUTH-R-CHARGE"
    assert sessions[-1]["auth_method"] == ("WHITELIST" if start_by == "rfid" else "COMMAND")
    bookings = [b for (_, p, b), k in zip(pushes, kinds, strict=True) if k == "booking"]
    assert bookings[-1]["reservation_status"] == "FULFILLED"

    cdr = pushes[cdr_at][2]
    kwh = session.energy_wh / 1000
    assert kwh > 0
    assert cdr["booking_id"] == str(booking.uid) and cdr["session_id"] == str(session.pk)
    assert cdr["authorization_reference"] == "AUTH-R-CHARGE"
    assert cdr["cdr_token"]["uid"] == TOKEN["uid"]
    assert [t["id"] for t in cdr["tariffs"]] == ["STORY"]
    assert D(str(cdr["total_energy"])) == kwh.quantize(D("0.0001"))
    # By hand: the energy at 0.40, the 1.00 start fee, the 2.00 booking fee; 21% VAT on top.
    # (The CDR prices each meter period's energy to 0.0001 before adding them up, so a total
    # may land a cent away from the hand's where the exact sum sits on a half cent.)
    before = kwh * D("0.40") + D("1.00") + D("2.00")
    total = cdr["total_cost"]
    assert abs(D(str(total["before_taxes"])) - before) <= D("0.01")
    after = D(str(total["before_taxes"])) + D(str(total["taxes"][0]["amount"]))
    assert abs(after - before * D("1.21")) <= D("0.01")
    assert total["taxes"][0]["percentage"] == 21
    assert cdr["total_reservation_cost"]["before_taxes"] == 2

    # A second booking nobody comes for: a no-show, and its fee reaches the eMSP as a CDR.
    later = start + timedelta(hours=2)
    request(client, party, location, "EVSE-S1", later, "R-NOSHOW")
    sweep_no_shows(now=later + timedelta(minutes=16))
    no_show = Booking.objects.get(request_id="R-NOSHOW")
    assert no_show.status == Status.NO_SHOW
    # A cancellation 90 minutes ahead (inside the 2-hour fee window) owes the fee; one 5 hours
    # ahead does not.
    for request_id, ahead in (("R-LATE", timedelta(minutes=90)), ("R-EARLY", timedelta(hours=5))):
        at = (now + ahead).replace(second=0, microsecond=0)
        request(client, party, location, "EVSE-S2", at, request_id)
        reason = {"cancellation_reason": "TRAFFIC", "who_canceled": "EMSP"}
        cancel = {"country_code": "DE", "party_id": "XMS", "request_id": request_id,
                  "canceled": reason}  # fmt: skip
        response = client.post(BOOKINGS, data=json.dumps(cancel), content_type="application/json",
                               HTTP_AUTHORIZATION=party.auth)  # fmt: skip
        assert response.json()["data"]["reservation_status"] == "CANCELED"
    push_sweep_task()
    wait_for(lambda: sum(p.endswith("/cdrs") for _, p, _ in emsp.pushes) == 3)
    fees = {c["booking_id"]: c for m, p, c in emsp.pushes if p.endswith("/cdrs")}
    late = Booking.objects.get(request_id="R-LATE")
    assert set(fees) == {str(booking.uid), str(no_show.uid), str(late.uid)}
    assert fees[str(no_show.uid)]["total_cost"]["before_taxes"] == 5
    assert fees[str(no_show.uid)]["cdr_location"]["evse_uid"] == "EVSE-S1"
    assert "session_id" not in fees[str(no_show.uid)]
    assert fees[str(late.uid)]["total_cost"]["before_taxes"] == 3
    assert fees[str(late.uid)]["total_cost"]["taxes"][0]["amount"] == 0.63
