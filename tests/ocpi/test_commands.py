"""Commands module, Receiver interface: RESERVE_NOW / CANCEL_RESERVATION become bookings, and
the CommandResult goes to the eMSP's response_url once the charger's outcome is known."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, ChargerReservation, Status
from bookings.services import Actor, booking_record_charger_state
from ocpi.models import Command
from ocpi.services import command_result_deliver
from tests.ocpi.emsp import FakeEmsp
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db

BASE = "/ocpi/cpo/2.3.0/commands"


@pytest.fixture
def emsp_server(httpserver):
    return FakeEmsp(httpserver).install()


@pytest.fixture
def party(emsp_server):
    return PartyFactory(country_code="DE", party_id="XMS", token_b=emsp_server.token_b)


def reserve_body(emsp_server, reservation_id="RSV-1", minutes=30, **extra):
    body = {
        "response_url": emsp_server.server.url_for(
            f"/ocpi/emsp/2.3.0/commands/RESERVE_NOW/{reservation_id}"
        ),
        "token": {"country_code": "DE", "party_id": "XMS", "uid": "APP-7781", "type": "APP_USER",
                  "contract_id": "DE-XMS-C12345678-9", "issuer": "Fake eMSP", "valid": True,
                  "whitelist": "NEVER", "last_updated": "2026-01-01T00:00:00Z"},
        "expiry_date": (timezone.now() + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reservation_id": reservation_id,
        "location_id": "LOC-AMS-001",
        "evse_uid": "EVSE-1",
    }  # fmt: skip
    body.update(extra)
    return body


def command(client, party, name, body):
    return client.post(f"{BASE}/{name}", data=json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=party.auth)  # fmt: skip


def test_command_reserve_now_makes_a_booking_and_answers_accepted(client, party, emsp_server, site):
    response = command(client, party, "RESERVE_NOW", reserve_body(emsp_server))
    data = response.json()["data"]
    assert data["result"] == "ACCEPTED" and data["timeout"] == 30
    booking = Booking.objects.get()
    assert booking.status == Status.RESERVED and booking.channel == Booking.Channel.COMMAND
    assert booking.evse.uid == "EVSE-1" and booking.tokens.get().uid == "APP-7781"
    assert booking.period.lower <= timezone.now() < booking.period.upper
    listed = client.get("/ocpi/cpo/2.3.0/bookings", HTTP_AUTHORIZATION=party.auth).json()["data"]
    assert [b["id"] for b in listed] == [str(booking.uid)]


def test_command_result_follows_the_charger(client, party, emsp_server, site):
    command(client, party, "RESERVE_NOW", reserve_body(emsp_server))
    cmd = Command.objects.get()
    assert command_result_deliver(command_id=cmd.pk) == "wait"
    booking_record_charger_state(
        booking=cmd.booking, state=ChargerReservation.HELD, actor=Actor.charger("CP-1")
    )
    assert command_result_deliver(command_id=cmd.pk) == "sent"
    method, path, body = emsp_server.pushes[-1]
    assert (method, path) == ("POST", "/ocpi/emsp/2.3.0/commands/RESERVE_NOW/RSV-1")
    assert body["result"] == "ACCEPTED"
    assert command_result_deliver(command_id=cmd.pk) == "sent"
    assert len(emsp_server.pushes) == 1


def test_command_result_times_out_without_charger_answer(client, party, emsp_server, site):
    command(client, party, "RESERVE_NOW", reserve_body(emsp_server))
    cmd = Command.objects.get()
    later = timezone.now() + timedelta(seconds=31)
    assert command_result_deliver(command_id=cmd.pk, now=later) == "sent"
    assert emsp_server.pushes[-1][2]["result"] == "TIMEOUT"


def test_command_reserve_now_on_taken_evse_is_rejected(client, party, emsp_server, site):
    command(client, party, "RESERVE_NOW", reserve_body(emsp_server, "RSV-1"))
    response = command(client, party, "RESERVE_NOW", reserve_body(emsp_server, "RSV-2"))
    assert response.json()["data"]["result"] == "REJECTED"
    assert Booking.objects.count() == 1


def test_command_reserve_now_same_id_replaces(client, party, emsp_server, site):
    command(client, party, "RESERVE_NOW", reserve_body(emsp_server, minutes=30))
    response = command(client, party, "RESERVE_NOW", reserve_body(emsp_server, minutes=60))
    assert response.json()["data"]["result"] == "ACCEPTED"
    statuses = sorted(Booking.objects.values_list("status", flat=True))
    assert statuses == ["CANCELED", "RESERVED"]


def test_command_cancel_reservation_cancels_the_booking(client, party, emsp_server, site):
    command(client, party, "RESERVE_NOW", reserve_body(emsp_server))
    body = {"response_url": emsp_server.server.url_for("/ocpi/emsp/2.3.0/commands/CANCEL/1"),
            "reservation_id": "RSV-1"}  # fmt: skip
    assert command(client, party, "CANCEL_RESERVATION", body).json()["data"]["result"] == "ACCEPTED"
    assert Booking.objects.get().status == Status.CANCELED
    cancel = Command.objects.get(type="CANCEL_RESERVATION")
    assert command_result_deliver(command_id=cancel.pk) == "sent"
    assert emsp_server.pushes[-1][2]["result"] == "ACCEPTED"


def test_command_cancel_unknown_reservation(client, party, emsp_server, site):
    body = {"response_url": emsp_server.server.url_for("/ocpi/emsp/2.3.0/commands/CANCEL/2"),
            "reservation_id": "NOPE"}  # fmt: skip
    command(client, party, "CANCEL_RESERVATION", body)
    cancel = Command.objects.get()
    command_result_deliver(command_id=cancel.pk)
    assert emsp_server.pushes[-1][2]["result"] == "UNKNOWN_RESERVATION"


def test_command_reserve_now_foreign_token_rejected_unknown_location_2003(
    client, party, emsp_server, site
):
    body = reserve_body(emsp_server)
    body["token"]["party_id"] = "ZZZ"
    assert command(client, party, "RESERVE_NOW", body).json()["data"]["result"] == "REJECTED"
    del body["evse_uid"]  # any EVSE: refused for the token, not for want of a free EVSE
    data = command(client, party, "RESERVE_NOW", body).json()["data"]
    assert data["result"] == "REJECTED" and "own tokens" in data["message"][0]["text"]
    unknown = command(client, party, "RESERVE_NOW", reserve_body(emsp_server, location_id="NOPE"))
    assert unknown.json()["status_code"] == 2003
    assert not Booking.objects.exists()


def test_command_unsupported_and_invalid(client, party, emsp_server, site):
    other = command(client, party, "SET_CHARGING_PROFILE", {})
    assert other.json()["data"]["result"] == "NOT_SUPPORTED"
    invalid = command(client, party, "RESERVE_NOW", reserve_body(emsp_server, expiry_date=5))
    assert (
        invalid.json()["status_code"] == 2001 and "expiry_date" in invalid.json()["status_message"]
    )


def start_body(emsp_server, **extra):
    body = {
        "response_url": emsp_server.server.url_for("/ocpi/emsp/2.3.0/commands/START_SESSION/1"),
        "token": reserve_body(emsp_server)["token"],
        "location_id": "LOC-AMS-001",
        "evse_uid": "EVSE-1",
    }
    body.update(extra)
    return body


def test_remote_commands_bad_input_answers_ocpi_status_codes(client, party, emsp_server, site):
    url = emsp_server.server.url_for("/ocpi/emsp/2.3.0/commands/X/1")
    cases = [
        ("START_SESSION", {**start_body(emsp_server), "token": None}, 2001, "token"),
        ("START_SESSION", start_body(emsp_server, evse_uid=None, connector_id="1"), 2001,
         "evse_uid"),
        ("START_SESSION", start_body(emsp_server, response_url="not a url"), 2001, "response_url"),
        ("START_SESSION", start_body(emsp_server, location_id="NOPE"), 2003, "NOPE"),
        ("STOP_SESSION", {"response_url": url, "session_id": "9" * 37}, 2001, "session_id"),
        ("STOP_SESSION", {"response_url": url}, 2001, "session_id"),
        ("UNLOCK_CONNECTOR", {"response_url": url, "location_id": "LOC-AMS-001",
                              "evse_uid": "EVSE-1"}, 2001, "connector_id"),
        ("UNLOCK_CONNECTOR", {"response_url": url, "location_id": "NOPE", "evse_uid": "EVSE-1",
                              "connector_id": "1"}, 2003, "NOPE"),
    ]  # fmt: skip
    for name, body, status_code, named in cases:
        response = command(client, party, name, body)
        assert response.status_code < 500
        assert response.json()["status_code"] == status_code, (name, body)
        assert named in response.json()["status_message"]
    assert not Command.objects.exists()


def test_remote_commands_need_the_evse_capability(client, party, emsp_server, site):
    from chargers.models import RemoteCommand
    from locations.models import EVSE, Capability

    evse = EVSE.objects.get(uid="EVSE-1")  # RESERVABLE and RFID_READER only
    start = command(client, party, "START_SESSION", start_body(emsp_server)).json()["data"]
    assert start["result"] == "NOT_SUPPORTED" and "remotely" in start["message"][0]["text"]
    unlock = {"response_url": emsp_server.server.url_for("/ocpi/emsp/2.3.0/commands/U/1"),
              "location_id": "LOC-AMS-001", "evse_uid": "EVSE-1", "connector_id": "1"}  # fmt: skip
    assert command(client, party, "UNLOCK_CONNECTOR", unlock).json()["data"]["result"] == (
        "NOT_SUPPORTED"
    )
    assert not RemoteCommand.objects.exists()

    evse.capabilities = [*evse.capabilities, Capability.REMOTE_START_STOP_CAPABLE,
                         Capability.START_SESSION_CONNECTOR_REQUIRED]  # fmt: skip
    evse.save()
    start = command(client, party, "START_SESSION", start_body(emsp_server)).json()["data"]
    assert start["result"] == "REJECTED" and "connector_id" in start["message"][0]["text"]
    body = start_body(emsp_server, connector_id="1")
    assert command(client, party, "START_SESSION", body).json()["data"]["result"] == "ACCEPTED"
    assert RemoteCommand.objects.get().id_tag == "APP-7781"


def test_start_session_with_another_partys_token_is_rejected(client, party, emsp_server, site):
    from chargers.models import RemoteCommand
    from locations.models import EVSE, Capability

    EVSE.objects.filter(uid="EVSE-1").update(capabilities=[Capability.REMOTE_START_STOP_CAPABLE])
    body = start_body(emsp_server)
    body["token"]["party_id"] = "ZZZ"
    data = command(client, party, "START_SESSION", body).json()["data"]
    assert data["result"] == "REJECTED" and "own tokens" in data["message"][0]["text"]
    assert not RemoteCommand.objects.exists()


def test_booking_terms_offer_remote_auth_only_on_evses_that_start_remotely(client, party, site):
    from locations.models import EVSE, Capability

    EVSE.objects.filter(uid="EVSE-2").update(
        capabilities=[Capability.RESERVABLE, Capability.REMOTE_START_STOP_CAPABLE]
    )
    response = client.get("/ocpi/cpo/2.3.0/bookings/booking_locations",
                          HTTP_AUTHORIZATION=party.auth)  # fmt: skip
    terms = {bl["evse_uid"]: bl["booking_terms"][0] for bl in response.json()["data"]}
    assert terms["EVSE-1"]["remote_auth_supported"] is False
    assert terms["EVSE-2"]["remote_auth_supported"] is True


def test_a_remote_command_no_worker_sent_in_time_is_closed_as_failed(
    client, party, emsp_server, site
):
    from datetime import timedelta

    from chargers.models import RemoteCommand
    from chargers.tasks import sweep_remote_commands_task
    from locations.models import EVSE, Capability

    EVSE.objects.filter(uid="EVSE-1").update(capabilities=[Capability.REMOTE_START_STOP_CAPABLE])
    assert (
        command(client, party, "START_SESSION", start_body(emsp_server)).json()["data"]["result"]
        == "ACCEPTED"
    )
    # Its task was lost (a broker outage at commit) and the sweep finds it too late to send.
    RemoteCommand.objects.update(created_at=timezone.now() - timedelta(seconds=60))
    sweep_remote_commands_task()
    remote = RemoteCommand.objects.get()
    assert (remote.reply, remote.sent_at) == ("NotSent", None)
    assert command_result_deliver(command_id=Command.objects.get().pk) == "sent"
    _, path, body = emsp_server.pushes[-1]
    assert path == "/ocpi/emsp/2.3.0/commands/START_SESSION/1" and body["result"] == "FAILED"
