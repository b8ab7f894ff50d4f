"""The credentials handshake over real HTTP: our server (live_server) and a second real server
playing the eMSP (pytest-httpserver), both directions, then bookings and pushes between them."""

import base64
import io
import socket
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from ocpi.models import Party
from ocpi.push import deliver, sweep
from tests.locations.factories import BookingPolicyFactory, EVSEFactory, LocationFactory
from tests.ocpi.emsp import FakeEmsp
from tests.ocpi.partner import Partner

pytestmark = pytest.mark.django_db(transaction=True)


def token_header(token: str) -> dict:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def ours(live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server.url + "/ocpi"


@pytest.fixture
def emsp_server(httpserver):
    return FakeEmsp(httpserver).install()


def add_party(*args) -> tuple[str, str]:
    out = io.StringIO()
    call_command("ocpi_add_party", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    return lines[-2], lines[-1]


def register(ours, emsp_server) -> str:
    """The eMSP's side of the handshake with token A; returns the token C we issued."""
    versions_url, token_a = add_party("DE", "XMS", "--role", "EMSP", "--name", "Fake eMSP")
    assert versions_url == f"{ours}/versions"
    versions = httpx.get(versions_url, headers=token_header(token_a)).json()["data"]
    details_url = next(v["url"] for v in versions if v["version"] == "2.3.0")
    details = httpx.get(details_url, headers=token_header(token_a)).json()["data"]
    credentials_url = next(
        e["url"] for e in details["endpoints"] if e["identifier"] == "credentials"
    )
    response = httpx.post(credentials_url, json=emsp_server.credentials(),
                          headers=token_header(token_a))  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status_code"] == 1000
    return body["data"]["token"], token_a


def test_credentials_add_party_prints_versions_url_then_token_a(ours):
    versions_url, token_a = add_party("DE", "ABC", "--role", "EMSP")
    assert versions_url == f"{ours}/versions"
    party = Party.objects.get(country_code="DE", party_id="ABC")
    assert party.state == Party.State.PENDING
    assert token_a not in party.token_a_digest and len(party.token_a_digest) == 64


def test_credentials_full_handshake_then_token_a_is_void(ours, emsp_server):
    token_c, token_a = register(ours, emsp_server)
    party = Party.objects.get(country_code="DE", party_id="XMS")
    assert party.state == Party.State.REGISTERED
    assert party.token_b == "emsp-token-b"
    assert party.version == "2.3.0"
    assert party.endpoint("Booking") == emsp_server.bookings_url
    assert token_c not in (party.token_c_digest, party.token_a_digest)
    # We called their versions with their token B before answering.
    assert any(req.path == "/ocpi/2.3.0" for req, _ in emsp_server.server.log)
    assert httpx.get(f"{ours}/versions", headers=token_header(token_a)).status_code == 401
    locations = httpx.get(f"{ours}/cpo/2.3.0/locations", headers=token_header(token_c))
    assert locations.status_code == 200
    again = httpx.post(f"{ours}/2.3.0/credentials", json=emsp_server.credentials(),
                       headers=token_header(token_c))  # fmt: skip
    assert again.status_code == 405


def test_credentials_put_rotates_get_reads_delete_unregisters(ours, emsp_server):
    token_c, _ = register(ours, emsp_server)
    emsp_server.accepted_tokens.add("emsp-token-b2")
    put = httpx.put(f"{ours}/2.3.0/credentials", json=emsp_server.credentials("emsp-token-b2"),
                    headers=token_header(token_c))  # fmt: skip
    assert put.json()["status_code"] == 1000
    new_c = put.json()["data"]["token"]
    assert new_c != token_c
    assert Party.objects.get(party_id="XMS").token_b == "emsp-token-b2"
    assert httpx.get(f"{ours}/versions", headers=token_header(token_c)).status_code == 401
    got = httpx.get(f"{ours}/2.3.0/credentials", headers=token_header(new_c)).json()["data"]
    assert got["token"] == new_c and got["url"] == f"{ours}/versions"
    assert got["roles"][0]["role"] == "CPO" and got["roles"][0]["party_id"] == "CBK"
    deleted = httpx.delete(f"{ours}/2.3.0/credentials", headers=token_header(new_c))
    assert deleted.json()["status_code"] == 1000
    assert Party.objects.get(party_id="XMS").state == Party.State.UNREGISTERED
    assert httpx.get(f"{ours}/versions", headers=token_header(new_c)).status_code == 401


def test_credentials_post_when_their_versions_fail_is_3001(ours, emsp_server):
    _, token_a = add_party("DE", "XMS")
    body = emsp_server.credentials("a-token-they-will-refuse")
    response = httpx.post(f"{ours}/2.3.0/credentials", json=body, headers=token_header(token_a))
    assert response.json()["status_code"] == 3001
    assert Party.objects.get(party_id="XMS").state == Party.State.PENDING


def test_credentials_post_with_foreign_role_is_2001(ours, emsp_server):
    _, token_a = add_party("DE", "XMS")
    body = emsp_server.credentials()
    body["roles"][0]["party_id"] = "ZZZ"
    response = httpx.post(f"{ours}/2.3.0/credentials", json=body, headers=token_header(token_a))
    assert response.json()["status_code"] == 2001


def test_credentials_register_command_does_the_handshake_from_our_side(ours, httpserver):
    emsp = FakeEmsp(httpserver, token_b="their-token-a").install()
    seen_callback = []

    def credentials_handler(request):
        import json

        from werkzeug import Response

        body = request.get_json()
        # As a real eMSP would: call our versions with the token we were given, then answer.
        callback = httpx.get(body["url"], headers=token_header(body["token"]))
        seen_callback.append(callback.status_code)
        data = {"token": "their-token-c", "url": emsp.versions_url,
                "roles": [{"role": "EMSP", "party_id": "XMS", "country_code": "DE",
                           "business_details": {"name": "Fake eMSP"}}]}  # fmt: skip
        return Response(json.dumps({"data": data, "status_code": 1000,
                                    "timestamp": "2026-01-01T00:00:00Z"}),
                        content_type="application/json")  # fmt: skip

    httpserver.expect_request("/ocpi/2.3.0/credentials", method="POST").respond_with_handler(
        credentials_handler
    )
    out = io.StringIO()
    call_command("ocpi_register", emsp.versions_url, "their-token-a", stdout=out)
    assert seen_callback == [200]
    party = Party.objects.get(country_code="DE", party_id="XMS")
    assert party.state == Party.State.REGISTERED and party.token_b == "their-token-c"
    assert party.endpoint("booking") == emsp.bookings_url
    assert "Registered with DE*XMS" in out.getvalue()


@pytest.fixture
def bookable_site(db):
    location = LocationFactory(ocpi_id="LOC-AMS-001")
    BookingPolicyFactory(location=location, change_until_minutes=15, cancel_until_minutes=15)
    EVSEFactory(charge_point__location=location, uid="EVSE-1")
    return location


def test_credentials_then_bookings_over_http_pushed_in_order(ours, emsp_server, bookable_site):
    token_c, _ = register(ours, emsp_server)
    headers = token_header(token_c)
    day = timezone.now().date() + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)

    def z(m):
        return m.strftime("%Y-%m-%dT%H:%M:%SZ")

    body = {"country_code": "DE", "party_id": "XMS", "request_id": "REQ-HTTP-1",
            "location_id": "LOC-AMS-001", "evse_uid": "EVSE-1",
            "period": {"start_from": z(start), "end_before": z(start + timedelta(hours=1))},
            "authorization_reference": "AUTH-1"}  # fmt: skip
    created = httpx.post(f"{ours}/cpo/2.3.0/bookings", json=body, headers=headers)
    assert created.status_code == 201
    booking_id = created.json()["data"]["id"]
    party = Party.objects.get(party_id="XMS")
    deliver(party_id=party.pk) if party.pk in sweep().parties else None

    moved = {**body, "period": {"start_from": z(start + timedelta(hours=2)),
                                "end_before": z(start + timedelta(hours=3))}}  # fmt: skip
    assert httpx.post(f"{ours}/cpo/2.3.0/bookings", json=moved, headers=headers).status_code == 200
    deliver(party_id=party.pk) if party.pk in sweep().parties else None

    cancel = {**moved, "canceled": {"cancellation_reason": "TRAFFIC", "who_canceled": "EMSP"}}
    canceled = httpx.post(f"{ours}/cpo/2.3.0/bookings", json=cancel, headers=headers).json()
    assert canceled["data"]["reservation_status"] == "CANCELED"
    deliver(party_id=party.pk) if party.pk in sweep().parties else None

    listed = httpx.get(f"{ours}/cpo/2.3.0/bookings", headers=headers).json()["data"]
    assert [b["id"] for b in listed] == [booking_id]

    pushes = emsp_server.booking_pushes()
    assert {p for p, _ in pushes} == {f"/ocpi/emsp/2.3.0/bookings/NL/CBK/{booking_id}"}
    states = [(b["reservation_status"], b["period"]["start_from"], len(b["booking_requests"]))
              for _, b in pushes]  # fmt: skip
    assert states == [
        ("RESERVED", z(start), 1),
        ("RESERVED", z(start + timedelta(hours=2)), 2),
        ("CANCELED", z(start + timedelta(hours=2)), 3),
    ]
    locations = emsp_server.location_pushes()
    assert locations and all(p.endswith("/booking_locations/EVSE-1") for p, _ in locations)
    last_slots = [s for c in locations[-1][1]["calendars"] for s in c["available_timeslots"]]
    assert any(s["start_from"] <= z(start) and s["end_before"] >= z(start + timedelta(hours=3))
               for s in last_slots)  # fmt: skip
    put_request = next(req for req, _ in emsp_server.server.log if "/bookings/NL/CBK/" in req.path)
    assert put_request.headers["OCPI-to-party-id"] == "XMS"
    assert put_request.headers["OCPI-from-country-code"] == "NL"
    assert put_request.headers["X-Request-ID"]


def test_credentials_two_emsps_see_and_receive_only_their_own_bookings(
    ours, httpserver, bookable_site
):
    from pytest_httpserver import HTTPServer

    second_server = HTTPServer(host="127.0.0.1", port=0)
    second_server.start()
    try:
        first = FakeEmsp(httpserver, party_id="XMS", token_b="first-b").install()
        second = FakeEmsp(second_server, party_id="YMS", token_b="second-b").install()
        tokens = {}
        for emsp in (first, second):
            _, token_a = add_party("DE", emsp.party_id)
            reply = httpx.post(f"{ours}/2.3.0/credentials", json=emsp.credentials(),
                               headers=token_header(token_a)).json()  # fmt: skip
            tokens[emsp.party_id] = token_header(reply["data"]["token"])
        day = timezone.now().date() + timedelta(days=1)
        start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        ids = {}
        for n, emsp in enumerate((first, second)):
            slot = start + timedelta(hours=2 * n)
            body = {"country_code": "DE", "party_id": emsp.party_id, "request_id": "SAME-ID",
                    "location_id": "LOC-AMS-001",
                    "period": {"start_from": slot.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "end_before": (slot + timedelta(hours=1)).strftime(
                                   "%Y-%m-%dT%H:%M:%SZ")},
                    "authorization_reference": f"AUTH-{n}"}  # fmt: skip
            created = httpx.post(f"{ours}/cpo/2.3.0/bookings", json=body,
                                 headers=tokens[emsp.party_id]).json()  # fmt: skip
            assert created["data"]["reservation_status"] == "RESERVED"
            ids[emsp.party_id] = created["data"]["id"]
        for own, other in (("XMS", "YMS"), ("YMS", "XMS")):
            listed = httpx.get(f"{ours}/cpo/2.3.0/bookings", headers=tokens[own]).json()["data"]
            assert [b["id"] for b in listed] == [ids[own]]
            hidden = httpx.get(f"{ours}/cpo/2.3.0/bookings/{ids[other]}", headers=tokens[own])
            assert hidden.status_code == 404 and "AUTH-" not in hidden.text
            assert "data" not in hidden.json()
        # A cancel from the other party with the same request_id touches only its own booking.
        cancel = {"country_code": "DE", "party_id": "YMS", "request_id": "SAME-ID",
                  "canceled": {"cancellation_reason": "TRAFFIC",
                               "who_canceled": "EMSP"}}  # fmt: skip
        httpx.post(f"{ours}/cpo/2.3.0/bookings", json=cancel, headers=tokens["YMS"])
        mine = httpx.get(f"{ours}/cpo/2.3.0/bookings", headers=tokens["XMS"]).json()["data"]
        assert mine[0]["reservation_status"] == "RESERVED"
        due = sweep()
        for party in Party.objects.filter(pk__in=due.parties):
            deliver(party_id=party.pk)
        assert {p.rsplit("/", 1)[1] for p, _ in first.booking_pushes()} == {ids["XMS"]}
        assert {p.rsplit("/", 1)[1] for p, _ in second.booking_pushes()} == {ids["YMS"]}
        # Availability is everyone's business: both receive the BookingLocation.
        assert first.location_pushes() and second.location_pushes()
    finally:
        second_server.clear()
        second_server.stop()


def test_credentials_post_to_a_trickling_partner_ends_at_the_deadline(ours, settings):
    settings.OUTBOUND_HTTP_DEADLINE_SECONDS = 1
    _, token_a = add_party("DE", "XMS")
    answers = []
    with Partner(trickle_seconds=0.3) as partner:
        body = credentials_at(f"{partner.url}/ocpi/versions")
        post = threading.Thread(target=lambda: answers.append(httpx.post(
            f"{ours}/2.3.0/credentials", json=body, headers=token_header(token_a), timeout=30
        )))  # fmt: skip
        post.start()
        # Meanwhile the web answers others.
        assert httpx.get(f"{ours}/versions", headers=token_header(token_a)).status_code == 200
        post.join(30)
    assert answers[0].json()["status_code"] == 3001
    assert Party.objects.get(party_id="XMS").state == Party.State.PENDING


def credentials_at(url: str) -> dict:
    return {"token": "their-token-b", "url": url,
            "roles": [{"role": "EMSP", "party_id": "XMS", "country_code": "DE",
                       "business_details": {"name": "Fake eMSP"}}]}  # fmt: skip


def _credentials_message(ours, token_a, url) -> tuple[int, str]:
    body = httpx.post(f"{ours}/2.3.0/credentials", json=credentials_at(url),
                      headers=token_header(token_a)).json()  # fmt: skip
    return body["status_code"], body["status_message"].replace(url, "URL")


@pytest.mark.parametrize("allow_private", [True, False])
def test_credentials_post_answers_alike_for_open_and_closed_ports(ours, settings, allow_private):
    settings.OUTBOUND_ALLOW_PRIVATE_URLS = allow_private
    _, token_a = add_party("DE", "XMS")
    with Partner() as partner:  # answers 200 with an OCPI envelope, but no versions
        open_port = _credentials_message(ours, token_a, f"{partner.url}/ocpi/versions")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/ocpi/versions"
    closed_port = _credentials_message(ours, token_a, closed)
    assert open_port == closed_port
    assert open_port[0] == 3001
    assert partner.received == ([("GET", "/ocpi/versions", None)] if allow_private else [])
