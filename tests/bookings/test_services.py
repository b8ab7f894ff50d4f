"""Every rule and refusal of the booking lifecycle, with its code and the sentence a person reads.

The clock is passed in (`now=`); the site is in Amsterdam and 2026-06-01 is a Monday.
"""

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import DatabaseError, connection

from bookings import exceptions as exc
from bookings.models import (
    Booking,
    BookingRequest,
    BookingToken,
    BookingTransition,
    CanceledReason,
    ChargerReservation,
    RequestStatus,
    Role,
    Status,
)
from bookings.selectors import Criteria, location_availability
from bookings.services import (
    Actor,
    RequestData,
    TokenData,
    booking_accept,
    booking_cancel,
    booking_change,
    booking_check_in,
    booking_create,
    booking_fail,
    booking_for_session,
    booking_fulfil,
    booking_mark_no_show,
    booking_record_charger_state,
    booking_reject,
    booking_request_submit,
)
from chargers.models import ChargingSession
from locations.models import EVSEStatus
from tests.bookings.factories import BookingFactory, DriverTokenFactory
from tests.locations.factories import (
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
    ExceptionalPeriodFactory,
    LocationFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # Monday 08:00 in Amsterdam
EMSP = Actor.emsp("de", "ems")
SYSTEM = Actor.system("test")


def ams(h, m=0, day=2) -> datetime:
    return datetime(2026, 6, day, h, m, tzinfo=AMS)


@pytest.fixture
def evse():
    location = LocationFactory(ocpi_id="LOC1")
    BookingPolicyFactory(
        location=location, min_duration_minutes=30, max_duration_minutes=180,
        buffer_minutes=10, min_notice_minutes=60, horizon_days=14,
    )  # fmt: skip
    return EVSEFactory(charge_point__location=location, uid="EVSE1")


@pytest.fixture
def staff(staff_user):
    return Actor.staff(staff_user)


def create(evse, start, end, actor=SYSTEM, now=NOW, **kwargs):
    return booking_create(evse=evse, start=start, end=end, actor=actor, now=now, **kwargs)


# --- create: success --------------------------------------------------------------------------


def test_booking_create_reserves_the_slot_with_terms_and_audit(evse, staff):
    booking = create(evse, ams(10), ams(11), actor=staff)
    booking.refresh_from_db()
    assert booking.status == Status.RESERVED
    assert booking.period.lower == ams(10) and booking.period.upper == ams(11)
    assert booking.blocked_period.upper == ams(11, 10)  # the 10-minute buffer
    assert booking.channel == Booking.Channel.STAFF and booking.created_by == staff.user
    assert booking.terms["cancel_until_minutes"] == 15
    assert booking.charger_reservation == ChargerReservation.NOT_SENT
    (audit,) = booking.transitions.all()
    assert (audit.event, audit.to_status, audit.actor_label) == (
        BookingTransition.Event.CREATED, Status.RESERVED, "desk",
    )  # fmt: skip


def test_booking_create_uses_the_drivers_tokens(evse):
    token = DriverTokenFactory()
    booking = create(evse, ams(10), ams(11), driver=token.driver)
    assert [t.uid for t in booking.tokens.all()] == [token.uid]


def test_booking_create_non_reservable_evse_is_not_sent_to_the_charger(evse):
    evse.capabilities = []
    evse.save()
    booking = create(evse, ams(10), ams(11))
    assert booking.charger_reservation == ChargerReservation.NOT_SUPPORTED


def test_booking_create_back_to_back_after_the_buffer(evse):
    create(evse, ams(10), ams(11))
    second = create(evse, ams(11, 15), ams(12))  # 11:00 + 10 min buffer, on the grid
    assert second.status == Status.RESERVED


def test_booking_create_offline_charger_still_books(evse):
    evse.charge_point.is_connected = False
    evse.charge_point.save()
    assert create(evse, ams(10), ams(11)).status == Status.RESERVED


# --- create: every refusal --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "error", "code", "words"),
    [
        (ams(7, day=1), ams(8, day=1), exc.InThePast, "in_the_past", "in the past"),
        (ams(8, 30, day=1), ams(9, 30, day=1), exc.TooLittleNotice, "too_little_notice",
         "60 minutes' notice"),
        (ams(10, day=15), ams(11, day=15), exc.BeyondHorizon, "beyond_horizon", "14 days ahead"),
        (ams(10), ams(10, 15), exc.TooShort, "too_short", "at least 30 minutes"),
        (ams(10), ams(13, 15), exc.TooLong, "too_long", "at most 180 minutes"),
        (ams(10, 5), ams(11, 5), exc.MisalignedSlot, "misaligned_slot", "15-minute grid"),
        (ams(11), ams(10), exc.InvalidRequest, "invalid_request", "end must be after the start"),
    ],
)  # fmt: skip
def test_booking_create_refusals(evse, start, end, error, code, words):
    with pytest.raises(error) as info:
        create(evse, start, end)
    assert info.value.code == code
    assert words in info.value.message
    assert not Booking.objects.exists()


def test_booking_create_refuses_naive_times(evse):
    with pytest.raises(exc.InvalidRequest, match="time zone"):
        create(evse, datetime(2026, 6, 2, 10), datetime(2026, 6, 2, 11))


def test_booking_create_refuses_a_taken_slot_naming_the_buffer(evse):
    create(evse, ams(10), ams(11))
    with pytest.raises(exc.SlotUnavailable) as info:
        create(evse, ams(11), ams(12))  # inside the 10-minute buffer
    assert info.value.code == "slot_unavailable"
    assert "already booked" in info.value.message and "10 minutes kept free" in info.value.message
    with pytest.raises(exc.SlotUnavailable):
        create(evse, ams(9), ams(10))  # would end without its own buffer before 10:00
    assert create(evse, ams(8, 45), ams(9, 45)).status == Status.RESERVED


def test_booking_create_outside_opening_hours(evse):
    location = evse.charge_point.location
    location.twentyfourseven = False
    location.save()
    RegularHoursFactory(location=location, weekday=2, period_begin="08:00", period_end="20:00")
    with pytest.raises(exc.OutsideOpeningHours) as info:
        create(evse, ams(19, 30), ams(20, 30))
    assert info.value.code == "outside_opening_hours"
    assert "closed" in info.value.message
    assert create(evse, ams(19), ams(20)).status == Status.RESERVED


def test_booking_create_exceptional_closing_refuses(evse):
    ExceptionalPeriodFactory(
        location=evse.charge_point.location, period_begin=ams(12), period_end=ams(13)
    )
    with pytest.raises(exc.OutsideOpeningHours):
        create(evse, ams(11, 30), ams(12, 30))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"booking_enabled": False}, "switched off"),
        ({"status": EVSEStatus.OUTOFORDER}, "out of order"),
        ({"status": EVSEStatus.REMOVED}, "removed"),
    ],
)
def test_booking_create_unbookable_evse(evse, fields, words):
    for name, value in fields.items():
        setattr(evse, name, value)
    evse.save()
    with pytest.raises(exc.NotBookable) as info:
        create(evse, ams(10), ams(11))
    assert info.value.code == "not_bookable" and words in info.value.message


def test_booking_create_same_token_cannot_hold_two_overlapping_bookings(evse):
    other = EVSEFactory(charge_point=evse.charge_point)
    token = TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1")
    create(evse, ams(10), ams(11), tokens=[token])
    with pytest.raises(exc.SlotUnavailable) as info:
        create(other, ams(10, 30), ams(11, 30), tokens=[token])
    assert info.value.code == "token_overlap"
    assert "token already holds a booking" in info.value.message


def test_booking_create_token_overlap_where_the_policy_allows_it(evse):
    policy = evse.charge_point.location.booking_policy
    policy.overlapping_bookings_allowed = True
    policy.save()
    other = EVSEFactory(charge_point=evse.charge_point)
    token = TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1")
    create(evse, ams(10), ams(11), tokens=[token])
    assert create(other, ams(10, 30), ams(11, 30), tokens=[token]).status == Status.RESERVED


@pytest.mark.django_db(transaction=True)
def test_booking_create_token_overlap_outside_a_transaction_writes_nothing(evse):
    other = EVSEFactory(charge_point=evse.charge_point)
    token = TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1")
    create(evse, ams(10), ams(11), tokens=[token])
    before = (Booking.objects.count(), BookingToken.objects.count(),
              BookingTransition.objects.count())  # fmt: skip
    with pytest.raises(exc.SlotUnavailable) as info:
        create(other, ams(10, 30), ams(11, 30), tokens=[token])
    assert info.value.code == "token_overlap"
    assert (Booking.objects.count(), BookingToken.objects.count(),
            BookingTransition.objects.count()) == before  # fmt: skip
    # Another token, or the same one later, books as usual on the same connection.
    later = create(other, ams(12), ams(13), tokens=[token])
    assert [t.uid for t in later.tokens.all()] == ["TOK1"]


def test_booking_change_refuses_a_time_its_token_already_holds(evse):
    # A change is held to the token rule as a new booking is (it once was not).
    other = EVSEFactory(charge_point=evse.charge_point)
    token = TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1")
    create(evse, ams(10), ams(11), tokens=[token])
    second = create(other, ams(12), ams(13), tokens=[token])
    with pytest.raises(exc.SlotUnavailable) as info:
        booking_change(booking=second, actor=EMSP, start=ams(10, 30), end=ams(11, 30), now=NOW)
    assert info.value.code == "token_overlap"
    second.refresh_from_db()
    assert (second.period.lower, second.period.upper) == (ams(12), ams(13))
    assert second.transitions.count() == 1  # no CHANGED audit row for the refused change


def test_booking_request_change_onto_a_time_its_token_holds_is_declined(evse):
    other = EVSEFactory(charge_point=evse.charge_point, uid="EVSE2")
    token = TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1")
    create(evse, ams(10), ams(11), tokens=[token], actor=EMSP, request_id="R-1")
    data = RequestData(request_id="R-2", location_id="LOC1", evse_uid="EVSE2", start=ams(12),
                       end=ams(13), authorization_reference="A2", tokens=(token,))  # fmt: skip
    booking_request_submit(actor=EMSP, data=data, payload={"n": 1}, now=NOW)
    moved = RequestData(**{**data.__dict__, "start": ams(10, 30), "end": ams(11, 30)})
    booking = booking_request_submit(actor=EMSP, data=moved, payload={"n": 2}, now=NOW).booking
    assert (booking.period.lower, booking.period.upper, booking.evse_id) == (
        ams(12), ams(13), other.pk,
    )  # fmt: skip
    last = booking.requests.order_by("received_at", "id").last()
    assert (last.request_status, last.reason_code) == (RequestStatus.DECLINED, "token_overlap")


def test_booking_change_with_new_tokens_is_all_or_nothing(evse):
    # The request moves the booking and names a token that is busy then: neither happens.
    other = EVSEFactory(charge_point=evse.charge_point, uid="EVSE2")
    busy = TokenData("DE", "EMS", "BUSY", "RFID", "DE-EMS-2")
    mine = TokenData("DE", "EMS", "MINE", "RFID", "DE-EMS-1")
    create(evse, ams(14), ams(15), tokens=[busy], actor=EMSP, request_id="R-1")
    data = RequestData(request_id="R-2", location_id="LOC1", evse_uid="EVSE2", start=ams(10),
                       end=ams(11), authorization_reference="A2", tokens=(mine,))  # fmt: skip
    booking_request_submit(actor=EMSP, data=data, payload={"n": 1}, now=NOW)
    change = RequestData(**{**data.__dict__, "start": ams(14), "end": ams(15), "tokens": (busy,)})
    booking = booking_request_submit(actor=EMSP, data=change, payload={"n": 2}, now=NOW).booking
    assert (booking.period.lower, booking.evse_id) == (ams(10), other.pk)
    assert [t.uid for t in booking.tokens.all()] == ["MINE"]
    assert booking.requests.order_by("id").last().reason_code == "token_overlap"


@pytest.mark.parametrize(
    ("owner", "allowed"),
    [(("DE", "EMS"), False), (("DE", "XYZ"), True), (("NL", "EMS"), True)],
)
def test_token_rule_is_per_token_owner(evse, owner, allowed):
    # One eMSP's RFID uid does not block another's that happens to carry the same uid.
    other = EVSEFactory(charge_point=evse.charge_point)
    create(evse, ams(10), ams(11), tokens=[TokenData("DE", "EMS", "04AB", "RFID", "C1")])
    second = [TokenData(*owner, "04AB", "RFID", "C2")]
    if allowed:
        assert create(other, ams(10), ams(11), tokens=second).status == Status.RESERVED
    else:
        with pytest.raises(exc.SlotUnavailable):
            create(other, ams(10), ams(11), tokens=second)


def test_token_check_follows_a_moved_and_a_canceled_booking(evse):
    # The rule reads copies of the booking's period and status on its token rows, which the
    # database keeps: whatever changes the booking, the rule sees the change.
    other = EVSEFactory(charge_point=evse.charge_point)
    token = TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1")
    first = create(evse, ams(10), ams(11), tokens=[token])
    booking_change(booking=first, actor=SYSTEM, start=ams(14), end=ams(15), now=NOW)
    create(other, ams(10), ams(11), tokens=[token])  # free again for this token
    with pytest.raises(exc.SlotUnavailable):
        create(other, ams(14, 30), ams(15, 30), tokens=[token])
    booking_cancel(booking=first, actor=SYSTEM, now=NOW)
    second = create(other, ams(14, 30), ams(15, 30), tokens=[token])  # canceled: no longer blocks
    assert list(BookingToken.objects.filter(booking=first).values_list("blocking", flat=True)) == [
        False
    ]
    # An update that bypasses the services is followed too.
    Booking.objects.filter(pk=second.pk).update(
        period=(ams(18), ams(19)), blocked_period=(ams(18), ams(19, 10))
    )
    create(evse, ams(14, 30), ams(15, 30), tokens=[token])
    with pytest.raises(exc.SlotUnavailable):
        create(evse, ams(18), ams(19), tokens=[token])


def test_booking_create_unknown_connector(evse):
    with pytest.raises(exc.UnknownEVSE, match="no connector"):
        create(evse, ams(10), ams(11), connector_id="9")


# --- change -----------------------------------------------------------------------------------


def test_booking_change_moves_in_time_and_evse_in_one_row(evse, staff):
    booking = create(evse, ams(10), ams(11))
    other = EVSEFactory(charge_point=evse.charge_point)
    moved = booking_change(booking=booking.pk, actor=staff, start=ams(12), end=ams(13, 30),
                           evse=other, now=NOW)  # fmt: skip
    moved.refresh_from_db()
    assert moved.pk == booking.pk and moved.uid == booking.uid
    assert (moved.evse_id, moved.period.lower, moved.period.upper) == (other.pk, ams(12),
                                                                       ams(13, 30))  # fmt: skip
    assert moved.blocked_period.upper == ams(13, 40)
    assert moved.status == Status.RESERVED
    audit = moved.transitions.get(event=BookingTransition.Event.CHANGED)
    assert audit.details["before"]["evse"] == evse.uid and audit.details["after"]["evse"] == (
        other.uid
    )
    assert Booking.objects.count() == 1


def test_booking_change_may_overlap_its_own_old_slot(evse):
    booking = create(evse, ams(10), ams(11))
    moved = booking_change(booking=booking, actor=SYSTEM, start=ams(10, 30), end=ams(11, 30),
                           now=NOW)  # fmt: skip
    assert moved.period.lower == ams(10, 30)


def test_booking_change_into_a_taken_slot_keeps_the_booking_as_it_was(evse):
    booking = create(evse, ams(10), ams(11))
    create(evse, ams(14), ams(15))
    with pytest.raises(exc.SlotUnavailable):
        booking_change(booking=booking, actor=SYSTEM, start=ams(14), end=ams(15), now=NOW)
    booking.refresh_from_db()
    assert booking.period.lower == ams(10) and booking.status == Status.RESERVED
    assert not booking.transitions.filter(event=BookingTransition.Event.CHANGED).exists()


def test_booking_change_nothing_changed_writes_nothing(evse):
    booking = create(evse, ams(10), ams(11))
    booking_change(booking=booking, actor=SYSTEM, start=ams(10), end=ams(11), now=NOW)
    assert booking.transitions.count() == 1


def test_booking_change_to_another_location_is_refused(evse):
    booking = create(evse, ams(10), ams(11))
    elsewhere = EVSEFactory()
    with pytest.raises(exc.UnknownEVSE, match="same location"):
        booking_change(booking=booking, actor=SYSTEM, evse=elsewhere, now=NOW)


def test_booking_change_emsp_bound_by_change_not_allowed(evse):
    booking = create(evse, ams(10), ams(11), actor=EMSP, request_id="R1")
    Booking.objects.filter(pk=booking.pk).update(terms={**booking.terms,
                                                        "change_not_allowed": True})  # fmt: skip
    with pytest.raises(exc.ChangeNotAllowed) as info:
        booking_change(booking=booking, actor=EMSP, start=ams(12), end=ams(13), now=NOW)
    assert info.value.code == "change_not_allowed"
    assert "do not allow changes" in info.value.message


def test_booking_change_deadline_binds_emsp_and_staff_override_is_recorded(evse, staff):
    booking = create(evse, ams(10), ams(11), actor=EMSP, request_id="R1")
    late = ams(9, 50)  # change_until_minutes = 15 -> deadline 09:45
    with pytest.raises(exc.TooLateToChange) as info:
        booking_change(booking=booking, actor=EMSP, start=ams(12), end=ams(13), now=late)
    assert info.value.code == "too_late_to_change"
    assert "15 minutes before the start" in info.value.message
    with pytest.raises(exc.TooLateToChange, match="Give a reason to override"):
        booking_change(booking=booking, actor=staff, start=ams(12), end=ams(13), now=late)
    moved = booking_change(booking=booking, actor=staff, start=ams(12), end=ams(13), now=late,
                           override_reason="driver called, stuck in traffic")  # fmt: skip
    assert moved.period.lower == ams(12)
    audit = moved.transitions.get(event=BookingTransition.Event.CHANGED)
    assert audit.reason == "driver called, stuck in traffic"


def test_booking_change_final_booking_is_refused(evse):
    booking = BookingFactory(evse=evse, start=ams(10), status=Status.FULFILLED)
    with pytest.raises(exc.InvalidTransition, match="fulfilled booking cannot be changed"):
        booking_change(booking=booking, actor=SYSTEM, start=ams(12), end=ams(13), now=NOW)


# --- cancel -----------------------------------------------------------------------------------


def test_booking_cancel_frees_the_slot_with_reason_and_who(evse):
    booking = create(evse, ams(10), ams(11), actor=EMSP, request_id="R1")
    canceled = booking_cancel(booking=booking, actor=EMSP, reason=CanceledReason.TRAFFIC, now=NOW)
    canceled.refresh_from_db()
    assert canceled.status == Status.CANCELED
    assert (canceled.canceled_reason, canceled.canceled_by_role, canceled.canceled_at) == (
        CanceledReason.TRAFFIC, Role.EMSP, NOW,
    )  # fmt: skip
    assert create(evse, ams(10), ams(11)).status == Status.RESERVED


def test_booking_cancel_deadline_binds_emsp_and_staff_override(evse, staff):
    booking = create(evse, ams(10), ams(11), actor=EMSP, request_id="R1")
    late = ams(9, 50)
    with pytest.raises(exc.TooLateToCancel) as info:
        booking_cancel(booking=booking, actor=EMSP, now=late)
    assert info.value.code == "too_late_to_cancel"
    assert "cancels close 15 minutes before the start" in info.value.message
    with pytest.raises(exc.TooLateToCancel, match="Give a reason to override"):
        booking_cancel(booking=booking, actor=staff, now=late)
    canceled = booking_cancel(booking=booking, actor=staff, now=late,
                              reason=CanceledReason.BROKEN_CHARGER,
                              override_reason="charger broke")  # fmt: skip
    assert canceled.status == Status.CANCELED and canceled.canceled_by_role == Role.CPO
    audit = canceled.transitions.get(to_status=Status.CANCELED)
    assert "override: charger broke" in audit.reason and audit.code == "BROKEN_CHARGER"


def test_booking_cancel_unknown_reason_and_final_booking(evse):
    booking = create(evse, ams(10), ams(11))
    with pytest.raises(exc.InvalidRequest, match="not a cancellation reason"):
        booking_cancel(booking=booking, actor=SYSTEM, reason="BORED", now=NOW)
    booking_cancel(booking=booking, actor=SYSTEM, now=NOW)
    with pytest.raises(exc.InvalidTransition) as info:
        booking_cancel(booking=booking, actor=SYSTEM, now=NOW)
    assert info.value.code == "invalid_transition"
    assert info.value.message == "A canceled booking cannot become canceled."


# --- accept / reject / fail and illegal transitions ---------------------------------------------


def test_pending_booking_accept_reject_fail(evse):
    accepted = BookingFactory(evse=evse, start=ams(10), status=Status.PENDING)
    rejected = BookingFactory(evse=evse, start=ams(12), status=Status.PENDING)
    failed = BookingFactory(evse=evse, start=ams(14), status=Status.PENDING)
    assert booking_accept(booking=accepted, actor=SYSTEM, now=NOW).status == Status.RESERVED
    rejected = booking_reject(booking=rejected, actor=SYSTEM, code="slot_unavailable",
                              reason="taken", now=NOW)  # fmt: skip
    assert rejected.status == Status.REJECTED
    assert booking_fail(booking=failed, actor=SYSTEM, code="error", reason="boom",
                        now=NOW).status == Status.FAILED  # fmt: skip
    audit = rejected.transitions.get()
    assert (audit.from_status, audit.to_status, audit.code) == (
        Status.PENDING, Status.REJECTED, "slot_unavailable",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "service"),
    [
        (Status.RESERVED, booking_accept),
        (Status.CANCELED, booking_accept),
        (Status.RESERVED, booking_reject),
        (Status.FULFILLED, booking_fail),
        (Status.NO_SHOW, booking_fulfil),
        (Status.PENDING, booking_fulfil),
        (Status.CANCELED, booking_mark_no_show),
    ],
)
def test_illegal_transitions_are_refused(evse, status, service):
    booking = BookingFactory(evse=evse, start=ams(10), status=status)
    kwargs = {"booking": booking, "actor": SYSTEM, "now": ams(12)}
    if service in (booking_reject, booking_fail):
        kwargs.update(code="x", reason="y")
    if service is booking_fulfil:
        kwargs["at"] = ams(10)
    with pytest.raises(exc.InvalidTransition) as info:
        service(**kwargs)
    assert info.value.code == "invalid_transition"
    assert "booking cannot become" in info.value.message
    booking.refresh_from_db()
    assert booking.status == status


# --- fulfil and no-show -----------------------------------------------------------------------


def test_booking_fulfil_inside_the_window(evse):
    booking = create(evse, ams(10), ams(11))
    # early_start 10 min (policy default), noshow_timeout 15 min: [09:50, 10:15]
    fulfilled = booking_fulfil(booking=booking, actor=Actor.charger("CP"), at=ams(9, 50), now=NOW)
    fulfilled.refresh_from_db()
    assert fulfilled.status == Status.FULFILLED and fulfilled.fulfilled_at == ams(9, 50)


@pytest.mark.parametrize("at", [ams(9, 49), ams(10, 16)])
def test_booking_fulfil_outside_the_window_is_refused(evse, at):
    booking = create(evse, ams(10), ams(11))
    with pytest.raises(exc.InvalidRequest, match="outside the booking's window"):
        booking_fulfil(booking=booking, actor=SYSTEM, at=at, now=NOW)
    booking.refresh_from_db()
    assert booking.status == Status.RESERVED


def _no_notice(evse):
    policy = evse.charge_point.location.booking_policy
    policy.min_notice_minutes = 0
    policy.save()


def test_fulfilled_booking_keeps_its_slot_until_its_end(evse):
    # The driver is charging: the rest of the booked hour is not for someone else.
    _no_notice(evse)
    first = create(evse, ams(10), ams(11), tokens=[TokenData("DE", "EMS", "T1", "RFID", "C1")])
    booking_fulfil(booking=first, actor=Actor.charger("CP"), at=ams(10, 5), now=ams(10, 5))
    for start, end in ((ams(10, 30), ams(11, 30)), (ams(10, 30), ams(11))):
        with pytest.raises(exc.SlotUnavailable):
            create(evse, start, end, now=ams(10, 20))
    # Its buffer too: the next booking starts after 11:00 + 10 minutes.
    assert create(evse, ams(11, 15), ams(12), now=ams(10, 20)).status == Status.RESERVED
    first.refresh_from_db()
    assert first.status == Status.FULFILLED
    # A fulfilled booking is over for changes, as far as the eMSP or staff are concerned.
    with pytest.raises(exc.InvalidTransition):
        booking_change(booking=first, actor=SYSTEM, start=ams(13), end=ams(14), now=ams(10, 20))


def test_fulfilled_booking_still_holds_its_token(evse):
    _no_notice(evse)
    other = EVSEFactory(charge_point=evse.charge_point)
    token = TokenData("DE", "EMS", "T1", "RFID", "C1")
    first = create(evse, ams(10), ams(11), tokens=[token])
    booking_fulfil(booking=first, actor=Actor.charger("CP"), at=ams(10, 5), now=ams(10, 5))
    with pytest.raises(exc.SlotUnavailable) as info:
        create(other, ams(10, 30), ams(11, 30), tokens=[token], now=ams(10, 20))
    assert info.value.code == "token_overlap"


def test_running_session_keeps_its_evse_busy_now(evse):
    # A walk-in driver is charging (no booking): the EVSE cannot be booked for now, and the
    # slots after the current one stay bookable (the session's end is unknown).
    _no_notice(evse)
    session = ChargingSession.objects.create(
        charge_point=evse.charge_point, evse=evse, transaction_id="T1", id_tag="WALK-IN",
        started_at=ams(9, 50),
    )  # fmt: skip
    now = ams(10, 5)
    with pytest.raises(exc.SlotUnavailable) as info:
        create(evse, ams(10, 15), ams(11), now=now)
    assert info.value.code == "evse_in_use" and "charging session" in info.value.message
    window = {"location": evse.charge_point.location, "start": ams(0), "end": ams(0, day=3)}
    free = location_availability(**window, now=now).evses[0].free
    # Busy to the end of the current 15-minute step (10:15) plus the 10-minute buffer.
    assert free[0].start == ams(10, 30)
    session.stopped_at = ams(10, 6)
    session.save()
    assert location_availability(**window, now=now).evses[0].free[0].start == ams(10, 15)
    assert create(evse, ams(10, 15), ams(11), now=now).status == Status.RESERVED


def test_booking_for_session_finds_the_booking_of_the_token(evse):
    token = TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1")
    booking = create(evse, ams(10), ams(11), tokens=[token])
    assert booking_for_session(evse=evse, token_uid="TOK1", at=ams(10, 5)) == booking
    assert booking_for_session(evse=evse, token_uid="TOK1", at=ams(10, 20)) is None
    assert booking_for_session(evse=evse, token_uid="OTHER", at=ams(10, 5)) is None
    assert booking_for_session(evse=evse, token_uid="TOK1", at=ams(10, 5),
                               token_country_code="NL") is None  # fmt: skip


def test_booking_mark_no_show_only_after_the_timeout(evse):
    booking = create(evse, ams(10), ams(11))
    with pytest.raises(exc.InvalidRequest, match="may still arrive"):
        booking_mark_no_show(booking=booking, now=ams(10, 15))
    marked = booking_mark_no_show(booking=booking, now=ams(10, 16))
    assert marked.status == Status.NO_SHOW
    assert marked.transitions.last().actor_label == "no-show sweep"


def test_booking_mark_no_show_by_staff_from_the_booked_start(evse, staff):
    booking = create(evse, ams(10), ams(11))
    with pytest.raises(exc.InvalidRequest, match="has not started yet"):
        booking_mark_no_show(booking=booking, actor=staff, now=ams(9, 59))
    marked = booking_mark_no_show(booking=booking, actor=staff, now=ams(10, 5))
    assert marked.status == Status.NO_SHOW
    assert marked.transitions.last().actor_label == "desk"


def test_booking_check_in_records_the_arrival_once_with_an_audit_row(evse, staff):
    booking = create(evse, ams(10), ams(11))
    checked = booking_check_in(booking=booking, actor=staff, now=ams(9, 55))
    assert checked.checked_in_at == ams(9, 55) and checked.status == Status.RESERVED
    again = booking_check_in(booking=booking, actor=staff, now=ams(10, 1))
    assert again.checked_in_at == ams(9, 55)
    row = checked.transitions.get(event="CHECK_IN")
    assert (row.from_status, row.to_status, row.actor_label) == ("RESERVED", "RESERVED", "desk")
    booking_cancel(booking=booking, actor=staff, reason="UNKNOWN", now=ams(9, 0))
    with pytest.raises(exc.InvalidTransition, match="canceled booking cannot be checked in"):
        booking_check_in(booking=booking, actor=staff, now=ams(10, 2))


# --- charger bookkeeping hook -----------------------------------------------------------------


def test_booking_record_charger_state_writes_fields_and_audit(evse):
    booking = create(evse, ams(10), ams(11))
    charger = Actor.charger("CP-1")
    updated = booking_record_charger_state(
        booking=booking.pk, state=ChargerReservation.HELD, actor=charger, detail="Accepted",
        now=ams(9, 50),
    )  # fmt: skip
    updated.refresh_from_db()
    assert updated.charger_reservation == ChargerReservation.HELD
    assert updated.charger_reservation_updated_at == ams(9, 50)
    assert updated.status == Status.RESERVED
    audit = updated.transitions.get(event=BookingTransition.Event.CHARGER)
    assert audit.details == {"from": ChargerReservation.NOT_SENT, "to": ChargerReservation.HELD}
    booking_record_charger_state(booking=booking, state=ChargerReservation.OFFLINE,
                                 actor=charger, needs_attention=True, now=ams(9, 51))  # fmt: skip
    updated.refresh_from_db()
    assert updated.needs_attention


def test_booking_record_charger_state_unknown_state_is_refused(evse):
    booking = create(evse, ams(10), ams(11))
    with pytest.raises(exc.InvalidRequest, match="not a charger reservation state"):
        booking_record_charger_state(booking=booking, state="MAYBE", actor=SYSTEM, now=NOW)


# --- OCPI booking requests --------------------------------------------------------------------


def request(**overrides) -> tuple[RequestData, dict]:
    values = dict(
        request_id="REQ-1", location_id="LOC1", start=ams(10), end=ams(11),
        authorization_reference="AUTH-1", evse_uid="EVSE1",
        tokens=(TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1"),),
    )  # fmt: skip
    values.update(overrides)
    data = RequestData(**values)
    payload = {k: str(v) for k, v in values.items()}
    return data, payload


def submit(now=NOW, **overrides) -> Booking:
    data, payload = request(**overrides)
    return booking_request_submit(actor=EMSP, data=data, payload=payload, now=now).booking


def statuses(booking):
    return [r.request_status for r in BookingRequest.objects.filter(booking=booking).order_by("id")]


def test_request_new_accepted(evse):
    booking = submit()
    assert booking.status == Status.RESERVED and booking.channel == Booking.Channel.OCPI
    assert (booking.emsp_country_code, booking.emsp_party_id, booking.request_id) == (
        "DE", "EMS", "REQ-1",
    )  # fmt: skip
    assert statuses(booking) == [RequestStatus.ACCEPTED]
    assert [t.uid for t in booking.tokens.all()] == ["TOK1"]


def test_request_new_declined_gives_a_rejected_booking_with_the_reason(evse):
    create(evse, ams(10), ams(11))
    booking = submit()
    assert booking.status == Status.REJECTED
    (entry,) = BookingRequest.objects.filter(booking=booking)
    assert entry.request_status == RequestStatus.DECLINED
    assert entry.reason_code == "slot_unavailable" and "already booked" in entry.reason
    # The refused booking holds no time.
    assert create(evse, ams(12), ams(13)).status == Status.RESERVED


def test_request_new_auto_assigns_an_evse(evse):
    create(evse, ams(10), ams(11))
    other = EVSEFactory(charge_point=evse.charge_point)
    booking = submit(evse_uid=None)
    assert booking.status == Status.RESERVED and booking.evse_id == other.pk


def test_request_new_auto_assign_none_free_is_declined_as_no_evse(evse):
    create(evse, ams(10), ams(11))
    booking = submit(evse_uid=None, criteria=Criteria(power_type="AC"))
    assert booking.status == Status.REJECTED and booking.evse_id is None
    assert BookingRequest.objects.get(booking=booking).reason_code == "no_evse_available"


def test_request_new_auto_assign_names_the_rule_that_failed(evse):
    booking = submit(evse_uid=None, start=ams(7, day=1), end=ams(8, day=1))
    entry = BookingRequest.objects.get(booking=booking)
    assert (booking.status, entry.reason_code) == (Status.REJECTED, "in_the_past")
    other = submit(evse_uid=None, request_id="REQ-2", start=ams(10), end=ams(14))
    assert BookingRequest.objects.get(booking=other).reason_code == "too_long"


def test_request_new_criteria_nothing_matches(evse):
    booking = submit(evse_uid=None, criteria=Criteria(power_type="DC"))
    entry = BookingRequest.objects.get(booking=booking)
    assert entry.reason_code == "no_evse_available" and "criteria" in entry.reason


def test_request_new_malformed_or_unknown_raises_without_a_booking(evse):
    with pytest.raises(exc.InvalidRequest, match="end must be after"):
        submit(evse_uid=None, start=ams(11), end=ams(10))
    with pytest.raises(exc.UnknownLocation):
        submit(location_id="NOWHERE")
    with pytest.raises(exc.UnknownEVSE):
        submit(evse_uid="NOPE")
    with pytest.raises(exc.InvalidRequest) as info:
        submit(canceled_reason=CanceledReason.TRAFFIC)
    assert info.value.code == "unknown_booking"
    assert not Booking.objects.exists()


def test_request_identical_resend_returns_the_booking_without_a_new_entry(evse):
    first = submit()
    again = submit()
    assert again.pk == first.pk
    assert statuses(first) == [RequestStatus.ACCEPTED]
    assert Booking.objects.count() == 1


def test_request_change_accepted_keeps_the_booking(evse):
    booking = submit()
    changed = submit(start=ams(12), end=ams(13), tokens=(TokenData("DE", "EMS", "TOK2", "RFID",
                                                                   "DE-EMS-2"),))  # fmt: skip
    assert changed.pk == booking.pk and changed.status == Status.RESERVED
    assert changed.period.lower == ams(12)
    assert statuses(booking) == [RequestStatus.ACCEPTED, RequestStatus.ACCEPTED]
    assert [t.uid for t in changed.tokens.all()] == ["TOK2"]
    assert changed.transitions.filter(event=BookingTransition.Event.REQUEST).count() == 1


def test_request_change_declined_leaves_the_booking_unchanged(evse):
    booking = submit()
    create(evse, ams(14), ams(15))
    changed = submit(start=ams(14), end=ams(15))
    assert changed.status == Status.RESERVED and changed.period.lower == ams(10)
    assert statuses(booking) == [RequestStatus.ACCEPTED, RequestStatus.DECLINED]
    entry = BookingRequest.objects.filter(booking=booking).last()
    assert entry.reason_code == "slot_unavailable"


def test_request_change_past_the_deadline_is_declined(evse):
    booking = submit()
    changed = submit(start=ams(12), end=ams(13), now=ams(9, 50))
    assert changed.period.lower == ams(10)
    assert BookingRequest.objects.filter(booking=booking).last().reason_code == (
        "too_late_to_change"
    )


def test_request_cancel_accepted_and_refused(evse):
    booking = submit()
    late = submit(canceled_reason=CanceledReason.TRAFFIC, now=ams(9, 50))
    assert late.status == Status.RESERVED
    assert statuses(booking)[-1] == RequestStatus.DECLINED
    canceled = submit(canceled_reason=CanceledReason.TRAFFIC, authorization_reference="AUTH-2")
    assert canceled.status == Status.CANCELED and canceled.canceled_by_role == Role.EMSP
    assert statuses(booking) == [
        RequestStatus.ACCEPTED, RequestStatus.DECLINED, RequestStatus.ACCEPTED,
    ]  # fmt: skip


def test_request_on_a_final_booking_is_declined(evse):
    booking = submit()
    booking_cancel(booking=booking, actor=EMSP, now=NOW)
    again = submit(start=ams(12), end=ams(13))
    assert again.status == Status.CANCELED
    entry = BookingRequest.objects.filter(booking=booking).last()
    assert (entry.request_status, entry.reason_code) == (RequestStatus.DECLINED,
                                                         "invalid_transition")  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_request_concurrent_same_request_id_makes_one_booking():
    location = LocationFactory(ocpi_id="LOC1")
    EVSEFactory(charge_point=ChargePointFactory(location=location), uid="EVSE1")
    barrier = threading.Barrier(6)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(submit().pk)
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    booking = Booking.objects.get()
    assert booking.status == Status.RESERVED
    assert BookingRequest.objects.filter(booking=booking).count() == 1


def test_booking_cancel_by_the_cpo_system_is_not_bound_by_the_emsp_deadline(evse):
    booking = create(evse, ams(10), ams(11), actor=EMSP, request_id="R1")
    canceled = booking_cancel(booking=booking, actor=Actor.charger("CP-1"), now=ams(9, 55),
                              reason=CanceledReason.BROKEN_CHARGER)  # fmt: skip
    assert canceled.status == Status.CANCELED and canceled.canceled_by_role == Role.CPO


@pytest.mark.django_db(transaction=True)
def test_booking_create_is_all_or_nothing(evse):
    tokens = (TokenData("DE", "EMS", "TOK1", "RFID", "DE-EMS-1"),)
    booking = create(evse, ams(10), ams(11), tokens=tokens)
    assert booking.transitions.get().event == BookingTransition.Event.CREATED
    assert [t.uid for t in Booking.objects.get(pk=booking.pk).tokens.all()] == ["TOK1"]
    # When the audit row, the last write, fails, the booking and its tokens are gone too.
    before = (Booking.objects.count(), BookingToken.objects.count())
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$;"
            " CREATE TRIGGER test_refuse_audit BEFORE INSERT ON bookings_bookingtransition"
            " FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()"
        )
    try:
        with pytest.raises(DatabaseError, match="audit refused by the test"):
            create(evse, ams(12), ams(13), tokens=tokens)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER test_refuse_audit ON bookings_bookingtransition;"
                " DROP FUNCTION test_refuse_audit()"
            )
    assert (Booking.objects.count(), BookingToken.objects.count()) == before
    # A refusal by the exclusion constraint leaves the connection usable for the next booking.
    with pytest.raises(exc.SlotUnavailable):
        create(evse, ams(10, 30), ams(11, 30))
    assert create(evse, ams(14), ams(15)).pk
