"""RESERVE_NOW / CANCEL_RESERVATION end to end: OCPI command -> booking -> worker task -> Redis
bus -> csms -> simulated charger over a real WebSocket -> CommandResult POSTed to the eMSP's
response_url (a real HTTP server)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import ChargerReservation, Status
from chargers.models import Reservation
from ocpi.models import Command
from ocpi.tasks import push_sweep_task
from tests.chargers.fixtures import wait_for
from tests.locations.factories import ChargePointFactory, EVSEFactory
from tests.ocpi.emsp import FakeEmsp
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client, party, name, body):
    return client.post(f"/ocpi/cpo/2.3.0/commands/{name}", data=json.dumps(body),
                       content_type="application/json", HTTP_AUTHORIZATION=party.auth)  # fmt: skip


def test_command_reserve_now_holds_the_charger_then_cancel_releases_it(
    stack,
    client,
    httpserver,
):
    emsp = FakeEmsp(httpserver).install()
    party = PartyFactory(country_code="DE", party_id="XMS", token_b=emsp.token_b)
    cp = ChargePointFactory(ocpp_version="1.6")
    EVSEFactory(charge_point=cp, ocpp_evse_id=1, uid="EVSE-CMD")
    sim = stack.charger(cp)
    expiry = (timezone.now() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reserve = {
        "response_url": httpserver.url_for("/ocpi/emsp/2.3.0/commands/RESERVE_NOW/8c1d"),
        "token": {"country_code": "DE", "party_id": "XMS", "uid": "04AABBCCDD", "type": "RFID",
                  "contract_id": "DE-XMS-C1", "issuer": "Fake eMSP", "valid": True,
                  "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"},
        "expiry_date": expiry, "reservation_id": "RSV-8c1d",
        "location_id": cp.location.ocpi_id, "evse_uid": "EVSE-CMD",
    }  # fmt: skip
    response = _post(client, party, "RESERVE_NOW", reserve)
    assert response.json()["data"]["result"] == "ACCEPTED"

    wait_for(lambda: [r for r in sim.received if r.action == "ReserveNow"])
    push_sweep_task()  # as beat or the after-commit nudge would: the charger answered
    wait_for(lambda: emsp.pushes)
    assert emsp.pushes[0][:2] == ("POST", "/ocpi/emsp/2.3.0/commands/RESERVE_NOW/8c1d")
    assert emsp.pushes[0][2]["result"] == "ACCEPTED"
    reserve_nows = [r.payload for r in sim.received if r.action == "ReserveNow"]
    assert len(reserve_nows) == 1
    placed = Reservation.objects.get()
    # The charger gets our own reservation id, never the eMSP's.
    assert reserve_nows[0]["reservation_id"] == placed.pk
    assert reserve_nows[0]["id_tag"] == "04AABBCCDD"
    assert reserve_nows[0]["expiry_date"] == expiry  # held until the eMSP's expiry_date
    booking = Command.objects.get().booking
    assert booking.charger_reservation == ChargerReservation.HELD

    cancel = {"response_url": httpserver.url_for("/ocpi/emsp/2.3.0/commands/CANCEL/8c1e"),
              "reservation_id": "RSV-8c1d"}  # fmt: skip
    assert _post(client, party, "CANCEL_RESERVATION", cancel).json()["data"]["result"] == "ACCEPTED"
    push_sweep_task()
    wait_for(lambda: len(emsp.pushes) == 2)
    assert emsp.pushes[1][2]["result"] == "ACCEPTED"
    booking.refresh_from_db()
    assert booking.status == Status.CANCELED
    wait_for(lambda: any(r.action == "CancelReservation" for r in sim.received))
