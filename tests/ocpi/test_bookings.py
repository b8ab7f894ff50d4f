"""Bookings module, Sender interface: BookingRequests (create, change, cancel), lists, isolation,
booking_locations with calendars from the availability engine."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, BookingRequest, Status
from locations.models import EVSE, BookingPolicy, ExceptionalPeriod
from tests.bookings.factories import BookingFactory
from tests.locations.factories import EVSEFactory, ExceptionalPeriodFactory, LocationFactory

pytestmark = pytest.mark.django_db

BOOKINGS = "/ocpi/cpo/2.3.0/bookings"
BOOKING_LOCATIONS = "/ocpi/cpo/2.3.0/bookings/booking_locations"


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def request_body(start, *, hours=1, request_id="REQ-1", evse_uid="EVSE-1", party=("DE", "XMS"),
                 **extra):  # fmt: skip
    body = {
        "country_code": party[0],
        "party_id": party[1],
        "request_id": request_id,
        "location_id": "LOC-AMS-001",
        "evse_uid": evse_uid,
        "tokens": [{"country_code": party[0], "party_id": party[1], "uid": "04A1B2C3D4E5F6",
                    "type": "RFID", "contract_id": "DE-XMS-C12345678-9"}],
        "period": {"start_from": z(start), "end_before": z(start + timedelta(hours=hours))},
        "authorization_reference": "AUTH-5c4b3a21",
        "power_required": 11,
    }  # fmt: skip
    body.update(extra)
    return body


def post(client, party, body):
    return client.post(BOOKINGS, data=json.dumps(body) if not isinstance(body, str) else body,
                        content_type="application/json", HTTP_AUTHORIZATION=party.auth)  # fmt: skip


def test_booking_post_creates_reserved_booking(client, emsp, site, tomorrow_10):
    response = post(client, emsp, request_body(tomorrow_10))
    assert response.status_code == 201
    body = response.json()
    assert body["status_code"] == 1000
    data = body["data"]
    assert data["reservation_status"] == "RESERVED"
    assert data["country_code"] == "NL" and data["party_id"] == "CBK"
    assert data["request_id"] == "REQ-1" and data["evse_uid"] == "EVSE-1"
    assert data["period"] == {"start_from": z(tomorrow_10),
                              "end_before": z(tomorrow_10 + timedelta(hours=1))}  # fmt: skip
    assert [r["request_status"] for r in data["booking_requests"]] == ["ACCEPTED"]
    assert data["booking_requests"][0]["booking_request"]["request_id"] == "REQ-1"
    assert data["booking_tokens"][0]["uid"] == "04A1B2C3D4E5F6"
    assert data["booking_terms"]["cancel_until_minutes"] == 15
    assert data["last_updated"].endswith("Z")
    booking = Booking.objects.get(uid=data["id"])
    assert booking.status == Status.RESERVED
    assert (booking.emsp_country_code, booking.emsp_party_id) == ("DE", "XMS")


def test_booking_post_taken_slot_is_rejected_not_an_error(client, emsp, site, tomorrow_10):
    BookingFactory(evse=site.charge_points.first().evses.get(uid="EVSE-1"), start=tomorrow_10)
    response = post(client, emsp, request_body(tomorrow_10))
    body = response.json()
    assert body["status_code"] == 1000
    assert body["data"]["reservation_status"] == "REJECTED"
    assert body["data"]["booking_requests"][0]["request_status"] == "DECLINED"


def test_booking_post_that_breaks_on_our_side_is_failed_not_lost(
    client, emsp, site, tomorrow_10, monkeypatch, caplog
):
    def broken(**kwargs):  # fault injection: a bug while deciding
        raise RuntimeError("boom")

    monkeypatch.setattr("bookings.services.booking_create", broken)
    response = post(client, emsp, request_body(tomorrow_10))
    assert response.status_code == 201
    body = response.json()
    assert body["status_code"] == 1000
    assert body["data"]["reservation_status"] == "FAILED"
    assert [r["request_status"] for r in body["data"]["booking_requests"]] == ["FAILED"]
    booking = Booking.objects.get()
    assert booking.status == Status.FAILED and booking.request_id == "REQ-1"
    audit = booking.transitions.get()
    assert audit.code == "processing_failed" and audit.to_status == Status.FAILED
    assert "BookingRequest REQ-1 of DE*XMS failed" in caplog.text and "boom" in caplog.text
    # The same request sent again gets that booking back, not a second one.
    again = post(client, emsp, request_body(tomorrow_10)).json()["data"]
    assert again["id"] == body["data"]["id"] and Booking.objects.count() == 1


def test_booking_post_without_evse_picks_a_free_one(client, emsp, site, tomorrow_10):
    BookingFactory(evse=site.charge_points.first().evses.get(uid="EVSE-1"), start=tomorrow_10)
    data = post(client, emsp, request_body(tomorrow_10, evse_uid=None)).json()["data"]
    assert data["reservation_status"] == "RESERVED" and data["evse_uid"] == "EVSE-2"


def test_booking_change_with_same_request_id_moves_it(client, emsp, site, tomorrow_10):
    post(client, emsp, request_body(tomorrow_10))
    later = tomorrow_10 + timedelta(minutes=30)
    response = post(client, emsp, request_body(later))
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["reservation_status"] == "RESERVED"
    assert data["period"]["start_from"] == z(later)
    assert [r["request_status"] for r in data["booking_requests"]] == ["ACCEPTED", "ACCEPTED"]
    assert Booking.objects.count() == 1


def test_booking_change_into_taken_slot_is_declined_and_keeps_booking(
    client, emsp, site, tomorrow_10
):
    post(client, emsp, request_body(tomorrow_10))
    evse = site.charge_points.first().evses.get(uid="EVSE-1")
    BookingFactory(evse=evse, start=tomorrow_10 + timedelta(hours=2))
    data = post(client, emsp, request_body(tomorrow_10 + timedelta(hours=2))).json()["data"]
    assert data["reservation_status"] == "RESERVED"
    assert data["period"]["start_from"] == z(tomorrow_10)
    assert [r["request_status"] for r in data["booking_requests"]] == ["ACCEPTED", "DECLINED"]


def test_booking_cancel_request_cancels(client, emsp, site, tomorrow_10):
    post(client, emsp, request_body(tomorrow_10))
    cancel = {"country_code": "DE", "party_id": "XMS", "request_id": "REQ-1",
              "canceled": {"cancellation_reason": "TRAFFIC", "who_canceled": "EMSP"}}  # fmt: skip
    data = post(client, emsp, cancel).json()["data"]
    assert data["reservation_status"] == "CANCELED"
    assert data["canceled"] == {"cancellation_reason": "TRAFFIC", "who_canceled": "EMSP"}
    assert Booking.objects.get().status == Status.CANCELED


def test_booking_identical_resend_is_idempotent(client, emsp, site, tomorrow_10):
    body = request_body(tomorrow_10)
    first = post(client, emsp, body).json()["data"]
    again = post(client, emsp, body).json()["data"]
    assert again["id"] == first["id"]
    assert len(again["booking_requests"]) == 1
    assert BookingRequest.objects.count() == 1


def test_booking_post_for_another_party_identity_is_2001(client, emsp, site, tomorrow_10):
    response = post(client, emsp, request_body(tomorrow_10, party=("FR", "OTH")))
    assert response.json()["status_code"] == 2001
    assert "country_code" in response.json()["status_message"]
    assert not Booking.objects.exists()


def test_booking_post_unknown_location_is_2003(client, emsp, site, tomorrow_10):
    body = request_body(tomorrow_10, location_id="NOPE")
    assert post(client, emsp, body).json()["status_code"] == 2003


def test_booking_post_naming_an_evse_of_another_location_books_nothing(
    client, emsp, site, tomorrow_10
):
    EVSEFactory(charge_point__location=LocationFactory(ocpi_id="LOC-RTM-002"), uid="EVSE-RTM")
    body = request_body(tomorrow_10, evse_uid="EVSE-RTM")
    answer = post(client, emsp, body).json()
    assert answer["status_code"] == 2001 and "EVSE-RTM" in answer["status_message"]
    assert (
        post(client, emsp, request_body(tomorrow_10, location_id="loc-ams-001")).json()["data"][
            "evse_uid"
        ]
        == "EVSE-1"
    )  # the location's id is a CiString
    assert Booking.objects.get().evse.uid == "EVSE-1"


def test_booking_post_for_an_unpublished_location_is_2003_for_new_and_changed_bookings(
    client, emsp, site, tomorrow_10
):
    assert post(client, emsp, request_body(tomorrow_10)).json()["status_code"] == 1000
    site.publish = False
    site.save()
    new = post(client, emsp, request_body(tomorrow_10 + timedelta(hours=2), request_id="REQ-2"))
    change = post(client, emsp, request_body(tomorrow_10 + timedelta(hours=4)))
    assert new.json()["status_code"] == change.json()["status_code"] == 2003
    assert "LOC-AMS-001" in change.json()["status_message"]
    booking = Booking.objects.get()  # the first; its period unchanged, nothing recorded
    assert booking.period.lower == tomorrow_10 and booking.requests.count() == 1
    # A cancel still reaches a booking whose location was unpublished since.
    canceled = {"cancellation_reason": "TRAFFIC", "who_canceled": "EMSP"}
    cancel = post(client, emsp, request_body(tomorrow_10, canceled=canceled))
    assert cancel.json()["data"]["reservation_status"] == "CANCELED"


@pytest.mark.django_db(transaction=True)
def test_booking_post_new_booking_and_its_request_are_written_all_or_nothing(
    client, emsp, site, tomorrow_10
):
    # A new request opens no transaction: the booking, its tokens, its audit row and the
    # request row are one statement string. When the request row is refused, none is left.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_request() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'request refused by the test'; END $$;"
            " CREATE TRIGGER test_refuse_request BEFORE INSERT ON bookings_bookingrequest"
            " FOR EACH ROW EXECUTE FUNCTION test_refuse_request()"
        )
    try:
        response = post(client, emsp, request_body(tomorrow_10))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER test_refuse_request ON bookings_bookingrequest;"
                " DROP FUNCTION test_refuse_request()"
            )
    assert response.status_code == 500 and response.json()["status_code"] == 3000
    assert not Booking.objects.exists() and not BookingRequest.objects.exists()
    assert post(client, emsp, request_body(tomorrow_10)).json()["data"]["reservation_status"] == (
        "RESERVED"
    )


def test_booking_post_location_id_is_never_a_primary_key(client, emsp, site, tomorrow_10):
    body = request_body(tomorrow_10, location_id=str(site.pk), evse_uid=None)
    assert post(client, emsp, body).json()["status_code"] == 2003
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(period={**b["period"], "end_before": b["period"]["start_from"]}),
         "period.end_before"),
        (lambda b: b.update(power_required="11"), "power_required"),
        (lambda b: b.update(request_id=12345), "request_id"),
        (lambda b: b.update(request_id="R" * 37), "request_id"),
        (lambda b: b.update(canceled={"cancellation_reason": "BORED", "who_canceled": "EMSP"}),
         "canceled.cancellation_reason"),
        (lambda b: b.pop("period"), "period"),
        (lambda b: b.update(tokens=[{"uid": "x"}]), "tokens[0].country_code"),
        (lambda b: b.update(period={"start_from": "yesterday", "end_before": "later"}),
         "period.start_from"),
        (lambda b: b.update(tokens="04A1"), "tokens"),
    ],
    ids=["end-before-start", "string-for-int", "int-for-string", "overlong-cistring",
         "unknown-enum", "missing-period", "token-missing-fields", "bad-datetime", "not-a-list"],
)  # fmt: skip
def test_booking_post_invalid_input_is_2001_naming_the_field(
    client, emsp, site, tomorrow_10, change, field
):
    body = request_body(tomorrow_10)
    change(body)
    response = post(client, emsp, body)
    assert response.status_code == 200
    payload = response.json()
    assert payload["status_code"] == 2001
    assert field in payload["status_message"]
    assert not Booking.objects.exists() and not BookingRequest.objects.exists()


def test_booking_post_json_array_is_2001(client, emsp, site):
    response = post(client, emsp, "[1, 2]")
    assert response.json()["status_code"] == 2001


def test_booking_list_shows_only_own_bookings(client, emsp, other_emsp, site, tomorrow_10):
    post(client, emsp, request_body(tomorrow_10, request_id="MINE"))
    post(client, other_emsp, request_body(tomorrow_10 + timedelta(hours=2), request_id="THEIRS",
                                          party=("FR", "OTH")))  # fmt: skip
    BookingFactory(evse=site.charge_points.first().evses.get(uid="EVSE-2"), start=tomorrow_10)
    response = client.get(BOOKINGS, HTTP_AUTHORIZATION=emsp.auth)
    assert [b["request_id"] for b in response.json()["data"]] == ["MINE"]
    assert response["X-Total-Count"] == "1"


def test_booking_detail_of_another_party_is_not_found(client, emsp, other_emsp, site, tomorrow_10):
    theirs = post(client, other_emsp, request_body(tomorrow_10, party=("FR", "OTH"))).json()["data"]
    response = client.get(f"{BOOKINGS}/{theirs['id']}", HTTP_AUTHORIZATION=emsp.auth)
    assert response.status_code == 404
    assert "REQ-1" not in response.content.decode()
    own = client.get(f"{BOOKINGS}/{theirs['id']}", HTTP_AUTHORIZATION=other_emsp.auth)
    assert own.json()["data"]["request_id"] == "REQ-1"


def test_booking_same_request_id_from_two_parties_are_two_bookings(
    client, emsp, other_emsp, site, tomorrow_10
):
    a = post(client, emsp, request_body(tomorrow_10)).json()["data"]
    b = post(client, other_emsp, request_body(tomorrow_10 + timedelta(hours=2),
                                              party=("FR", "OTH"))).json()["data"]  # fmt: skip
    assert a["id"] != b["id"]
    cancel = {"country_code": "FR", "party_id": "OTH", "request_id": "REQ-1",
              "canceled": {"cancellation_reason": "TRAFFIC", "who_canceled": "EMSP"}}  # fmt: skip
    post(client, other_emsp, cancel)
    assert Booking.objects.get(uid=a["id"]).status == Status.RESERVED


def test_booking_list_paginates_with_headers(client, emsp, site, tomorrow_10):
    for i in range(5):
        post(client, emsp, request_body(tomorrow_10 + timedelta(hours=i), request_id=f"R{i}"))
    page = client.get(BOOKINGS, {"limit": 2}, HTTP_AUTHORIZATION=emsp.auth)
    assert [b["request_id"] for b in page.json()["data"]] == ["R0", "R1"]
    assert page["X-Total-Count"] == "5" and page["X-Limit"] == "100"
    assert 'rel="next"' in page["Link"] and "offset=2" in page["Link"] and "limit=2" in page["Link"]
    last = client.get(BOOKINGS, {"offset": 4, "limit": 2}, HTTP_AUTHORIZATION=emsp.auth)
    assert [b["request_id"] for b in last.json()["data"]] == ["R4"]
    assert "Link" not in last


def test_booking_list_date_from_inclusive_date_to_exclusive(client, emsp, site, tomorrow_10):
    post(client, emsp, request_body(tomorrow_10))
    stamp = Booking.objects.get().last_updated
    params = {"date_from": z(stamp.replace(microsecond=0))}
    assert len(client.get(BOOKINGS, params, HTTP_AUTHORIZATION=emsp.auth).json()["data"]) == 1
    params = {"date_to": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    assert client.get(BOOKINGS, params, HTTP_AUTHORIZATION=emsp.auth).json()["data"] == []


def test_booking_locations_calendars_leave_out_booked_time(client, emsp, site, tomorrow_10):
    post(client, emsp, request_body(tomorrow_10))
    params = {"timeslot_from": z(tomorrow_10 - timedelta(hours=2)),
              "timeslot_to": z(tomorrow_10 + timedelta(hours=3))}  # fmt: skip
    response = client.get(BOOKING_LOCATIONS, params, HTTP_AUTHORIZATION=emsp.auth)
    assert response.json()["status_code"] == 1000
    by_evse = {bl["evse_uid"]: bl for bl in response.json()["data"]}
    assert set(by_evse) == {"EVSE-1", "EVSE-2"}
    slots = [(s["start_from"], s["end_before"])
             for c in by_evse["EVSE-1"]["calendars"] for s in c["available_timeslots"]]  # fmt: skip
    assert slots == [
        (z(tomorrow_10 - timedelta(hours=2)), z(tomorrow_10)),
        (z(tomorrow_10 + timedelta(hours=1)), z(tomorrow_10 + timedelta(hours=3))),
    ]
    free = by_evse["EVSE-2"]["calendars"][0]["available_timeslots"]
    assert free == [
        {
            "start_from": z(tomorrow_10 - timedelta(hours=2)),
            "end_before": z(tomorrow_10 + timedelta(hours=3)),
            "max_power": 22000,
        }
    ]
    assert by_evse["EVSE-1"]["booking_terms"][0]["cancel_until_minutes"] == 15
    assert by_evse["EVSE-1"]["calendars"][0]["step_size"] == 15


def test_booking_locations_detail_and_calendar(client, emsp, site, tomorrow_10):
    response = client.get(f"{BOOKING_LOCATIONS}/EVSE-2", HTTP_AUTHORIZATION=emsp.auth)
    data = response.json()["data"]
    assert data["id"] == "EVSE-2" and data["location_id"] == "LOC-AMS-001"
    calendar_id = data["calendars"][1]["id"]
    calendar = client.get(f"{BOOKING_LOCATIONS}/EVSE-2/{calendar_id}", HTTP_AUTHORIZATION=emsp.auth)
    assert calendar.json()["data"] == data["calendars"][1]
    missing = client.get(f"{BOOKING_LOCATIONS}/NOPE", HTTP_AUTHORIZATION=emsp.auth)
    assert missing.status_code == 404


def test_booking_locations_hide_unpublished_locations(client, emsp, site):
    site.publish = False
    site.save()
    response = client.get(BOOKING_LOCATIONS, HTTP_AUTHORIZATION=emsp.auth)
    assert response.json()["data"] == [] and response["X-Total-Count"] == "0"


def test_booking_locations_timeslot_to_before_from_is_2001(client, emsp, site, tomorrow_10):
    params = {"timeslot_from": z(tomorrow_10), "timeslot_to": z(tomorrow_10 - timedelta(hours=1))}
    response = client.get(BOOKING_LOCATIONS, params, HTTP_AUTHORIZATION=emsp.auth)
    assert response.json()["status_code"] == 2001
    assert "timeslot_to" in response.json()["status_message"]


def test_booking_sender_has_no_put(client, emsp, site):
    response = client.put(BOOKINGS, data="{}", content_type="application/json",
                          HTTP_AUTHORIZATION=emsp.auth)  # fmt: skip
    assert response.status_code == 405
    assert response.json()["status_code"] == 2000


def test_booking_ids_are_case_insensitive_cistrings(client, emsp, site, tomorrow_10):
    post(client, emsp, request_body(tomorrow_10, location_id="loc-ams-001"))
    later = tomorrow_10 + timedelta(minutes=30)
    data = post(client, emsp, request_body(later, location_id="Loc-Ams-001")).json()["data"]
    assert data["reservation_status"] == "RESERVED" and data["location_id"] == "LOC-AMS-001"
    assert [r["request_status"] for r in data["booking_requests"]] == ["ACCEPTED", "ACCEPTED"]


def test_booking_module_1_1_party_speaks_the_1_1_shapes(client, site, tomorrow_10):
    from tests.ocpi.factories import PartyFactory

    party = PartyFactory(country_code="SE", party_id="VOL", booking_module_version="1.1")
    body = {"country_code": "SE", "party_id": "VOL", "request_id": "REQ-11",
            "location_id": "LOC-AMS-001", "booking_location_id": "EVSE-2",
            "booking_option": {"evse_uid": "EVSE-2"},
            "access_information": [{"method": "LICENSE_PLATE", "value": "AB-123-C"}],
            "period": {"start_date_time": z(tomorrow_10),
                       "end_date_time": z(tomorrow_10 + timedelta(hours=1))},
            "authorization_reference": "AUTH-11"}  # fmt: skip
    data = post(client, party, body).json()["data"]
    assert data["reservation_status"] == "RESERVED"
    assert data["booking_option"] == {"evse_uid": "EVSE-2"} and "evse_uid" not in data
    assert data["period"] == {"start_date_time": z(tomorrow_10),
                              "end_date_time": z(tomorrow_10 + timedelta(hours=1))}  # fmt: skip
    assert "rfid_auth_required" in data["booking_terms"] and "tariff_ids" in data
    assert data["booking_terms"]["min_booking_duration"] == 15
    assert data["booking_requests"][0]["booking_request"] == body  # kept as received
    bl = client.get(f"{BOOKING_LOCATIONS}/EVSE-2", HTTP_AUTHORIZATION=party.auth).json()["data"]
    assert bl["booking_option"]["evse_uid"] == "EVSE-2" and bl["policy"]
    assert bl["booking_terms"]["min_booking_duration"] == 15
    calendar = bl["calendars"][0]
    assert calendar["timeslot_increment"] == 15
    assert set(calendar["available_timeslots"][0]) >= {"start_date_time", "end_date_time"}


def test_booking_1_0_party_gets_1_0_shapes_and_1_1_request_is_still_read(
    client, emsp, site, tomorrow_10
):
    body = request_body(tomorrow_10)
    body.pop("evse_uid")
    body["booking_option"] = {"evse_uid": "EVSE-1"}
    body["period"] = {"start_date_time": z(tomorrow_10),
                      "end_date_time": z(tomorrow_10 + timedelta(hours=1))}  # fmt: skip
    data = post(client, emsp, body).json()["data"]
    assert data["evse_uid"] == "EVSE-1" and data["period"]["start_from"] == z(tomorrow_10)
    # What the 1.0 party reads back is all 1.0, the request it sent in the 1.1 shape included.
    embedded = data["booking_requests"][0]["booking_request"]
    assert embedded["evse_uid"] == "EVSE-1" and "booking_option" not in embedded
    assert embedded["period"] == {"start_from": z(tomorrow_10),
                                  "end_before": z(tomorrow_10 + timedelta(hours=1))}  # fmt: skip
    assert "min_booking_duration" not in data["booking_terms"]
    assert "RFID_auth_required" in data["booking_terms"]
    listed = client.get(BOOKINGS, HTTP_AUTHORIZATION=emsp.auth).json()["data"][0]
    assert listed["booking_requests"][0]["booking_request"] == embedded
    bl = client.get(f"{BOOKING_LOCATIONS}/EVSE-1", HTTP_AUTHORIZATION=emsp.auth).json()["data"]
    assert "min_booking_duration" not in bl["booking_terms"][0]


def test_booking_1_1_party_reads_its_1_0_shaped_request_in_1_1(client, site, tomorrow_10):
    from tests.ocpi.factories import PartyFactory

    party = PartyFactory(country_code="SE", party_id="VOL", booking_module_version="1.1")
    data = post(client, party, request_body(tomorrow_10, party=("SE", "VOL"))).json()["data"]
    assert data["reservation_status"] == "RESERVED"
    embedded = data["booking_requests"][0]["booking_request"]
    assert embedded["booking_option"] == {"evse_uid": "EVSE-1"}
    assert embedded["booking_location_id"] == "EVSE-1" and "evse_uid" not in embedded
    assert embedded["period"] == {"start_date_time": z(tomorrow_10),
                                  "end_date_time": z(tomorrow_10 + timedelta(hours=1))}  # fmt: skip
    assert data["booking_terms"]["min_booking_duration"] == 15
    assert data["booking_terms"]["max_booking_duration"] == 240


def _evse1(site):
    return EVSE.objects.get(charge_point__location=site, uid="EVSE-1")


RULE_CHANGES = {
    "policy": lambda site: BookingPolicy.objects.filter(location=site).update(
        max_duration_minutes=30
    ),
    "evse": lambda site: EVSE.objects.filter(pk=_evse1(site).pk).update(booking_enabled=False),
    "closing": lambda site: ExceptionalPeriodFactory(
        location=site,
        kind=ExceptionalPeriod.Kind.CLOSING,
        period_begin=timezone.now(),
        period_end=timezone.now() + timedelta(days=3),
    ),
}


@pytest.mark.parametrize("change", RULE_CHANGES)
def test_booking_post_after_a_rule_change_is_decided_on_the_new_rules(
    client, emsp, site, tomorrow_10, change
):
    assert post(client, emsp, request_body(tomorrow_10)).status_code == 201
    RULE_CHANGES[change](site)
    body = post(client, emsp, request_body(tomorrow_10 + timedelta(hours=3), request_id="R2"))
    data = body.json()["data"]
    assert data["reservation_status"] == "REJECTED"
    assert data["booking_requests"][0]["request_status"] == "DECLINED"
    assert Booking.objects.filter(request_id="R2", status=Status.REJECTED).count() == 1
    assert not Booking.objects.filter(request_id="R2").exclude(status=Status.REJECTED).exists()


def test_booking_post_change_and_resend(client, emsp, site, tomorrow_10):
    # A change and an unchanged resend of one request_id end as a change and as the same booking.
    first = post(client, emsp, request_body(tomorrow_10)).json()["data"]
    moved = post(client, emsp, request_body(tomorrow_10 + timedelta(hours=2))).json()["data"]
    again = post(client, emsp, request_body(tomorrow_10 + timedelta(hours=2))).json()["data"]
    assert first["id"] == moved["id"] == again["id"]
    assert moved["period"]["start_from"] == z(tomorrow_10 + timedelta(hours=2))
    assert [r["request_status"] for r in again["booking_requests"]] == ["ACCEPTED", "ACCEPTED"]
    assert Booking.objects.count() == 1


def test_booking_post_response_equals_the_booking_read_back(client, emsp, site, tomorrow_10):
    for body in (request_body(tomorrow_10), request_body(tomorrow_10, request_id="REQ-2")):
        posted = post(client, emsp, body).json()["data"]
        read = client.get(f"{BOOKINGS}/{posted['id']}", HTTP_AUTHORIZATION=emsp.auth)
        assert posted == read.json()["data"]
    assert posted["reservation_status"] == "REJECTED"  # the second one: the slot was taken


def test_booking_request_id_is_a_cistring_on_change_and_cancel(client, emsp, site, tomorrow_10):
    post(client, emsp, request_body(tomorrow_10, request_id="Req-Case-1"))
    later = tomorrow_10 + timedelta(minutes=30)
    data = post(client, emsp, request_body(later, request_id="REQ-CASE-1")).json()["data"]
    assert data["period"]["start_from"] == z(later)
    assert [r["request_status"] for r in data["booking_requests"]] == ["ACCEPTED", "ACCEPTED"]
    cancel = {"country_code": "DE", "party_id": "XMS", "request_id": "req-case-1",
              "canceled": {"cancellation_reason": "TRAFFIC", "who_canceled": "EMSP"}}  # fmt: skip
    assert post(client, emsp, cancel).json()["data"]["reservation_status"] == "CANCELED"
    booking = Booking.objects.get()
    assert booking.status == Status.CANCELED and booking.request_id == "Req-Case-1"


def test_booking_post_with_another_emsps_token_is_2001_and_stores_nothing(
    client, emsp, site, tomorrow_10
):
    body = request_body(tomorrow_10)
    body["tokens"].append({"country_code": "FR", "party_id": "OTH", "uid": "FOREIGN-1",
                           "type": "RFID", "contract_id": "FR-OTH-C1"})  # fmt: skip
    response = post(client, emsp, body)
    assert response.json()["status_code"] == 2001
    assert "FOREIGN-1" in response.json()["status_message"]
    assert not Booking.objects.exists() and not BookingRequest.objects.exists()


def test_booking_change_to_another_emsps_token_is_declined_and_keeps_the_booking(
    client, emsp, site, tomorrow_10
):
    post(client, emsp, request_body(tomorrow_10))
    body = request_body(tomorrow_10 + timedelta(hours=1))
    body["tokens"][0].update(country_code="FR", party_id="OTH")
    data = post(client, emsp, body).json()["data"]
    assert [r["request_status"] for r in data["booking_requests"]] == ["ACCEPTED", "DECLINED"]
    assert data["period"]["start_from"] == z(tomorrow_10)  # neither moved nor re-tokened
    booking = Booking.objects.get()
    assert [(t.country_code, t.party_id) for t in booking.tokens.all()] == [("DE", "XMS")]
    assert booking.requests.order_by("id").last().reason_code == "foreign_token"


def test_booking_token_of_own_party_in_lower_case_is_accepted(client, emsp, site, tomorrow_10):
    body = request_body(tomorrow_10)
    body["tokens"][0].update(country_code="de", party_id="xms")
    assert post(client, emsp, body).json()["data"]["reservation_status"] == "RESERVED"


def test_booking_token_type_is_an_open_enum(client, emsp, site, tomorrow_10):
    body = request_body(tomorrow_10)
    body["tokens"][0]["type"] = "PARTNER_APP_USER_TOKEN"  # 22 characters, not one of ours
    data = post(client, emsp, body).json()["data"]
    assert data["reservation_status"] == "RESERVED"
    assert data["booking_tokens"][0]["type"] == "PARTNER_APP_USER_TOKEN"
    body = request_body(tomorrow_10, request_id="REQ-2", evse_uid="EVSE-2")
    body["tokens"][0]["type"] = "X" * 65
    response = post(client, emsp, body)
    assert response.json()["status_code"] == 2001 and "type" in response.json()["status_message"]


def test_booking_locations_horizon_rolls_daily_and_bumps_last_updated(client, emsp, site):
    from datetime import UTC

    from ocpi.selectors import bookable_evses, booking_locations, calendar_window

    midnight = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # Nothing changed since before yesterday: the EVSEs' rows say so.
    EVSE.objects.update(last_updated=midnight - timedelta(days=2))
    site.__class__.objects.filter(pk=site.pk).update(last_updated=midnight - timedelta(days=2))
    BookingPolicy.objects.update(last_updated=midnight - timedelta(days=2))

    # A client that synced yesterday evening still sees every BookingLocation once today's
    # horizon has rolled, with today's start as its last_updated.
    since = z(midnight - timedelta(hours=3))
    data = client.get(BOOKING_LOCATIONS, {"date_from": since}, HTTP_AUTHORIZATION=emsp.auth)
    listed = data.json()["data"]
    assert {bl["evse_uid"] for bl in listed} == {"EVSE-1", "EVSE-2"}
    assert {bl["last_updated"] for bl in listed} == {z(midnight)}
    later = z(midnight + timedelta(minutes=1))
    assert client.get(BOOKING_LOCATIONS, {"date_from": later}, HTTP_AUTHORIZATION=emsp.auth
                      ).json()["data"] == []  # fmt: skip

    # Within a day, the horizon does not move with the clock.
    morning, evening = midnight + timedelta(hours=7), midnight + timedelta(hours=19)
    assert calendar_window(None, None, morning) == calendar_window(None, None, evening)
    tomorrow = midnight + timedelta(days=1, hours=7)
    assert calendar_window(None, None, tomorrow).start == midnight + timedelta(days=1)
    keys = bookable_evses(now=tomorrow)
    assert {k.bl_last_updated for k in keys} == {midnight + timedelta(days=1)}
    found = booking_locations(
        evses=keys, window=calendar_window(None, None, tomorrow), now=tomorrow
    )
    assert {c.last_updated for bl in found for c in bl.calendars} == {midnight + timedelta(days=1)}


def _nested(levels):
    value = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_booking_post_nested_too_deep_is_2001_and_stores_nothing(client, emsp, site, tomorrow_10):
    body = request_body(tomorrow_10, bookable_parking_option=_nested(300))
    response = post(client, emsp, body)
    assert response.status_code == 400
    assert response.json()["status_code"] == 2001
    assert "nested deeper than 32 levels" in response.json()["status_message"]
    assert not Booking.objects.exists()
    listed = client.get(BOOKINGS, HTTP_AUTHORIZATION=emsp.auth)
    assert listed.status_code == 200 and listed.json()["data"] == []


def test_booking_post_deepest_accepted_nesting_reads_back(client, emsp, site, tomorrow_10):
    # 31 levels of parking option inside the request object: 32 in all, the most accepted.
    response = post(client, emsp, request_body(tomorrow_10, bookable_parking_option=_nested(31)))
    assert response.status_code == 201
    uid = response.json()["data"]["id"]
    assert client.get(f"{BOOKINGS}/{uid}", HTTP_AUTHORIZATION=emsp.auth).status_code == 200
    assert len(client.get(BOOKINGS, HTTP_AUTHORIZATION=emsp.auth).json()["data"]) == 1


def test_booking_post_over_a_thousand_levels_is_2001_not_a_crash(client, emsp, site):
    response = post(client, emsp, "[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400
    assert response.json()["status_code"] == 2001


def test_booking_post_body_too_large_is_2001(client, emsp, site, tomorrow_10):
    body = request_body(tomorrow_10, bookable_parking_option={"note": "x" * 300_000})
    response = post(client, emsp, body)
    assert response.status_code == 413
    assert response.json()["status_code"] == 2001
    assert "larger than 262144 bytes" in response.json()["status_message"]
    assert not Booking.objects.exists()


def test_booking_post_too_many_tokens_is_2001(client, emsp, site, tomorrow_10):
    token = {"country_code": "DE", "party_id": "XMS", "type": "RFID",
             "contract_id": "DE-XMS-C12345678-9"}  # fmt: skip
    tokens = [{**token, "uid": f"UID{n:04d}"} for n in range(21)]
    response = post(client, emsp, request_body(tomorrow_10, tokens=tokens))
    assert response.json()["status_code"] == 2001
    assert "tokens" in response.json()["status_message"]
    assert not Booking.objects.exists()
