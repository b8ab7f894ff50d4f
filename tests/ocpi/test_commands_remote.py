"""START_SESSION, STOP_SESSION and UNLOCK_CONNECTOR end to end: OCPI command -> worker task ->
Redis bus -> csms -> simulated charger (OCPP 1.6 and 2.0.1 over a real WebSocket) -> the
CommandResult POSTed to the eMSP's response_url (a real HTTP server), and the session the charger
then reports."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Status
from chargers.models import ChargingSession
from locations.models import Capability
from ocpi.models import Command
from ocpi.push import deliver
from tests.chargers.factories import ChargingSessionFactory
from tests.chargers.fixtures import wait_for
from tests.locations.factories import ChargePointFactory, EVSEFactory
from tests.ocpi.emsp import FakeEmsp
from tests.ocpi.factories import PartyFactory, TokenFactory

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE = [Capability.RESERVABLE, Capability.RFID_READER, Capability.REMOTE_START_STOP_CAPABLE,
          Capability.UNLOCK_CAPABLE]  # fmt: skip
START = {"1.6": "RemoteStartTransaction", "2.0.1": "RequestStartTransaction"}
STOP = {"1.6": "RemoteStopTransaction", "2.0.1": "RequestStopTransaction"}


@pytest.fixture
def emsp(httpserver):
    return FakeEmsp(httpserver).install()


@pytest.fixture
def party(emsp):
    return PartyFactory(country_code="DE", party_id="XMS", token_b=emsp.token_b,
                        endpoints=emsp.receivers("sessions", "cdrs"))  # fmt: skip


def charger(version, *, uid="EVSE-RC1", capabilities=REMOTE):
    cp = ChargePointFactory(ocpp_version=version)
    EVSEFactory(charge_point=cp, ocpp_evse_id=1, uid=uid, capabilities=capabilities)
    return cp


def token(uid, party_id="XMS"):
    return {"country_code": "DE", "party_id": party_id, "uid": uid, "type": "APP_USER",
            "contract_id": f"DE-{party_id}-{uid}", "issuer": "Fake eMSP", "valid": True,
            "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"}  # fmt: skip


def post(client, party, name, body):
    return client.post(f"/ocpi/cpo/2.3.0/commands/{name}", data=json.dumps(body),
                       content_type="application/json", HTTP_AUTHORIZATION=party.auth)  # fmt: skip


def result_at(emsp, path):
    """The CommandResult the eMSP received at its response_url path."""
    found = wait_for(lambda: [body for _, p, body in emsp.pushes if p == path])
    assert len(found) == 1  # one CommandResult per command
    return found[0]


def start_body(emsp, cp, ref, uid="04AA0001", **extra):
    body = {"response_url": emsp.server.url_for(f"/ocpi/emsp/2.3.0/commands/START_SESSION/{ref}"),
            "token": token(uid), "location_id": cp.location.ocpi_id, "evse_uid": "EVSE-RC1",
            **extra}  # fmt: skip
    return body


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_start_session_starts_a_session_with_the_reference_then_stop_session_ends_it(
    stack, client, emsp, party, version
):
    cp = charger(version)
    sim = stack.charger(cp)
    body = start_body(emsp, cp, "s1", authorization_reference="EMSP-REF-1")
    data = post(client, party, "START_SESSION", body).json()["data"]
    assert (data["result"], data["timeout"]) == ("ACCEPTED", 30)

    assert result_at(emsp, "/ocpi/emsp/2.3.0/commands/START_SESSION/s1")["result"] == "ACCEPTED"
    sent = [r.payload for r in sim.received if r.action == START[version]]
    assert len(sent) == 1
    if version == "1.6":
        assert (sent[0]["id_tag"], sent[0]["connector_id"]) == ("04AA0001", 1)
    else:
        assert sent[0]["id_token"]["id_token"] == "04AA0001" and sent[0]["evse_id"] == 1
    session = wait_for(lambda: ChargingSession.objects.filter(id_tag="04AA0001").first())
    wait_for(lambda: session.transaction_id in sim.sessions)  # the charger has it open too
    assert session.authorization_reference == "EMSP-REF-1"
    assert session.evse.uid == "EVSE-RC1" and session.stopped_at is None
    listed = client.get("/ocpi/cpo/2.3.0/sessions", HTTP_AUTHORIZATION=party.auth).json()["data"]
    assert [
        (s["id"], s["authorization_reference"], s["auth_method"], s["status"]) for s in listed
    ] == [(str(session.pk), "EMSP-REF-1", "COMMAND", "ACTIVE")]

    stop = {"response_url": emsp.server.url_for("/ocpi/emsp/2.3.0/commands/STOP_SESSION/s1"),
            "session_id": str(session.pk)}  # fmt: skip
    assert post(client, party, "STOP_SESSION", stop).json()["data"]["result"] == "ACCEPTED"
    assert result_at(emsp, "/ocpi/emsp/2.3.0/commands/STOP_SESSION/s1")["result"] == "ACCEPTED"
    assert [r.payload["transaction_id"] for r in sim.received if r.action == STOP[version]] == [
        int(session.transaction_id) if version == "1.6" else session.transaction_id
    ]
    wait_for(lambda: ChargingSession.objects.get(pk=session.pk).stopped_at is not None)

    # The eMSP matches what it is pushed by its reference: the Session, then the CDR.
    deliver(party_id=party.pk)  # unless the deliverer queued on commit is at it already
    session_path = f"/ocpi/emsp/2.3.0/sessions/NL/CBK/{session.pk}"

    def pushed(method, path):
        return [b for m, p, b in emsp.pushes if (m, p) == (method, path)]

    wait_for(lambda: [b for b in pushed("PUT", session_path) if b["status"] == "COMPLETED"])
    assert {(b["authorization_reference"], b["auth_method"]) for b in pushed("PUT", session_path)
            } == {("EMSP-REF-1", "COMMAND")}  # fmt: skip
    [cdr] = wait_for(lambda: pushed("POST", "/ocpi/emsp/2.3.0/cdrs"))
    assert (cdr["session_id"], cdr["authorization_reference"]) == (str(session.pk), "EMSP-REF-1")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_start_the_charger_refuses_on_an_occupied_evse_gives_evse_occupied(
    stack, client, emsp, party, version
):
    cp = charger(version)
    sim = stack.charger(cp)
    assert post(client, party, "START_SESSION", start_body(emsp, cp, "first")).status_code == 200
    assert result_at(emsp, "/ocpi/emsp/2.3.0/commands/START_SESSION/first")["result"] == "ACCEPTED"
    wait_for(lambda: ChargingSession.objects.filter(stopped_at__isnull=True).exists())
    wait_for(lambda: sim.sessions)  # the charger has it open too

    second = post(client, party, "START_SESSION", start_body(emsp, cp, "second", uid="04AA0002"))
    assert second.json()["data"]["result"] == "ACCEPTED"  # sent on to the charger
    result = result_at(emsp, "/ocpi/emsp/2.3.0/commands/START_SESSION/second")
    assert result["result"] == "EVSE_OCCUPIED" and "occupied" in result["message"][0]["text"]
    assert len([r for r in sim.received if r.action == START[version]]) == 2  # it said Rejected


def test_a_long_token_started_on_a_16_charger_keeps_its_reference_and_whole_uid(
    stack, client, emsp, party
):
    # OCPP 1.6 carries at most 20 characters of an id tag; an app token is often longer.
    uid = "APP-0123456789-ABCDEFGHIJKLM"
    cp = charger("1.6")
    sim = stack.charger(cp)
    body = start_body(emsp, cp, "long", uid=uid, authorization_reference="LONG-REF")
    assert post(client, party, "START_SESSION", body).json()["data"]["result"] == "ACCEPTED"
    assert result_at(emsp, "/ocpi/emsp/2.3.0/commands/START_SESSION/long")["result"] == "ACCEPTED"
    assert [r.payload["id_tag"] for r in sim.received if r.action == START["1.6"]] == [uid[:20]]

    session = wait_for(lambda: ChargingSession.objects.filter(authorization_reference="LONG-REF")
                       .first())  # fmt: skip
    assert session.id_tag == uid
    [listed] = client.get("/ocpi/cpo/2.3.0/sessions", HTTP_AUTHORIZATION=party.auth).json()["data"]
    assert (listed["authorization_reference"], listed["cdr_token"]["uid"]) == ("LONG-REF", uid)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_start_session_on_a_booked_evse_only_for_the_booking(stack, client, emsp, party, version):
    cp = charger(version)
    sim = stack.charger(cp)
    reserve = {
        "response_url": emsp.server.url_for("/ocpi/emsp/2.3.0/commands/RESERVE_NOW/r1"),
        "token": token("04BOOKED"), "reservation_id": "RSV-1", "location_id": cp.location.ocpi_id,
        "evse_uid": "EVSE-RC1", "authorization_reference": "BOOKING-REF",
        "expiry_date": (timezone.now() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }  # fmt: skip
    assert post(client, party, "RESERVE_NOW", reserve).json()["data"]["result"] == "ACCEPTED"
    wait_for(lambda: sim.reservations)  # held at the charger for 04BOOKED

    other = post(client, party, "START_SESSION", start_body(emsp, cp, "s-other", uid="04OTHER"))
    data = other.json()["data"]
    assert data["result"] == "REJECTED" and "another driver" in data["message"][0]["text"]
    assert not [r for r in sim.received if r.action == START[version]]

    # Another token of the same eMSP, naming the booking's reference: started for the booking.
    body = start_body(emsp, cp, "s-ref", uid="04APP", authorization_reference="booking-ref")
    assert post(client, party, "START_SESSION", body).json()["data"]["result"] == "ACCEPTED"
    assert result_at(emsp, "/ocpi/emsp/2.3.0/commands/START_SESSION/s-ref")["result"] == "ACCEPTED"
    session = wait_for(lambda: ChargingSession.objects.filter(booking_id__isnull=False).first())
    assert session.id_tag == "04BOOKED" and session.authorization_reference == "booking-ref"
    booking = Command.objects.get(type="RESERVE_NOW").booking
    booking.refresh_from_db()
    assert booking.status == Status.FULFILLED and session.booking_id == booking.pk


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_charger_refuses_a_remote_start_for_another_token_on_a_reserved_connector(
    stack, version
):
    from chargers import gateway

    cp = charger(version)
    sim = stack.charger(cp)
    reserve = gateway.reserve_now_command(
        charge_point_id=cp.identity, reservation_id=7, evse_id=1,
        expires_at=timezone.now() + timedelta(minutes=30), id_tag="04HOLDER",
    )  # fmt: skip
    assert gateway.send_one(reserve).status == "Accepted"
    other = gateway.remote_start_command(
        charge_point_id=cp.identity, remote_start_id=1, id_tag="04OTHER", evse_id=1
    )
    assert gateway.send_one(other).status == "Rejected"
    holder = gateway.remote_start_command(
        charge_point_id=cp.identity, remote_start_id=2, id_tag="04holder", evse_id=1
    )
    assert gateway.send_one(holder).status == "Accepted"
    session = wait_for(lambda: ChargingSession.objects.filter(charge_point=cp).first())
    assert session.id_tag == "04holder" and session.reservation_id == 7
    wait_for(lambda: not sim.reservations)  # the session used the reservation


def test_stop_session_of_an_unknown_or_another_partys_session(stack, client, emsp, party):
    cp = charger("1.6")
    sim = stack.charger(cp)
    other_party = PartyFactory(country_code="FR", party_id="OTH")
    theirs = ChargingSessionFactory(evse=cp.evses.get(), id_tag="04THEIRS")
    TokenFactory(owner=other_party, uid="04THEIRS")
    url = emsp.server.url_for("/ocpi/emsp/2.3.0/commands/STOP_SESSION/x")
    for session_id in (str(theirs.pk), "999999", "not-a-number"):
        stop = {"response_url": url, "session_id": session_id}
        data = post(client, party, "STOP_SESSION", stop).json()["data"]
        assert data["result"] == "UNKNOWN_SESSION", session_id
    assert not Command.objects.exists()
    assert not [r for r in sim.received if r.action == "RemoteStopTransaction"]
    # The owner may stop it.
    owner = post(client, other_party, "STOP_SESSION", {"response_url": url,
                                                        "session_id": str(theirs.pk)})  # fmt: skip
    assert owner.json()["data"]["result"] == "ACCEPTED"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_unlock_connector_reaches_the_charger(stack, client, emsp, party, version):
    cp = charger(version)
    sim = stack.charger(cp)
    url = emsp.server.url_for("/ocpi/emsp/2.3.0/commands/UNLOCK_CONNECTOR/u1")
    body = {"response_url": url, "location_id": cp.location.ocpi_id, "evse_uid": "evse-rc1",
            "connector_id": "1"}  # fmt: skip
    assert post(client, party, "UNLOCK_CONNECTOR", body).json()["data"]["result"] == "ACCEPTED"
    assert result_at(emsp, "/ocpi/emsp/2.3.0/commands/UNLOCK_CONNECTOR/u1")["result"] == "ACCEPTED"
    unlocks = [r.payload for r in sim.received if r.action == "UnlockConnector"]
    expected = {"connector_id": 1} if version == "1.6" else {"evse_id": 1, "connector_id": 1}
    assert unlocks == [expected]


def test_a_charger_that_does_not_answer_in_time_gives_timeout(stack, client, emsp, party):
    cp = charger("2.0.1")
    stack.charger(cp, answer_delay=5)  # the csms waits 3 s (tests' CSMS_COMMAND_TIMEOUT)
    url = emsp.server.url_for("/ocpi/emsp/2.3.0/commands/UNLOCK_CONNECTOR/t")
    body = {"response_url": url, "location_id": cp.location.ocpi_id, "evse_uid": "EVSE-RC1",
            "connector_id": "1"}  # fmt: skip
    assert post(client, party, "UNLOCK_CONNECTOR", body).json()["data"]["result"] == "ACCEPTED"
    result = result_at(emsp, "/ocpi/emsp/2.3.0/commands/UNLOCK_CONNECTOR/t")
    assert result["result"] == "TIMEOUT"


def test_a_charger_offline_gives_failed(stack, client, emsp, party):
    cp = charger("1.6")  # never connected
    assert (
        post(client, party, "START_SESSION", start_body(emsp, cp, "off")).json()["data"]["result"]
        == "ACCEPTED"
    )
    result = result_at(emsp, "/ocpi/emsp/2.3.0/commands/START_SESSION/off")
    assert result["result"] == "FAILED" and "offline" in result["message"][0]["text"]
