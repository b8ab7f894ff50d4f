"""Pushes to eMSPs: outbox sweep over the booking audit trail, per-party ordered delivery,
backoff on failure, isolation between parties."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings.models import BookingTransition
from bookings.services import Actor, booking_cancel, booking_create
from ocpi.models import Push, PushCursor
from ocpi.push import deliver, sweep
from partners.outbox import backoff
from tests.ocpi.emsp import FakeEmsp
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db


def registered(emsp_server, **kwargs):
    return PartyFactory(
        country_code=emsp_server.country_code, party_id=emsp_server.party_id,
        token_b=emsp_server.token_b,
        endpoints=[{"identifier": "Booking", "role": "RECEIVER", "url": emsp_server.bookings_url}],
        **kwargs,
    )  # fmt: skip


@pytest.fixture
def emsp_server(httpserver):
    return FakeEmsp(httpserver).install()


def book(site, start, party=None, request_id="R1"):
    evse = site.charge_points.first().evses.get(uid="EVSE-1")
    actor = Actor.emsp(party.country_code, party.party_id) if party else Actor.system("staff")
    return booking_create(evse=evse, start=start, end=start + timedelta(hours=1), actor=actor,
                          request_id=request_id if party else "")  # fmt: skip


def test_push_sweep_queues_booking_for_owner_and_location_for_everyone(
    emsp_server, site, tomorrow_10
):
    owner = registered(emsp_server)
    bystander = PartyFactory(endpoints=[])
    booking = book(site, tomorrow_10, owner)
    due = sweep()
    assert due.parties == {owner.pk, bystander.pk}
    assert set(Push.objects.filter(kind="BOOKING").values_list("party_id", "booking_id")) == {
        (owner.pk, booking.pk)
    }
    assert set(Push.objects.filter(kind="LOCATION").values_list("party_id", flat=True)) == {
        owner.pk,
        bystander.pk,
    }
    assert PushCursor.objects.get().last_transition_id == BookingTransition.objects.get().pk
    sweep()  # idempotent: nothing new
    assert Push.objects.count() == 3


def test_push_deliver_puts_booking_then_location_in_order(emsp_server, site, tomorrow_10):
    owner = registered(emsp_server)
    booking = book(site, tomorrow_10, owner)
    sweep()
    assert deliver(party_id=owner.pk).sent == 2
    paths = [p for _, p, _ in emsp_server.pushes]
    assert paths == [f"/ocpi/emsp/2.3.0/bookings/NL/CBK/{booking.uid}",
                     "/ocpi/emsp/2.3.0/bookings/NL/CBK/booking_locations/EVSE-1"]  # fmt: skip
    assert emsp_server.pushes[0][2]["reservation_status"] == "RESERVED"
    assert set(Push.objects.values_list("state", flat=True)) == {"SENT"}


def test_push_staff_cancel_reaches_the_owning_emsp(emsp_server, site, tomorrow_10, admin_user):
    owner = registered(emsp_server)
    booking = book(site, tomorrow_10, owner)
    sweep()
    deliver(party_id=owner.pk)
    booking_cancel(booking=booking, actor=Actor.staff(admin_user), reason="BROKEN_CHARGER")
    sweep()
    deliver(party_id=owner.pk)
    last = emsp_server.booking_pushes()[-1][1]
    assert last["reservation_status"] == "CANCELED"
    assert last["canceled"] == {"cancellation_reason": "BROKEN_CHARGER", "who_canceled": "CPO"}


def test_push_pending_pushes_of_one_booking_are_coalesced(emsp_server, site, tomorrow_10):
    owner = registered(emsp_server)
    booking = book(site, tomorrow_10, owner)
    booking_cancel(booking=booking, actor=Actor.system(), reason="POWER_OUTAGE")
    sweep()
    deliver(party_id=owner.pk)
    bookings = emsp_server.booking_pushes()
    assert len(bookings) == 1 and bookings[0][1]["reservation_status"] == "CANCELED"
    assert Push.objects.filter(state="SKIPPED").exists()


def test_push_failure_backs_off_and_keeps_order(emsp_server, site, tomorrow_10):
    owner = registered(emsp_server)
    first = book(site, tomorrow_10, owner, "R1")
    sweep()
    emsp_server.down = True
    result = deliver(party_id=owner.pk)
    assert result.failed and result.sent == 0
    head = Push.objects.order_by("id").first()
    assert head.state == "PENDING" and head.attempts == 1 and "503" in head.last_status
    assert head.next_attempt_at > timezone.now() + backoff(1) - timedelta(seconds=2)
    emsp_server.down = False
    book(site, tomorrow_10 + timedelta(hours=2), owner, "R2")
    sweep()
    assert deliver(party_id=owner.pk).sent == 0  # the head waits for its backoff; order is kept
    Push.objects.filter(pk=head.pk).update(next_attempt_at=timezone.now())
    deliver(party_id=owner.pk)
    booking_paths = [p for p, _ in emsp_server.booking_pushes()]
    assert booking_paths[0].endswith(str(first.uid)) and len(booking_paths) == 2


def test_push_one_party_down_does_not_hold_back_another(httpserver, site, tomorrow_10):
    from pytest_httpserver import HTTPServer

    other_server = HTTPServer(host="127.0.0.1", port=0)
    other_server.start()
    try:
        down = FakeEmsp(httpserver, party_id="DWN").install()
        up = FakeEmsp(other_server, party_id="UPP").install()
        down_party, up_party = registered(down), registered(up)
        down.down = True
        book(site, tomorrow_10, down_party, "D1")
        sweep()
        assert deliver(party_id=down_party.pk).failed
        assert deliver(party_id=up_party.pk).sent == 1  # its BookingLocation push still goes out
        assert [p for p in up.location_pushes()]
    finally:
        other_server.clear()
        other_server.stop()


def test_push_party_without_booking_receiver_is_skipped(site, tomorrow_10):
    party = PartyFactory(endpoints=[])
    book(site, tomorrow_10, party)
    sweep()
    deliver(party_id=party.pk)
    assert set(Push.objects.values_list("state", flat=True)) == {"SKIPPED"}


def test_push_backoff_grows_exponentially_and_is_capped():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(30).total_seconds() == 3600


def test_push_failures_visible_and_retryable_in_admin(admin_client, emsp_server, site, tomorrow_10):
    owner = registered(emsp_server)
    book(site, tomorrow_10, owner)
    sweep()
    emsp_server.down = True
    deliver(party_id=owner.pk)
    url = reverse("admin:ocpi_push_changelist")
    page = admin_client.get(url, {"state__exact": "PENDING"})
    assert page.status_code == 200 and b"503" in page.content
    head = Push.objects.order_by("id").first()
    admin_client.post(url, {"action": "retry_now", "_selected_action": [head.pk]})
    head.refresh_from_db()
    assert head.next_attempt_at is None


def test_push_sweep_waits_on_a_young_id_gap_but_still_pushes(emsp_server, site, tomorrow_10):
    owner = registered(emsp_server)
    book(site, tomorrow_10, owner, "R1")
    sweep()
    cursor = PushCursor.objects.get()
    cursor.last_transition_id -= 5  # pretend ids below the newest row are still uncommitted
    cursor.save()
    stuck_at = cursor.last_transition_id
    book(site, tomorrow_10 + timedelta(hours=2), owner, "R2")
    sweep()
    assert PushCursor.objects.get().last_transition_id == stuck_at
    assert Push.objects.filter(kind="BOOKING").count() == 2  # pushed all the same, once each
    sweep(now=timezone.now() + timedelta(minutes=1))
    assert PushCursor.objects.get().last_transition_id == BookingTransition.objects.last().pk


def test_push_speaks_the_partys_booking_module_version(emsp_server, site, tomorrow_10):
    owner = registered(emsp_server, booking_module_version="1.1")
    book(site, tomorrow_10, owner)
    sweep()
    deliver(party_id=owner.pk)
    booking = emsp_server.booking_pushes()[0][1]
    assert (
        booking["booking_option"]["evse_uid"] == "EVSE-1" and "start_date_time" in booking["period"]
    )
    location = emsp_server.location_pushes()[0][1]
    assert "policy" in location and "timeslot_increment" in location["calendars"][0]


@pytest.mark.django_db(transaction=True)
def test_push_lease_is_renewed_so_two_deliverers_never_overlap(site, monkeypatch):
    """A backlog that takes longer than the lease: a second deliverer started meanwhile finds
    the lease renewed and leaves, so the partner gets each object once, in order, one at a time
    (before, it took over the expired lease and both sent: doubles, order lost)."""
    import threading

    from django.db import connection

    from ocpi import push
    from partners import outbox
    from tests.locations.factories import EVSEFactory
    from tests.ocpi.partner import Partner

    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=1))
    cp = site.charge_points.first()
    evses = [EVSEFactory(charge_point=cp, uid=f"EVSE-L{n}") for n in range(8)]
    with Partner(answer_seconds=0.3) as partner:
        party = PartyFactory(endpoints=[{"identifier": "booking", "role": "RECEIVER",
                                         "url": f"{partner.url}/bookings"}])  # fmt: skip
        Push.objects.all().delete()
        push.queue_location_pushes(evse_ids=[e.pk for e in evses])
        results = {}

        def run(name):
            try:
                results[name] = deliver(party_id=party.pk)
            finally:
                connection.close()

        first = threading.Thread(target=run, args=("first",))
        first.start()
        deadline = timezone.now() + timedelta(seconds=20)
        while len(partner.received) < 5 and timezone.now() < deadline:
            threading.Event().wait(0.05)  # past the 1 s lease: 5 sends of 0.3 s
        second = threading.Thread(target=run, args=("second",))
        second.start()
        second.join(20)
        first.join(20)
    paths = [path for _, path, _ in partner.received]
    assert paths == [f"/bookings/NL/CBK/booking_locations/{e.uid}" for e in evses]
    assert partner.most_in_flight == 1
    assert results["first"].sent == 8 and results["second"].sent == 0
    assert not Push.objects.filter(state=Push.State.PENDING).exists()
