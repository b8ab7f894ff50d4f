"""A booking's hold at its charger, end to end: sweep -> worker task -> Redis bus -> csms ->
simulated charger over a real WebSocket, and back into the booking staff see; sessions that
fulfil bookings and charger reports that release their hold."""

import asyncio
import re
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from ocpp.exceptions import InternalError
from ocpp.v201 import call as call201

from bookings import holds
from bookings.models import Booking, Status, TokenType
from bookings.services import Actor, booking_cancel, booking_change
from bookings.sweeps import sweep_no_shows, sweep_reservations
from bookings.tasks import reserve_now_task
from chargers.models import ChargerReservation, ChargingSession, Reservation
from locations.models import ConnectorStandard
from tests.bookings.factories import BookingFactory, BookingTokenFactory
from tests.chargers.fixtures import wait_for
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _cp(version="1.6", evses=2):
    cp = ChargePointFactory(ocpp_version=version)
    # A one-minute grid lets tests book "in five minutes" and move bookings by minutes.
    BookingPolicyFactory(location=cp.location, slot_step_minutes=1, min_duration_minutes=1)
    for n in range(1, evses + 1):
        EVSEFactory(charge_point=cp, ocpp_evse_id=n)
    return cp


def _booking(cp, *, evse=2, starts_in=timedelta(minutes=5), token="DRIVER-1", **kwargs):
    start = (timezone.now() + starts_in).replace(second=0, microsecond=0)
    booking = BookingFactory(evse=cp.evses.get(ocpp_evse_id=evse), start=start, **kwargs)
    BookingTokenFactory(booking=booking, uid=token, type=TokenType.RFID)
    return booking


def _received(sim, action):
    return [r.payload for r in sim.received if r.action == action]


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def test_sweep_reserves_16_and_201_chargers_and_booking_shows_held(stack):
    cp16, cp201 = _cp("1.6"), _cp("2.0.1")
    sim16, sim201 = stack.charger(cp16), stack.charger(cp201)
    b16 = _booking(cp16, token="DRIVER-16")
    b201 = _booking(cp201, token="DRIVER-201")
    connector = b201.evse.connectors.get()
    connector.standard, connector.format = ConnectorStandard.IEC_62196_T2_COMBO, "CABLE"
    connector.save()
    b201.connector = connector
    b201.save()
    later = _booking(cp16, evse=1, starts_in=timedelta(hours=2))  # not in its window yet

    assert sweep_reservations(enqueue=False)["reserve"] == 2

    r16 = Reservation.objects.get(booking_id=b16.pk)
    r201 = Reservation.objects.get(booking_id=b201.pk)
    expiry16 = (b16.start + timedelta(minutes=15)).replace(microsecond=0)
    expiry201 = (b201.start + timedelta(minutes=15)).replace(microsecond=0)
    assert _received(sim16, "ReserveNow") == [
        {"connector_id": 2, "expiry_date": _iso(expiry16), "id_tag": "DRIVER-16",
         "reservation_id": r16.pk},
    ]  # fmt: skip
    assert _received(sim201, "ReserveNow") == [
        {"id": r201.pk, "expiry_date_time": _iso(expiry201),
         "id_token": {"id_token": "DRIVER-201", "type": "ISO14443"}, "evse_id": 2,
         "connector_type": "cCCS2"},
    ]  # fmt: skip
    for booking in (b16, b201):
        booking.refresh_from_db()
        assert booking.charger_reservation == ChargerReservation.HELD
        assert not booking.needs_attention
        assert booking.transitions.filter(event="CHARGER", code="HELD").exists()
        # In the location's zone, labelled, like the rest of the desk.
        assert re.fullmatch(
            r"Held at the charger until \d\d:\d\d \((\w+, )?UTC[+-]\d+(:\d\d)?\)\.",
            booking.charger_reservation_detail,
        )
    later.refresh_from_db()
    assert later.charger_reservation == ChargerReservation.NOT_SENT
    assert not Reservation.objects.filter(booking_id=later.pk).exists()


def test_reserve_runs_twice_sends_one_reserve_now(stack):
    cp = _cp("1.6")
    sim = stack.charger(cp)
    booking = _booking(cp)
    reserve_now_task(booking.pk)
    reserve_now_task(booking.pk)
    sweep_reservations(enqueue=False)
    assert len(_received(sim, "ReserveNow")) == 1
    assert Reservation.objects.get(booking_id=booking.pk).attempts == 1


def test_cancelled_booking_gets_cancel_reservation(stack, staff_user):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp)
    sweep_reservations(enqueue=False)
    reservation = Reservation.objects.get(booking_id=booking.pk)
    assert reservation.pk in sim.reservations

    booking_cancel(booking=booking.pk, actor=Actor.staff(staff_user), override_reason="sick")

    assert _received(sim, "CancelReservation") == [{"reservation_id": reservation.pk}]
    assert sim.reservations == {}
    reservation.refresh_from_db()
    booking.refresh_from_db()
    assert reservation.status == ChargerReservation.CANCELED
    assert booking.status == Status.CANCELED
    assert booking.charger_reservation == ChargerReservation.RELEASED


def test_moved_booking_is_cancelled_and_reserved_at_new_evse(stack, staff_user):
    cp = _cp("1.6")
    sim = stack.charger(cp)
    booking = _booking(cp, evse=2)
    sweep_reservations(enqueue=False)
    old = Reservation.objects.get(booking_id=booking.pk)

    booking_change(
        booking=booking.pk, actor=Actor.staff(staff_user), evse=cp.evses.get(ocpp_evse_id=1),
        override_reason="driver asked",
    )  # fmt: skip

    new = Reservation.objects.get(booking_id=booking.pk, is_current=True)
    assert new.pk != old.pk
    assert _received(sim, "CancelReservation") == [{"reservation_id": old.pk}]
    assert [(p["connector_id"], p["reservation_id"]) for p in _received(sim, "ReserveNow")] == [
        (2, old.pk),
        (1, new.pk),
    ]
    assert list(sim.reservations) == [new.pk]
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.HELD


def test_moved_booking_found_by_sweep_when_task_lost(stack):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp)
    sweep_reservations(enqueue=False)
    old = Reservation.objects.get(booking_id=booking.pk)
    # Moved by a write whose on-commit task was lost (e.g. Redis restarted): only the sweep
    # can notice, from the database.
    later = booking.start + timedelta(minutes=2)
    type(booking).objects.filter(pk=booking.pk).update(
        period=(later, later + timedelta(hours=1)),
        blocked_period=(later, later + timedelta(hours=1)),
    )
    assert sweep_reservations(enqueue=False) == {
        "resend": 0,
        "released": 1,
        "reserve": 0,
        "flagged": 0,
    }
    assert _received(sim, "CancelReservation") == [{"reservation_id": old.pk}]
    new = Reservation.objects.get(booking_id=booking.pk, is_current=True)
    assert new.status == ChargerReservation.HELD
    assert list(sim.reservations) == [new.pk]


@pytest.mark.parametrize(
    ("mode", "state"),
    [
        ("occupied", ChargerReservation.OCCUPIED),
        ("faulted", ChargerReservation.FAULTED),
        ("unavailable", ChargerReservation.UNAVAILABLE),
        ("rejected", ChargerReservation.REJECTED),
    ],
)
def test_refusing_charger_is_recorded_and_retried_while_there_is_time(stack, mode, state):
    cp = _cp("1.6")
    sim = stack.charger(cp, mode=mode)
    booking = _booking(cp, starts_in=timedelta(minutes=8))
    now = timezone.now()
    sweep_reservations(now=now, enqueue=False)
    booking.refresh_from_db()
    assert booking.charger_reservation == state
    assert re.search(r"Retrying at \d\d:\d\d:\d\d \(", booking.charger_reservation_detail)
    assert " UTC (attempt" not in booking.charger_reservation_detail

    sweep_reservations(now=now + timedelta(seconds=10), enqueue=False)  # backoff not over
    assert len(_received(sim, "ReserveNow")) == 1

    sim.mode = "accept"
    sweep_reservations(now=now + timedelta(seconds=31), enqueue=False)
    assert len(_received(sim, "ReserveNow")) == 2
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.HELD
    assert Reservation.objects.get(booking_id=booking.pk).attempts == 2


def test_offline_charger_retried_with_backoff_then_flagged(stack):
    cp = _cp("2.0.1")
    booking = _booking(cp, starts_in=timedelta(minutes=6))
    now = timezone.now()
    sent_at = []
    until_start = int((booking.start - now).total_seconds())
    for offset in range(0, until_start, 15):  # a sweep every 15 s until the start
        at = now + timedelta(seconds=offset)
        if sweep_reservations(now=at, enqueue=False)["reserve"]:
            sent_at.append(offset)
    assert sent_at == [0, 30, 90, 210]  # backoff 30, 60, 120 s; the next (240 s) is past start
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.OFFLINE
    assert not booking.needs_attention

    assert sweep_reservations(now=booking.start + timedelta(seconds=1), enqueue=False) == {
        "resend": 0, "released": 0, "reserve": 0, "flagged": 1,
    }  # fmt: skip
    booking.refresh_from_db()
    assert booking.needs_attention
    assert "Started without a reservation held" in booking.charger_reservation_detail

    sweep_no_shows(now=booking.start + timedelta(minutes=16), enqueue=False)
    booking.refresh_from_db()
    assert booking.status == Status.NO_SHOW


def test_offline_charger_that_comes_back_gets_the_reservation(stack):
    cp = _cp("1.6")
    booking = _booking(cp)
    now = timezone.now()
    sweep_reservations(now=now, enqueue=False)
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.OFFLINE
    sim = stack.charger(cp)
    sweep_reservations(now=now + timedelta(seconds=31), enqueue=False)
    assert len(_received(sim, "ReserveNow")) == 1
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.HELD


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_session_with_booking_token_fulfils_booking_and_uses_its_hold(stack, version):
    cp = _cp(version)
    sim = stack.charger(cp)
    booking = _booking(cp, token="DRIVER-9")
    sweep_reservations(enqueue=False)
    reservation = Reservation.objects.get(booking_id=booking.pk)

    transaction_id = stack.run(sim.start_session("DRIVER-9", evse=2))

    booking.refresh_from_db()
    reservation.refresh_from_db()
    session = ChargingSession.objects.get(charge_point=cp, transaction_id=transaction_id)
    assert booking.status == Status.FULFILLED
    assert booking.fulfilled_at == session.started_at
    assert session.booking_id == booking.pk
    assert reservation.status == ChargerReservation.USED
    assert booking.charger_reservation == ChargerReservation.RELEASED
    assert booking.charger_reservation_detail == f"Used by session {transaction_id}."
    audits = list(booking.transitions.filter(event__in=["STATUS", "CHARGER"]).order_by("id"))
    assert [(a.event, a.to_status, a.code, a.actor_type, a.actor_label) for a in audits] == [
        ("CHARGER", Status.RESERVED, ChargerReservation.HELD, "CHARGER", cp.identity),
        ("STATUS", Status.FULFILLED, "", "CHARGER", cp.identity),
        ("CHARGER", Status.FULFILLED, ChargerReservation.RELEASED, "CHARGER", cp.identity),
    ]
    # The charger consumed the reservation: nothing is cancelled or placed again for it.
    later = booking.start + timedelta(minutes=20)
    assert sweep_reservations(now=later, enqueue=False) == {
        "resend": 0, "released": 0, "reserve": 0, "flagged": 0,
    }  # fmt: skip
    assert sweep_no_shows(now=later, enqueue=False) == []
    assert _received(sim, "CancelReservation") == []
    assert len(_received(sim, "ReserveNow")) == 1


def test_session_with_other_token_or_outside_window_leaves_bookings(stack):
    cp = _cp("1.6")
    soon = _booking(cp, evse=1, token="DRIVER-1")
    later = _booking(cp, evse=1, token="DRIVER-2", starts_in=timedelta(hours=3))
    sim = stack.charger(cp)
    stack.run(sim.start_session("SOMEONE-ELSE", evse=1))
    stack.run(sim.start_session("DRIVER-2", evse=1))
    soon.refresh_from_db()
    later.refresh_from_db()
    assert (soon.status, later.status) == (Status.RESERVED, Status.RESERVED)
    assert ChargingSession.objects.filter(charge_point=cp, booking_id__isnull=True).count() == 2


def _started_201(transaction_id, token, *, evse=2, reservation_id=None):
    return call201.TransactionEvent(
        event_type="Started", timestamp=_iso(timezone.now()), trigger_reason="Authorized",
        seq_no=0, transaction_info={"transaction_id": transaction_id},
        evse={"id": evse, "connector_id": 1}, id_token={"id_token": token, "type": "ISO14443"},
        reservation_id=reservation_id,
    )  # fmt: skip


def test_session_authorised_later_fulfils_booking_from_the_event_with_the_token(stack):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp, token="DRIVER-9")
    plugged_in = booking.start - timedelta(minutes=30)  # before the early start window
    stack.run(sim.cp.call(call201.TransactionEvent(
        event_type="Started", timestamp=_iso(plugged_in), trigger_reason="CablePluggedIn",
        seq_no=0, transaction_info={"transaction_id": "T-PLUG"},
        evse={"id": 2, "connector_id": 1},
    ), suppress=False))  # fmt: skip
    booking.refresh_from_db()
    assert booking.status == Status.RESERVED

    authorised = timezone.now().replace(microsecond=0)
    stack.run(sim.cp.call(call201.TransactionEvent(
        event_type="Updated", timestamp=_iso(authorised), trigger_reason="Authorized",
        seq_no=1, transaction_info={"transaction_id": "T-PLUG"},
        id_token={"id_token": "DRIVER-9", "type": "ISO14443"},
    ), suppress=False))  # fmt: skip

    booking.refresh_from_db()
    session = ChargingSession.objects.get(charge_point=cp, transaction_id="T-PLUG")
    assert (booking.status, booking.fulfilled_at) == (Status.FULFILLED, authorised)
    assert (session.started_at, session.booking_id) == (plugged_in, booking.pk)


def _waiting_for_a_lock():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def test_session_start_on_a_booking_locked_too_long_is_refused_whole_then_resent(stack):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp, token="DRIVER-9")
    sweep_reservations(enqueue=False)
    reservation = Reservation.objects.get(booking_id=booking.pk)
    audits = booking.transitions.count()
    started = _started_201("T-LOCKED", "DRIVER-9", reservation_id=reservation.pk)

    with transaction.atomic():
        Booking.objects.select_for_update().get(pk=booking.pk)  # e.g. a stuck writer
        with pytest.raises(InternalError):
            stack.run(sim.cp.call(started, suppress=False))
        # The charger was told the start failed, and nothing of it was written.
        assert not ChargingSession.objects.filter(charge_point=cp).exists()

    booking.refresh_from_db()
    reservation.refresh_from_db()
    assert booking.status == Status.RESERVED
    assert booking.charger_reservation == ChargerReservation.HELD
    assert booking.transitions.count() == audits
    assert reservation.status == ChargerReservation.HELD

    stack.run(sim.cp.call(started, suppress=False))  # the charger sends the start again
    booking.refresh_from_db()
    reservation.refresh_from_db()
    session = ChargingSession.objects.get(charge_point=cp, transaction_id="T-LOCKED")
    assert (booking.status, session.booking_id) == (Status.FULFILLED, booking.pk)
    assert reservation.status == ChargerReservation.USED
    assert booking.charger_reservation == ChargerReservation.RELEASED


def test_session_start_for_a_booking_cancelled_meanwhile_leaves_booking_and_hold(stack, staff_user):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp, token="DRIVER-9")
    sweep_reservations(enqueue=False)
    reservation = Reservation.objects.get(booking_id=booking.pk)
    started = _started_201("T-LATE", "DRIVER-9", reservation_id=reservation.pk)

    with transaction.atomic():
        Booking.objects.select_for_update().get(pk=booking.pk)
        answer = asyncio.run_coroutine_threadsafe(
            sim.cp.call(started, suppress=False), stack.loop.loop
        )
        wait_for(_waiting_for_a_lock)  # the session start waits for the booking...
        booking_cancel(booking=booking.pk, actor=Actor.staff(staff_user), override_reason="ill")
    answer.result(10)  # ...and is accepted once the cancel committed

    booking.refresh_from_db()
    reservation.refresh_from_db()
    session = ChargingSession.objects.get(charge_point=cp, transaction_id="T-LATE")
    assert session.booking_id is None
    assert booking.status == Status.CANCELED
    assert not booking.transitions.filter(to_status=Status.FULFILLED).exists()
    # The placement was not marked used: the cancel released it at the charger.
    assert reservation.status == ChargerReservation.CANCELED
    assert _received(sim, "CancelReservation") == [{"reservation_id": reservation.pk}]
    assert booking.charger_reservation == ChargerReservation.RELEASED


@pytest.mark.parametrize(("update", "status"), [("Expired", "EXPIRED"), ("Removed", "REMOVED")])
def test_charger_dropping_a_held_reservation_releases_the_booking_hold(stack, update, status):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp)
    sweep_reservations(enqueue=False)
    reservation = Reservation.objects.get(booking_id=booking.pk)
    assert reservation.status == ChargerReservation.HELD

    stack.run(sim.cp.call(call201.ReservationStatusUpdate(
        reservation_id=reservation.pk, reservation_update_status=update
    )))  # fmt: skip

    reservation.refresh_from_db()
    booking.refresh_from_db()
    assert reservation.status == status
    assert booking.status == Status.RESERVED
    assert booking.charger_reservation == ChargerReservation.RELEASED
    assert booking.charger_reservation_detail == (
        f"The charger reports the reservation {update.lower()}."
    )
    audit = booking.transitions.filter(event="CHARGER").latest("id")
    assert (audit.code, audit.actor_type, audit.actor_label) == (
        ChargerReservation.RELEASED, "CHARGER", cp.identity,
    )  # fmt: skip
    # Dropped by the charger: not cancelled there, and not placed again.
    assert sweep_reservations(enqueue=False) == {
        "resend": 0,
        "released": 0,
        "reserve": 0,
        "flagged": 0,
    }
    assert _received(sim, "CancelReservation") == []


def test_nobody_comes_booking_becomes_no_show_and_charger_reservation_cancelled(stack):
    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp)
    sweep_reservations(enqueue=False)
    reservation = Reservation.objects.get(booking_id=booking.pk)

    assert sweep_no_shows(now=booking.start + timedelta(minutes=14), enqueue=False) == []
    assert sweep_no_shows(now=booking.start + timedelta(minutes=16), enqueue=False) == [booking.pk]

    booking.refresh_from_db()
    reservation.refresh_from_db()
    assert booking.status == Status.NO_SHOW
    assert _received(sim, "CancelReservation") == [{"reservation_id": reservation.pk}]
    assert reservation.status == ChargerReservation.CANCELED
    assert booking.charger_reservation == ChargerReservation.RELEASED


def test_worker_crash_after_claim_is_resent_by_the_sweep(stack):
    cp = _cp("1.6")
    sim = stack.charger(cp)
    booking = _booking(cp)
    now = timezone.now()
    placement = holds.placement_for(booking)
    from chargers.services import reservation_claim

    claimed = reservation_claim(booking_id=booking.pk, placement=placement, now=now)
    assert claimed.status == ChargerReservation.SENDING  # ...and the worker dies here

    assert sweep_reservations(now=now + timedelta(seconds=30), enqueue=False)["reserve"] == 0
    assert sweep_reservations(now=now + timedelta(seconds=61), enqueue=False)["reserve"] == 1
    assert [p["reservation_id"] for p in _received(sim, "ReserveNow")] == [claimed.pk]
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.HELD


def test_charger_without_reservation_support_is_never_sent(stack):
    cp = _cp("1.6")
    sim = stack.charger(cp)
    evse = cp.evses.get(ocpp_evse_id=2)
    evse.capabilities = []
    evse.save()
    booking = _booking(cp, charger_reservation=ChargerReservation.NOT_SUPPORTED)
    assert sweep_reservations(enqueue=False) == {
        "resend": 0,
        "released": 0,
        "reserve": 0,
        "flagged": 0,
    }
    assert _received(sim, "ReserveNow") == []
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.NOT_SUPPORTED


def test_two_csms_processes_each_reach_their_own_chargers(stack):
    second = stack.start_csms()
    cp_a, cp_b = _cp("1.6"), _cp("2.0.1")
    sim_a = stack.charger(cp_a)
    sim_b = stack.charger(cp_b, csms=second)
    a, b = _booking(cp_a), _booking(cp_b, token="DRIVER-2")
    sweep_reservations(enqueue=False)
    assert len(_received(sim_a, "ReserveNow")) == 1
    assert len(_received(sim_b, "ReserveNow")) == 1
    for booking in (a, b):
        booking.refresh_from_db()
        assert booking.charger_reservation == ChargerReservation.HELD
    assert set(stack.nodes[0].connections) == {cp_a.identity}
    assert set(second.connections) == {cp_b.identity}


def test_claims_given_back_after_a_bus_error_are_sent_by_the_retry(stack):
    from chargers.services import reservation_claim, reservations_unclaim

    cp = _cp("2.0.1")
    sim = stack.charger(cp)
    booking = _booking(cp)
    claimed = reservation_claim(
        booking_id=booking.pk, placement=holds.placement_for(booking), now=timezone.now()
    )
    reserve_now_task(booking.pk)  # the claim is held: nothing is sent twice
    assert _received(sim, "ReserveNow") == []
    reservations_unclaim(reservation_ids=[claimed.pk], detail="bus down", now=timezone.now())
    reserve_now_task(booking.pk)  # Celery's retry
    assert [p["id"] for p in _received(sim, "ReserveNow")] == [claimed.pk]
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.HELD


def test_ocpi_reserve_now_booking_is_retried_while_it_lasts(stack):
    cp = _cp("1.6")
    booking = _booking(
        cp, starts_in=timedelta(minutes=-1), channel="COMMAND", emsp_country_code="NL",
        emsp_party_id="EMS", request_id="RSV-1",
    )  # fmt: skip
    now = timezone.now()
    assert sweep_reservations(now=now, enqueue=False) == {
        "resend": 0, "released": 0, "reserve": 1, "flagged": 0,
    }  # fmt: skip
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.OFFLINE
    sim = stack.charger(cp)
    sweep_reservations(now=now + timedelta(seconds=31), enqueue=False)
    assert len(_received(sim, "ReserveNow")) == 1
    booking.refresh_from_db()
    assert booking.charger_reservation == ChargerReservation.HELD
