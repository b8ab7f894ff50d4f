"""Charge detail records: what a finished session costs, with its booking's fees, and what a
booking owes without a session (a no-show, a late cancellation). Booking logic because a record
may carry a booking's fees; the prices come from the one cost function (locations.tariffs),
under the tariff in force at the EVSE when the session (or the booking) started, and the record
is written by chargers.services.cdr_issue in the transaction that ends the session or the
booking, so there is never a finished session or fee without its record.

The rules, per the booking elements of a tariff (docs/tariffs.md):

- A session that fulfilled a booking pays the booked time (RESERVATION), and the time it went
  on charging past the booked end (RESERVATION_OVERTIME), on top of its own cost.
- A no-show pays RESERVATION_EXPIRES (else RESERVATION) for the time the EVSE was held for
  nobody: from the booked start until it was released, when the booking terms say `noshow_fee`.
- A cancellation by the driver's side (an eMSP, an API client, staff for the driver) inside the
  policy's `cancel_fee_minutes` before the start pays RESERVATION_CANCELLATION_FEES. A
  cancellation for the operator's reasons (power outage, broken charger, full, blocked) is free.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from chargers.models import ChargeDetailRecord, ChargingSession
from chargers.selectors import session_periods
from chargers.services import cdr_issue
from locations.models import Location, Tariff
from locations.selectors import location_policy, policy_for, tariff_catalog, tariff_terms
from locations.tariffs import Cost, Period, added, booking_fee, free, session_cost

from .models import Booking, CanceledReason

Kind = ChargeDetailRecord.Kind
OPERATOR_REASONS = {
    CanceledReason.POWER_OUTAGE,
    CanceledReason.BROKEN_CHARGER,
    CanceledReason.FULL,
    CanceledReason.BLOCKED,
}


def session_authorization_reference(session: ChargingSession, booking: Booking | None) -> str:
    """The authorization_reference a session's Session and CDR carry: the latest one given
    (OCPI Sessions), the START_SESSION's that started it, else the booking's it redeemed."""
    return session.authorization_reference or (
        booking.authorization_reference if booking is not None else ""
    )


def tariff_in_force(*, evse_id: int | None, location: Location, at: datetime) -> Tariff | None:
    return tariff_catalog().for_session(evse_id=evse_id, location_id=location.pk, at=at)


def _lines(cost: Cost, fee: str = "") -> list[dict[str, Any]]:
    return [{"dimension": x.dimension, "volume": str(x.volume), "price": str(x.price),
             "amount": str(x.amount), "fee": fee} for x in cost.lines]  # fmt: skip


def _period(p: Period) -> dict[str, Any]:
    return {"start": p.start.isoformat(), "end": p.end.isoformat(), "energy_wh": str(p.energy_wh),
            "charging": p.charging,
            "power_kw": None if p.power_kw is None else str(p.power_kw)}  # fmt: skip


def _money(cost: Cost, tariff: Tariff | None) -> dict[str, Any]:
    total = cost.rounded()
    return {
        "tariff_id": tariff.ocpi_id if tariff is not None else "",
        "currency": cost.currency,
        "before_taxes": total.before_taxes,
        "after_taxes": total.after_taxes,
        "tax_name": cost.tax_name if tariff is not None else "",
        "tax_percentage": cost.tax_percentage,
        "prices_include_taxes": tariff is not None and tariff.tax_included == "YES",
    }


def _positive(delta: timedelta) -> timedelta:
    return max(delta, timedelta(0))


def session_record(session: ChargingSession) -> ChargeDetailRecord | None:
    """Issue the record of a stopped session (None while it runs)."""
    if session.stopped_at is None:
        return None
    location = session.charge_point.location
    tariff = tariff_in_force(evse_id=session.evse_id, location=location, at=session.started_at)
    periods = session_periods(session, until=session.stopped_at)
    booking = Booking.objects.filter(pk=session.booking_id).first() if session.booking_id else None
    if tariff is None:
        cost = free(settings.DEFAULT_CURRENCY)
        lines: list[dict[str, Any]] = []
    else:
        terms = tariff_terms(tariff)
        charge = session_cost(terms, periods, location.zone) if periods else free(terms.currency)
        lines = _lines(charge)
        fees = []
        if booking is not None:
            booked, end = booking.period.upper - booking.period.lower, booking.period.upper
            fees = [
                ("RESERVATION", booking_fee(terms, kind="RESERVATION", held=booked)),
                ("RESERVATION_OVERTIME", booking_fee(terms, kind="RESERVATION_OVERTIME",
                                                     held=_positive(session.stopped_at - end))),
            ]  # fmt: skip
            fees = [(kind, fee) for kind, fee in fees if fee.lines]
        for kind, fee in fees:
            lines += _lines(fee, kind)
        cost = added(charge, *(fee for _, fee in fees))
    charging = sum(((p.end - p.start).total_seconds() for p in periods if p.charging), 0.0)
    parking = sum(((p.end - p.start).total_seconds() for p in periods if not p.charging), 0.0)
    return cdr_issue(
        kind=Kind.SESSION,
        session=session,
        booking_id=booking.pk if booking is not None else None,
        location=location,
        evse_id=session.evse_id,
        id_tag=session.id_tag,
        authorization_reference=session_authorization_reference(session, booking),
        started_at=session.started_at,
        ended_at=session.stopped_at,
        energy_wh=session.energy_wh or Decimal(0),
        charging_seconds=round(charging),
        parking_seconds=round(parking),
        periods=[_period(p) for p in periods],
        lines=lines,
        **_money(cost, tariff),
    )


def _fee_record(
    booking: Booking, *, kind: str, fee_kind: str, held: timedelta, at: datetime
) -> ChargeDetailRecord | None:
    tariff = tariff_in_force(
        evse_id=booking.evse_id, location=booking.location, at=booking.period.lower
    )
    if tariff is None:
        return None
    fee = booking_fee(tariff_terms(tariff), kind=fee_kind, held=held)
    if not fee.lines:
        return None
    token = booking.tokens.order_by("id").first()
    if fee_kind == "RESERVATION_CANCELLATION_FEES":
        start = end = at  # a moment, not a stretch of time
    else:
        start, end = booking.period.lower, booking.period.lower + held
    return cdr_issue(
        kind=kind,
        booking_id=booking.pk,
        location=booking.location,
        evse_id=booking.evse_id,
        id_tag=token.uid if token is not None else "",
        authorization_reference=booking.authorization_reference,
        started_at=start,
        ended_at=end,
        periods=[{"start": start.isoformat(), "end": end.isoformat(), "dimension": fee_kind}],
        lines=_lines(fee, fee_kind),
        **_money(fee, tariff),
    )


def no_show_record(booking: Booking, *, at: datetime) -> ChargeDetailRecord | None:
    """Issue a no-show's fee record, when its terms say `noshow_fee` and its tariff prices one:
    the time held is from the booked start until `at` (when it was released), at most the
    booked time."""
    if not (booking.terms or {}).get("noshow_fee"):
        return None
    held = min(_positive(at - booking.period.lower), booking.period.upper - booking.period.lower)
    return _fee_record(booking, kind=Kind.NO_SHOW, fee_kind="RESERVATION_EXPIRES", held=held, at=at)


def cancellation_owes_fee(booking: Booking, *, by_driver_side: bool, at: datetime) -> bool:
    """Whether a cancellation at `at` owes the cancellation fee: made by the driver's side (an
    eMSP or an API client; staff cancellations are the site's call and free), for a driver's
    reason, inside the policy's fee window before the start."""
    if not by_driver_side or booking.canceled_reason in OPERATOR_REASONS:
        return False
    policy = (
        policy_for(booking.evse, booking.location)
        if booking.evse is not None
        else location_policy(booking.location)
    )
    if policy.cancel_fee_minutes is None:
        return False
    return at >= booking.period.lower - timedelta(minutes=policy.cancel_fee_minutes)


def cancellation_record(
    booking: Booking, *, by_driver_side: bool, at: datetime
) -> ChargeDetailRecord | None:
    """Issue a late cancellation's fee record (see cancellation_owes_fee); a TIME component
    prices the booked time."""
    if not cancellation_owes_fee(booking, by_driver_side=by_driver_side, at=at):
        return None
    booked = booking.period.upper - booking.period.lower
    return _fee_record(
        booking, kind=Kind.CANCELLATION, fee_kind="RESERVATION_CANCELLATION_FEES", held=booked,
        at=at,
    )  # fmt: skip
