"""Slot arithmetic: pure functions over UTC intervals, with the clock and time zone passed in.

Nothing here touches the database; `bookings.selectors` loads the rows and calls these. Local
time (opening hours, slot grid) is converted at the edges, so a DST day simply has 23 or 25
hours and a slot across the change keeps its real length.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_WINDOW = timedelta(days=7)
# The calendar the desk and the engine handle. Far inside datetime's years 1-9999, so a week's
# window and any zone's offset never overflow.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open [start, end) span of aware UTC datetimes."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class WeeklyPeriod:
    """A regular opening period: weekday 1 (Monday) to 7, local wall times; an end at or before
    the begin (00:00 = midnight) lies on the next day."""

    weekday: int
    begin: time
    end: time


@dataclass(frozen=True)
class OpeningHours:
    twentyfourseven: bool = True
    regular: tuple[WeeklyPeriod, ...] = ()
    exceptional_openings: tuple[Interval, ...] = ()
    exceptional_closings: tuple[Interval, ...] = ()


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or touching intervals."""
    result: list[Interval] = []
    for iv in sorted(i for i in intervals if i.end > i.start):
        if result and iv.start <= result[-1].end:
            if iv.end > result[-1].end:
                result[-1] = Interval(result[-1].start, iv.end)
        else:
            result.append(iv)
    return result


def subtract(intervals: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """Remove every hole from the (merged) intervals."""
    holes = merge(holes)
    result: list[Interval] = []
    for iv in merge(intervals):
        start = iv.start
        for hole in holes:
            if hole.end <= start or hole.start >= iv.end:
                continue
            if hole.start > start:
                result.append(Interval(start, hole.start))
            start = max(start, hole.end)
            if start >= iv.end:
                break
        if start < iv.end:
            result.append(Interval(start, iv.end))
    return result


def clip(intervals: Iterable[Interval], window: Interval) -> list[Interval]:
    result = []
    for iv in intervals:
        start, end = max(iv.start, window.start), min(iv.end, window.end)
        if start < end:
            result.append(Interval(start, end))
    return result


def split(intervals: Sequence[Interval], parts: Sequence[Interval]) -> list[list[Interval]]:
    """`clip(intervals, part)` for each part, in one pass: both sorted and disjoint (merged free
    time, consecutive days), so a week of calendars costs the intervals plus the days, not
    their product."""
    result: list[list[Interval]] = []
    i = 0
    for part in parts:
        while i < len(intervals) and intervals[i].end <= part.start:
            i += 1
        pieces = []
        j = i
        while j < len(intervals) and intervals[j].start < part.end:
            iv = intervals[j]
            if part.start <= iv.start and iv.end <= part.end:
                pieces.append(iv)  # most lie inside one day: no new object
            else:
                pieces.append(Interval(max(iv.start, part.start), min(iv.end, part.end)))
            j += 1
        result.append(pieces)
    return result


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant where `day` begins in tz."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def local_day_window(day: date, tz: ZoneInfo, days: int = 1) -> Interval:
    """[local midnight of day, local midnight `days` later) in UTC: 23 or 25 h on DST days."""
    return Interval(local_midnight(day, tz), local_midnight(day + timedelta(days=days), tz))


def _wall(day: date, t: time, tz: ZoneInfo) -> datetime:
    # fold=0: a wall time in the spring-forward gap lands just after the gap (02:30 -> 03:30);
    # an ambiguous one in the fall-back hour means its first occurrence.
    return datetime.combine(day, t, tzinfo=tz).astimezone(UTC)


def wall_instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants a naive wall time names in tz: none in a spring-forward gap, two in the
    repeated hour of a fall-back day (earlier first), one otherwise."""
    instants = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in instants:
            instants.append(instant)
    return sorted(instants)


def zone_label(moment: datetime, tz: ZoneInfo) -> str:
    """Which clock a moment is read on in tz, e.g. "CEST, UTC+2" or "IST, UTC+5:30"."""
    local = moment.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    hours, rest = divmod(minutes, 60)
    text = f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
    name = local.tzname() or ""
    # Zones without an abbreviation of their own print the offset ("+09"): say it once.
    return text if not name or name[0] in "+-" else f"{name}, {text}"


def opening_intervals(hours: OpeningHours, window: Interval, tz: ZoneInfo) -> list[Interval]:
    """The open time inside window, in UTC."""
    if hours.twentyfourseven:
        base = [window]
    else:
        base = []
        first = window.start.astimezone(tz).date() - timedelta(days=1)
        last = window.end.astimezone(tz).date()
        day = first
        while day <= last:
            for period in hours.regular:
                if period.weekday != day.isoweekday():
                    continue
                start = _wall(day, period.begin, tz)
                if period.end <= period.begin:
                    # 00:00 is midnight at the end of the day; an end before the begin runs
                    # past midnight into the next day.
                    end = _wall(day + timedelta(days=1), period.end, tz)
                else:
                    end = _wall(day, period.end, tz)
                if end > start:
                    base.append(Interval(start, end))
            day += timedelta(days=1)
        base = merge(base)
    opened = merge([*base, *hours.exceptional_openings])
    return clip(subtract(opened, hours.exceptional_closings), window)


def _grid_floor(moment: datetime, step: timedelta, tz: ZoneInfo) -> datetime:
    """Round down to the slot grid, which runs on the location's wall clock from local midnight
    (e.g. :00, :15), so it holds in zones with non-hour offsets and for steps that do not divide
    an hour."""
    local = moment.astimezone(tz)
    step_s = int(step.total_seconds())
    rem = (local.hour * 3600 + local.minute * 60 + local.second) % step_s
    if rem == 0 and local.microsecond == 0:
        return moment
    # Fast path: no offset change between the grid point and the moment (all but DST hours).
    candidate = moment - timedelta(seconds=rem, microseconds=local.microsecond)
    if candidate.astimezone(tz).utcoffset() == local.utcoffset():
        return candidate
    wall = local.replace(tzinfo=None)
    midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
    since = int((wall - midnight).total_seconds())
    floored = midnight + timedelta(seconds=since - since % step_s)
    if floored == wall:
        return moment
    # A wall time can mean two instants (the repeated hour in autumn, or a spring gap time read
    # with either offset): take the latest that is not after the moment.
    first = floored.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = floored.replace(tzinfo=tz, fold=1).astimezone(UTC)
    candidates = [c for c in (first, second) if c <= moment]
    return max(candidates) if candidates else min(first, second)


def grid_ceil(moment: datetime, step: timedelta, tz: ZoneInfo) -> datetime:
    """The first grid point at or after moment (a DST change may make it nearer than a step)."""
    floored = _grid_floor(moment, step, tz)
    return floored if floored == moment else _grid_floor(moment + step, step, tz)


def grid_floor(moment: datetime, step: timedelta, tz: ZoneInfo) -> datetime:
    """The last grid point at or before moment."""
    return _grid_floor(moment, step, tz)


def on_grid(moment: datetime, step: timedelta, tz: ZoneInfo) -> bool:
    return _grid_floor(moment, step, tz) == moment


@dataclass(frozen=True)
class Rules:
    """The policy figures the arithmetic needs (from locations.BookingPolicy)."""

    step: timedelta
    min_duration: timedelta
    max_duration: timedelta
    buffer: timedelta
    min_notice: timedelta
    horizon: timedelta


def free_intervals(
    *,
    window: Interval,
    open_time: Sequence[Interval],
    busy: Sequence[Interval],
    rules: Rules,
    tz: ZoneInfo,
    now: datetime,
) -> list[Interval]:
    """Where a new booking may lie: open, bookable by now, clear of busy time and its buffer.

    `busy` are blocked periods of existing bookings (slot plus their buffer). A new booking
    [s, e) blocks [s, e + buffer), so it must end `buffer` before any busy period starts.
    Pieces are trimmed to the slot grid and dropped when shorter than the minimum duration.
    """
    return free_time(window=window, open_time=open_time, rules=rules, tz=tz, now=now)(busy)


def free_time(
    *, window: Interval, open_time: Sequence[Interval], rules: Rules, tz: ZoneInfo, now: datetime
) -> FreeTime:
    """free_intervals with everything but the busy periods fixed, for the EVSEs of a location
    that share their rules (see FreeTime)."""
    return FreeTime(window=window, open_time=open_time, rules=rules, tz=tz, now=now)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


def to_us(moment: datetime) -> int:
    """An instant as integer microseconds since the epoch (exact)."""
    return (moment - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class FreeTime:
    """Free time of EVSEs sharing one set of rules over one window.

    The bounds, the opening hours clipped to them and the slot grid are worked out once; each
    EVSE's busy periods are then subtracted in integer microseconds (datetime arithmetic costs
    several times more, and a busy week has hundreds of bookings per location), and only the
    resulting free intervals become datetimes. An EVSE with nothing booked gets the answer
    computed for the first such one.
    """

    def __init__(
        self,
        *,
        window: Interval,
        open_time: Sequence[Interval],
        rules: Rules,
        tz: ZoneInfo,
        now: datetime,
    ):
        now = now.astimezone(UTC)  # same-zone arithmetic would go by the wall clock
        earliest = max(window.start, now + rules.min_notice)
        latest = min(window.end, now + rules.horizon)
        self.opened: list[tuple[int, int]] = []
        if earliest < latest:
            bounds = Interval(earliest, latest)
            self.opened = [(to_us(iv.start), to_us(iv.end)) for iv in clip(open_time, bounds)]
            self.ceil, self.floor = _grid_functions(bounds, rules.step, tz)
        self.buffer = rules.buffer // _US
        self.min_duration = rules.min_duration // _US
        self.unbooked: list[Interval] | None = None
        self.moments: dict[int, datetime] = {}

    def __call__(self, busy: Sequence[Interval]) -> list[Interval]:
        return self.of_us([(to_us(b.start), to_us(b.end)) for b in busy])

    def of_us(self, busy: Sequence[tuple[int, int]]) -> list[Interval]:
        """The free intervals around busy periods given as (start, end) microseconds."""
        if not self.opened:
            return []
        if not busy and self.unbooked is not None:
            return list(self.unbooked)
        ceil, floor, min_duration = self.ceil, self.floor, self.min_duration
        moments = self.moments
        result = []
        for a, b in _subtract_us(self.opened, _merge_us(busy, self.buffer)):
            start, end = ceil(a), floor(b)
            if end - start >= min_duration:
                # The EVSEs' free intervals begin and end on the same few grid points: one
                # datetime per point (a tenth of a busy week's calendars went to making them).
                first, last = moments.get(start), moments.get(end)
                if first is None:
                    first = moments[start] = from_us(start)
                if last is None:
                    last = moments[end] = from_us(end)
                result.append(Interval(first, last))
        if not busy:
            self.unbooked = result
            return list(result)
        return result


def _merge_us(busy: Sequence[tuple[int, int]], buffer: int) -> list[tuple[int, int]]:
    """Busy periods widened by the buffer before them, sorted and merged (touching ones too)."""
    merged: list[list[int]] = []
    for start, end in sorted((s - buffer, e) for s, e in busy):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1][1] = end
        else:
            merged.append([start, end])
    return merged


def _subtract_us(opened: Sequence[tuple[int, int]], holes: Sequence) -> list[tuple[int, int]]:
    """`subtract` for sorted disjoint opened spans and sorted merged holes, in one sweep."""
    result = []
    first = 0
    for a, b in opened:
        while first < len(holes) and holes[first][1] <= a:
            first += 1
        start = a
        for hole_start, hole_end in holes[first:]:
            if hole_start >= b:
                break
            if hole_start > start:
                result.append((start, hole_start))
            if hole_end > start:
                start = hole_end
            if start >= b:
                break
        if start < b:
            result.append((start, b))
    return result


def _grid_functions(bounds: Interval, step: timedelta, tz: ZoneInfo):
    """Grid ceil/floor for instants inside bounds, in integer microseconds.

    When the zone keeps one UTC offset over the bounds (every window without a DST change)
    and the step divides a day, the wall-clock grid is plain modular arithmetic on the
    instant: about ten times cheaper than converting every moment, which matters with 50
    EVSEs x 7 days per availability call. Otherwise the general functions.
    """
    offset = bounds.start.astimezone(tz).utcoffset()
    step_us = step // _US
    if offset != bounds.end.astimezone(tz).utcoffset() or _DAY_US % step_us:
        return (
            lambda m: to_us(grid_ceil(from_us(m), step, tz)),
            lambda m: to_us(grid_floor(from_us(m), step, tz)),
        )
    offset_us = offset // _US

    def ceil(moment: int) -> int:
        rem = (moment + offset_us) % step_us
        return moment + (step_us - rem) if rem else moment

    def floor(moment: int) -> int:
        return moment - (moment + offset_us) % step_us

    return ceil, floor


def session_busy(started: datetime, *, now: datetime, rules: Rules, tz: ZoneInfo) -> Interval:
    """The time a charging session that is still running keeps its EVSE from being booked.

    When it will end is unknown, so it holds the EVSE from its start to the end of the slot step
    that contains now, plus the buffer, as a booking would: at no moment while it runs can
    the EVSE be booked for that moment, and later steps stay bookable. A booking the session
    fulfils keeps its own slot until its end (FULFILLED blocks).
    """
    return Interval(started, grid_ceil(now + _US, rules.step, tz) + rules.buffer)


def fits(slot: Interval, free: Sequence[Interval]) -> bool:
    return any(iv.contains(slot) for iv in free)


def fragmentation_cost(slot: Interval, free: Sequence[Interval], rules: Rules) -> tuple:
    """How badly taking `slot` out of `free` fragments it (lower is better).

    What stays bookable around the slot is [iv.start, slot.start - buffer) and
    [slot.end + buffer, iv.end), each only if it can still hold a minimum booking. The cost is
    the free time lost beyond the slot itself, then the number of pieces left, then the length
    of the free interval used (best fit, so long free runs stay whole). A slot that does not fit
    costs `UNFIT`.
    """
    for iv in free:
        if iv.contains(slot):
            pieces = [slot.start - rules.buffer - iv.start, iv.end - slot.end - rules.buffer]
            usable = [p for p in pieces if p >= rules.min_duration]
            wasted = iv.duration - slot.duration - sum(usable, timedelta(0))
            return (wasted, len(usable), iv.duration)
    return UNFIT


UNFIT = (timedelta.max, 0, timedelta.max)


# The hours a day view shows first at a site open around the clock (local wall times): the
# desk's working day; the night shows when something happens in it, or on request.
DEFAULT_SHOWN_HOURS = (time(6), time(22))
SHOWN_AHEAD = timedelta(hours=2)  # late in the day the next hours stay bookable on the axis


def shown_window(
    *,
    window: Interval,
    open_time: Sequence[Interval],
    busy: Iterable[Interval],
    now: datetime,
    tz: ZoneInfo,
) -> Interval:
    """The part of a local day a timeline shows first: its opening hours (or 06:00-22:00 when
    open all day or not at all), widened to every booking and to the two hours from now, on
    whole local hours."""
    open_time = clip(open_time, window)
    if open_time and sum((iv.duration for iv in open_time), timedelta(0)) < window.duration:
        start, end = open_time[0].start, open_time[-1].end
    else:
        day = window.start.astimezone(tz).date()
        start = max(window.start, _wall(day, DEFAULT_SHOWN_HOURS[0], tz))
        end = min(window.end, _wall(day, DEFAULT_SHOWN_HOURS[1], tz))
    for iv in busy:
        start, end = min(start, iv.start), max(end, iv.end)
    if window.start <= now < window.end:
        start, end = min(start, now), max(end, now + SHOWN_AHEAD)
    hour = timedelta(hours=1)
    start = max(window.start, grid_floor(start, hour, tz))
    end = min(window.end, grid_ceil(end, hour, tz))
    return Interval(start, end) if end > start else window
