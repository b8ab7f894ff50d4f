"""What a charging session, and a booking, cost under a tariff: pure functions over plain values,
the one place the OCPI tariff rules are applied (CDRs, fees, previews all call them).

The rules, as OCPI 2.3.0's Tariffs module states them:

- At each moment, per dimension (ENERGY, TIME, PARKING_TIME), the first element that has a
  component of that dimension and whose restrictions hold prices it. Restrictions are tested
  against the local time of the location (time of day, date, weekday), the energy and the
  duration of the session so far, and the power and current of the moment. Elements with a
  `reservation` restriction price bookings, never the session itself.
- FLAT is charged once, from the first element with a FLAT component that applies.
- TIME is charging time, PARKING_TIME the time plugged in without charging; both in hours.
- `step_size` (Wh, or seconds) rounds up the total of a dimension, at the price of the last
  element used for it; and when a dimension's element is followed by one without that dimension,
  what was used so far is rounded up at the old element's price. Charging time added by rounding
  covers the parking time right after it (it is not billed twice).
- `min_price` and `max_price` bound the total before taxes. Prices are before or after taxes
  as `tax_included` says; the total is given both ways.

Money is Decimal throughout, kept to 4 decimal places; `Cost.rounded()` gives the amounts in the
currency's minor unit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

ENERGY, FLAT, PARKING_TIME, TIME = "ENERGY", "FLAT", "PARKING_TIME", "TIME"
VOLUME_DIMENSIONS = (ENERGY, TIME, PARKING_TIME)
WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
PLACES = Decimal("0.0001")
MICROSECOND = timedelta(microseconds=1)
HOUR = Decimal(3600)
KWH = Decimal(1000)
# Currencies without two decimal minor units (ISO 4217); every other one has two.
MINOR_UNITS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "HUF": 2, "BHD": 3, "KWD": 3,
               "OMR": 3, "JOD": 3, "TND": 3}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Component:
    dimension: str  # ENERGY, FLAT, PARKING_TIME, TIME
    price: Decimal  # per kWh, per hour, or per session (FLAT)
    step_size: int = 1  # Wh, or seconds


@dataclass(frozen=True, slots=True)
class Restrictions:
    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None  # exclusive
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None  # kW
    max_power: Decimal | None = None
    min_duration: int | None = None  # seconds, inclusive
    max_duration: int | None = None  # seconds, exclusive
    day_of_week: frozenset[str] = frozenset()
    reservation: str = ""


@dataclass(frozen=True, slots=True)
class Element:
    components: tuple[Component, ...]
    restrictions: Restrictions = Restrictions()

    def component(self, dimension: str) -> Component | None:
        return next((c for c in self.components if c.dimension == dimension), None)


@dataclass(frozen=True, slots=True)
class TariffTerms:
    currency: str
    elements: tuple[Element, ...]
    tax_included: str = "NO"  # YES, NO, N/A
    tax_name: str = "VAT"
    tax_percentage: Decimal | None = None
    min_price: Decimal | None = None  # before taxes
    max_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """A stretch of a session in one state: charging (or only plugged in), with the energy it
    delivered and, where known, its power (kW) and current (A, summed over phases)."""

    start: datetime
    end: datetime
    energy_wh: Decimal = Decimal(0)
    charging: bool = True
    power_kw: Decimal | None = None
    current_a: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """What one element billed for one dimension: volume in kWh, hours or sessions."""

    dimension: str
    volume: Decimal
    price: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Cost:
    currency: str
    lines: tuple[Line, ...]
    before_taxes: Decimal
    after_taxes: Decimal
    tax_name: str = "VAT"
    tax_percentage: Decimal | None = None

    @property
    def taxes(self) -> Decimal:
        return self.after_taxes - self.before_taxes

    def rounded(self) -> Cost:
        """The amounts in the currency's minor unit (cents; whole yen)."""
        unit = Decimal(1).scaleb(-MINOR_UNITS.get(self.currency, 2))

        def q(value: Decimal) -> Decimal:
            return value.quantize(unit, rounding=ROUND_HALF_UP)

        return replace(self, before_taxes=q(self.before_taxes), after_taxes=q(self.after_taxes))


@dataclass
class _Run:
    """The current element of one dimension and what it billed (volumes in Wh or seconds)."""

    element: Element | None = None
    used: Decimal = Decimal(0)  # volume of this dimension billed so far, all elements
    lines: list[tuple[Element, Decimal]] = field(default_factory=list)  # (element, volume)


def _holds(r: Restrictions, *, at: datetime, tz: ZoneInfo, kwh: Decimal, seconds: float,
           period: Period) -> bool:  # fmt: skip
    local = at.astimezone(tz)
    if r.reservation:
        return False  # prices bookings, not sessions
    if r.start_time is not None or r.end_time is not None:
        now = local.time().replace(tzinfo=None)
        start, end = r.start_time or time(0), r.end_time or time(0)
        # start > end runs across midnight (22:00-06:00); no end runs to the end of the day.
        inside = start <= now < end if start < end else now >= start or now < end
        if not inside:
            return False
    if r.start_date is not None and local.date() < r.start_date:
        return False
    if r.end_date is not None and local.date() >= r.end_date:
        return False
    if r.day_of_week and WEEKDAYS[local.weekday()] not in r.day_of_week:
        return False
    if r.min_kwh is not None and kwh < r.min_kwh:
        return False
    if r.max_kwh is not None and kwh >= r.max_kwh:
        return False
    if r.min_duration is not None and seconds < r.min_duration:
        return False
    if r.max_duration is not None and seconds >= r.max_duration:
        return False
    for value, low, high in ((period.power_kw, r.min_power, r.max_power),
                             (period.current_a, r.min_current, r.max_current)):  # fmt: skip
        if (low is not None or high is not None) and value is None:
            return False
        if low is not None and value < low:
            return False
        if high is not None and value >= high:
            return False
    return True


def _boundaries(tariff: TariffTerms, session_start: datetime, period: Period,
                tz: ZoneInfo) -> list[datetime]:  # fmt: skip
    """Moments inside the period where a restriction may switch: times of day, midnights,
    durations reached."""
    cuts: set[datetime] = set()
    times = {time(0)}
    for e in tariff.elements:
        r = e.restrictions
        times.update(t for t in (r.start_time, r.end_time) if t is not None)
        for d in (r.min_duration, r.max_duration):
            if d is not None:
                cuts.add(session_start + timedelta(seconds=d))
    day = period.start.astimezone(tz).date()
    while datetime.combine(day, time(0), tz) < period.end:
        for t in times:
            cuts.add(datetime.combine(day, t, tz))
        day += timedelta(days=1)
    return sorted(c for c in cuts if period.start < c < period.end)


def _energy_cuts(tariff: TariffTerms, kwh_before: Decimal, period: Period) -> list[datetime]:
    """Moments inside the period where the session's energy reaches a min_kwh/max_kwh bound,
    assuming even delivery over the period."""
    if period.energy_wh <= 0:
        return []
    kwh_after = kwh_before + period.energy_wh / KWH
    span = period.end - period.start
    cuts = []
    for e in tariff.elements:
        for bound in (e.restrictions.min_kwh, e.restrictions.max_kwh):
            if bound is not None and kwh_before < bound < kwh_after:
                share = (bound - kwh_before) / (kwh_after - kwh_before)
                cuts.append(period.start + span * float(share))
    return sorted(cuts)


def _pieces(tariff: TariffTerms, periods: Sequence[Period], tz: ZoneInfo) -> list[Period]:
    """The periods cut wherever a restriction may switch, energy shared out by time."""
    start = periods[0].start
    out: list[Period] = []
    kwh = Decimal(0)
    for p in periods:
        cuts = sorted({*_boundaries(tariff, start, p, tz), *_energy_cuts(tariff, kwh, p)})
        edges = [p.start, *cuts, p.end]
        total = (p.end - p.start) // MICROSECOND
        left = p.energy_wh
        for a, b in itertools.pairwise(edges):
            energy = left if b == p.end else p.energy_wh * ((b - a) // MICROSECOND) / total
            out.append(replace(p, start=a, end=b, energy_wh=energy))
            left -= energy
        kwh += p.energy_wh / KWH
    return out


def _first(tariff: TariffTerms, dimension: str, **context) -> Element | None:
    for e in tariff.elements:
        if e.component(dimension) is not None and _holds(e.restrictions, **context):
            return e
    return None


def _rounded_up(volume: Decimal, step: int) -> Decimal:
    return (volume / step).to_integral_value(rounding=ROUND_CEILING) * step


def session_cost(tariff: TariffTerms, periods: Sequence[Period], tz: ZoneInfo) -> Cost:
    """The cost of a session made of `periods` (in order, without gaps) at a location in `tz`."""
    runs = {d: _Run() for d in VOLUME_DIMENSIONS}
    flat: Element | None = None
    kwh = Decimal(0)
    start = periods[0].start if periods else None
    trailing_parking: list[int] = []  # indexes of parking lines since the last charging

    def switch(dimension: str, new: Element | None) -> None:
        run = runs[dimension]
        if run.element is not None and new is None:
            # The dimension stops being priced: round what was used up at the old element.
            step = run.element.component(dimension).step_size
            extra = _rounded_up(run.used, step) - run.used
            if extra:
                run.lines.append((run.element, extra))
                run.used += extra
        run.element = new

    for piece in _pieces(tariff, periods, tz) if periods else []:
        seconds = (piece.start - start).total_seconds()
        context = {"at": piece.start, "tz": tz, "kwh": kwh, "seconds": seconds, "period": piece}
        if flat is None:
            flat = _first(tariff, FLAT, **context)
        length = Decimal(str((piece.end - piece.start).total_seconds()))
        volumes = {
            ENERGY: piece.energy_wh,
            TIME: length if piece.charging else Decimal(0),
            PARKING_TIME: Decimal(0) if piece.charging else length,
        }
        if piece.charging:
            trailing_parking.clear()
        for dimension, volume in volumes.items():
            if not volume:
                continue
            element = _first(tariff, dimension, **context)
            switch(dimension, element)
            if element is not None:
                if dimension == PARKING_TIME:
                    trailing_parking.append(len(runs[PARKING_TIME].lines))
                runs[dimension].lines.append((element, volume))
                runs[dimension].used += volume
        kwh += piece.energy_wh / KWH

    # The last element's step_size rounds each total up; charging time added that way covers
    # the parking right after the last charging (one stretch of time is billed once).
    time_extra = Decimal(0)
    for dimension in (ENERGY, TIME, PARKING_TIME):
        run = runs[dimension]
        if run.element is None:
            continue
        if dimension == PARKING_TIME:
            for index in trailing_parking:
                element, volume = run.lines[index]
                covered = min(volume, time_extra)
                run.lines[index] = (element, volume - covered)
                run.used -= covered
                time_extra -= covered
        extra = _rounded_up(run.used, run.element.component(dimension).step_size) - run.used
        if extra:
            run.lines.append((run.element, extra))
            run.used += extra
        if dimension == TIME:
            time_extra = extra

    lines: list[Line] = []
    if flat is not None:
        price = flat.component(FLAT).price
        lines.append(Line(FLAT, Decimal(1), price, price))
    for dimension, run in runs.items():
        unit = KWH if dimension == ENERGY else HOUR
        for element, volume in run.lines:
            if not volume:
                continue
            price = element.component(dimension).price
            amount = (volume / unit * price).quantize(PLACES, rounding=ROUND_HALF_UP)
            lines.append(Line(dimension, (volume / unit).quantize(PLACES), price, amount))
    return _total(tariff, tuple(_merged(lines)))


def _merged(lines: list[Line]) -> list[Line]:
    """Consecutive lines of one dimension at one price as one."""
    out: list[Line] = []
    for line in lines:
        last = out[-1] if out else None
        if last and (last.dimension, last.price) == (line.dimension, line.price):
            out[-1] = Line(line.dimension, last.volume + line.volume, line.price,
                           last.amount + line.amount)  # fmt: skip
        else:
            out.append(line)
    return out


def _total(tariff: TariffTerms, lines: tuple[Line, ...]) -> Cost:
    total = sum((line.amount for line in lines), Decimal(0))
    rate = Decimal(0) if tariff.tax_percentage is None else tariff.tax_percentage / 100
    if tariff.tax_included == "YES":  # the prices include taxes: take them out
        before = (total / (1 + rate)).quantize(PLACES, rounding=ROUND_HALF_UP)
    else:
        before = total
    if tariff.min_price is not None:
        before = max(before, tariff.min_price)
    if tariff.max_price is not None:
        before = min(before, tariff.max_price)
    after = (before * (1 + rate)).quantize(PLACES, rounding=ROUND_HALF_UP)
    return Cost(tariff.currency, lines, before, after, tariff.tax_name, tariff.tax_percentage)


def booking_fee(tariff: TariffTerms, *, kind: str, held: timedelta = timedelta(0)) -> Cost:
    """What a booking costs by itself under the tariff's booking elements: `kind` is
    RESERVATION (the booked time, charged however it ends), RESERVATION_EXPIRES (a no-show),
    RESERVATION_CANCELLATION_FEES (a cancellation that owes a fee) or RESERVATION_OVERTIME
    (charging past the booked end); `held` is the time priced by a TIME component. With both a
    RESERVATION and a RESERVATION_EXPIRES TIME component, an expired booking's time is priced by
    the latter."""
    lines: list[Line] = []
    kinds = [kind] if kind != "RESERVATION_EXPIRES" else ["RESERVATION_EXPIRES", "RESERVATION"]
    elements = [e for k in kinds for e in tariff.elements if e.restrictions.reservation == k]
    flat = next((e.component(FLAT) for e in elements if e.component(FLAT)), None)
    timed = next((e.component(TIME) for e in elements if e.component(TIME)), None)
    if flat is not None:
        lines.append(Line(FLAT, Decimal(1), flat.price, flat.price))
    if timed is not None and held > timedelta(0):
        seconds = _rounded_up(Decimal(str(held.total_seconds())), timed.step_size)
        amount = (seconds / HOUR * timed.price).quantize(PLACES, rounding=ROUND_HALF_UP)
        lines.append(Line(TIME, (seconds / HOUR).quantize(PLACES), timed.price, amount))
    return _total(replace(tariff, min_price=None, max_price=None), tuple(lines))


def added(first: Cost, *more: Cost) -> Cost:
    """Costs in one currency added up: a session and its booking's fees, as one total. Their
    lines are kept in order; amounts before and after taxes are summed."""
    lines, before, after = list(first.lines), first.before_taxes, first.after_taxes
    for cost in more:
        if cost.currency != first.currency:
            raise ValueError(f"Cannot add {cost.currency} to {first.currency}.")
        lines += cost.lines
        before += cost.before_taxes
        after += cost.after_taxes
    return replace(first, lines=tuple(lines), before_taxes=before, after_taxes=after)


def free(currency: str) -> Cost:
    """Nothing to pay (a session at an EVSE without a tariff)."""
    return Cost(currency, (), Decimal(0), Decimal(0))
