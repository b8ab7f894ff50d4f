"""Charger credentials at the csms (issue 18, finding 5): every charge point has a password
(OCPP security profile 1), an impersonator with a stolen id never replaces the real charger,
failed handshakes are rate-limited, and checking passwords never holds up real chargers."""

import asyncio
import base64
from datetime import timedelta

import pytest
import websockets
from django.utils import timezone
from websockets.exceptions import InvalidStatus

from bookings.models import Status, TokenType
from bookings.services import Actor, booking_cancel
from bookings.sweeps import sweep_reservations
from chargers.models import ChargerReservation, Reservation
from chargers.simulator import SimulatedCharger
from locations.models import EVSEStatus
from tests.bookings.factories import BookingFactory, BookingTokenFactory
from tests.locations.factories import (
    CHARGER_PASSWORD,
    BookingPolicyFactory,
    ChargePointFactory,
    EVSEFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _cp(evses=2, **kwargs):
    cp = ChargePointFactory(is_connected=False, **kwargs)
    BookingPolicyFactory(location=cp.location, slot_step_minutes=1, min_duration_minutes=1)
    for n in range(1, evses + 1):
        EVSEFactory(charge_point=cp, ocpp_evse_id=n)
    return cp


def _refusal(stack, identity, password, csms=None) -> int:
    intruder = SimulatedCharger(stack.url(csms), identity, password=password)
    with pytest.raises(InvalidStatus) as refused:
        stack.run(intruder.connect())
    return refused.value.response


def test_charge_point_without_password_is_refused_unless_development_allows(stack, settings):
    cp = _cp(password_hash="")
    assert _refusal(stack, cp.identity, None).status_code == 401
    assert _refusal(stack, cp.identity, "anything").status_code == 401

    settings.CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD = True
    sim = stack.charger(cp, password=None)
    assert sim.connected


def test_impersonator_with_stolen_id_never_replaces_the_real_charger(stack, staff_user):
    cp = _cp()
    real = stack.charger(cp)
    start = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)
    booking = BookingFactory(evse=cp.evses.get(ocpp_evse_id=1), start=start)
    BookingTokenFactory(booking=booking, uid="DRIVER-1", type=TokenType.RFID)
    sweep_reservations(enqueue=False)
    reservation = Reservation.objects.get(booking_id=booking.pk)
    assert list(real.reservations) == [reservation.pk]

    for password in (None, "guessed", ""):
        assert _refusal(stack, cp.identity, password).status_code == 401
    stolen_user = base64.b64encode(f"OTHER:{CHARGER_PASSWORD}".encode()).decode()

    async def other_user():
        async with websockets.connect(
            f"{stack.url()}/{cp.identity}", subprotocols=["ocpp1.6"],
            additional_headers={"Authorization": f"Basic {stolen_user}"},
        ):  # fmt: skip
            pass

    with pytest.raises(InvalidStatus):
        stack.run(other_user())

    # The real charger kept its connection: the cancel reaches it and the database agrees.
    assert real.connected
    booking_cancel(booking=booking.pk, actor=Actor.staff(staff_user), override_reason="test")
    reservation.refresh_from_db()
    booking.refresh_from_db()
    assert real.reservations == {}
    assert [r.action for r in real.received] == ["ReserveNow", "CancelReservation"]
    assert (booking.status, reservation.status) == (Status.CANCELED, ChargerReservation.CANCELED)


def test_failed_handshakes_are_rate_limited_per_id_and_per_address(stack, settings):
    settings.CSMS_AUTH_FAILURES_PER_ID = "3/minute"
    settings.CSMS_AUTH_FAILURES_PER_ADDRESS = "5/minute"
    csms = stack.start_csms()  # a csms reads its limits when it starts
    first, second, third = _cp(), _cp(), _cp()

    for _ in range(3):
        assert _refusal(stack, first.identity, "wrong", csms).status_code == 401
    limited = _refusal(stack, first.identity, CHARGER_PASSWORD, csms)  # even the right one
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60

    assert _refusal(stack, "NO-SUCH-CP", "x", csms).status_code == 404
    sim = stack.charger(second, csms=csms)  # another id from the same address still gets in
    assert sim.connected
    assert _refusal(stack, second.identity, "wrong", csms).status_code == 401
    # Five failures from this address now: every id is refused from it for a while.
    assert _refusal(stack, third.identity, CHARGER_PASSWORD, csms).status_code == 429
    assert sim.connected  # the refused attempt did not touch the connection already in place


def test_flood_of_bad_passwords_does_not_hold_up_a_real_chargers_reports(stack, settings):
    # Production's PBKDF2, so each bad password costs what it costs in production.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    settings.CSMS_AUTH_FAILURES_PER_ID = "100/minute"
    settings.CSMS_AUTH_FAILURES_PER_ADDRESS = "100/minute"
    csms = stack.start_csms()
    cp, target = _cp(evses=2), _cp()
    target.set_password("target-pass-123")
    target.save()
    real = stack.charger(cp, csms=csms)

    async def scenario():
        async def bad() -> int:
            intruder = SimulatedCharger(stack.url(csms), target.identity, password="bad")
            try:
                await intruder.connect()
            except InvalidStatus as refused:
                return refused.response.status_code
            return 101

        flood = [asyncio.create_task(bad()) for _ in range(10)]
        await asyncio.sleep(0.2)  # the hasher is busy with the flood now
        for n in range(5):
            await real.cp.report(1 + n % 2, "Charging" if n % 2 else "Faulted")
        reports_done_first = not all(task.done() for task in flood)
        return reports_done_first, await asyncio.gather(*flood)

    reports_done_first, codes = stack.run(scenario(), timeout=120)
    assert codes == [401] * 10
    assert reports_done_first  # answered while bad passwords were still being checked
    assert dict(cp.evses.values_list("ocpp_evse_id", "status")) == {
        1: EVSEStatus.OUTOFORDER,
        2: EVSEStatus.CHARGING,
    }


def test_a_password_verified_once_is_not_hashed_again_by_another_csms(stack, monkeypatch):
    """After a csms restart (here: a second csms process), a thousand chargers reconnecting
    must not queue for the slow hash one by one: a verified password is remembered, as a keyed
    digest, for every csms. A wrong password and a changed password are still refused."""
    from locations.models import ChargePoint

    hashed: list[str] = []
    original = ChargePoint.check_password

    def counting(self, raw: str) -> bool:
        hashed.append(self.identity)
        return original(self, raw)

    monkeypatch.setattr(ChargePoint, "check_password", counting)
    cp = _cp(evses=1)
    first, second = stack.start_csms(), stack.start_csms()
    sim = stack.charger(cp, csms=first)
    assert sim.connected and hashed == [cp.identity]
    stack.run(sim.disconnect())

    again = stack.charger(cp, csms=second)  # the other process, as after a restart
    assert again.connected and hashed == [cp.identity]  # no second slow hash
    stack.run(again.disconnect())
    assert _refusal(stack, cp.identity, "wrong-password", csms=second).status_code == 401
    assert hashed == [cp.identity]  # refused by the digest, without the hasher

    cp.set_password("a-new-password-456")
    cp.save()
    assert _refusal(stack, cp.identity, CHARGER_PASSWORD, csms=second).status_code == 401
    renewed = stack.charger(cp, csms=second, password="a-new-password-456")
    assert renewed.connected and hashed[-1] == cp.identity and len(hashed) == 3
