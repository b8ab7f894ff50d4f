"""Pure slot arithmetic: no database. Times are built in the location's zone and compared in UTC;
the DST days are Europe/Amsterdam's of 2026 (29 March: 23 h, 25 October: 25 h)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bookings.availability import (
    UNFIT,
    Interval,
    OpeningHours,
    Rules,
    WeeklyPeriod,
    clip,
    fragmentation_cost,
    free_intervals,
    grid_ceil,
    grid_floor,
    local_day_window,
    merge,
    on_grid,
    opening_intervals,
    split,
    subtract,
)

AMS = ZoneInfo("Europe/Amsterdam")
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def at(tz, *args) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)


def rules(**overrides) -> Rules:
    values = dict(
        step=15 * MIN,
        min_duration=30 * MIN,
        max_duration=240 * MIN,
        buffer=timedelta(0),
        min_notice=timedelta(0),
        horizon=timedelta(days=30),
    )
    values.update(overrides)
    return Rules(**values)


def iv(tz, a: tuple, b: tuple) -> Interval:
    return Interval(at(tz, *a), at(tz, *b))


# --- interval helpers ------------------------------------------------------------------------


def test_split_cuts_sorted_free_time_into_days_like_clip():
    days = [local_day_window(date(2026, 3, 28) + timedelta(days=n), AMS) for n in range(3)]
    free = [
        iv(AMS, (2026, 3, 27, 20), (2026, 3, 28, 2)),  # starts before the first day
        iv(AMS, (2026, 3, 28, 9), (2026, 3, 28, 10)),
        iv(AMS, (2026, 3, 28, 22), (2026, 3, 30, 1)),  # across the 23-hour DST day
        iv(AMS, (2026, 3, 31, 9), (2026, 3, 31, 10)),  # after the last day
    ]
    assert split(free, days) == [clip(free, day) for day in days]
    assert split(free, days)[1] == [days[1]]  # the whole DST day is free
    assert split([], days) == [[], [], []]


def test_merge_joins_overlapping_and_touching_and_sorts():
    a = Interval(at(UTC, 2026, 6, 1, 10), at(UTC, 2026, 6, 1, 11))
    b = Interval(at(UTC, 2026, 6, 1, 11), at(UTC, 2026, 6, 1, 12))
    c = Interval(at(UTC, 2026, 6, 1, 8), at(UTC, 2026, 6, 1, 9))
    assert merge([b, a, c]) == [c, Interval(a.start, b.end)]


def test_subtract_cuts_holes_out_of_intervals():
    day = Interval(at(UTC, 2026, 6, 1, 0), at(UTC, 2026, 6, 2, 0))
    hole = Interval(at(UTC, 2026, 6, 1, 10), at(UTC, 2026, 6, 1, 11))
    assert subtract([day], [hole]) == [Interval(day.start, hole.start), Interval(hole.end, day.end)]


# --- opening hours ----------------------------------------------------------------------------


def test_opening_intervals_twentyfourseven_is_the_whole_window():
    window = local_day_window(datetime(2026, 6, 1).date(), AMS)
    assert opening_intervals(OpeningHours(), window, AMS) == [window]


def test_opening_intervals_regular_hours_in_the_local_zone():
    hours = OpeningHours(twentyfourseven=False, regular=(WeeklyPeriod(1, time(8), time(20)),))
    window = local_day_window(datetime(2026, 6, 1).date(), AMS, days=7)  # Monday .. Sunday
    assert opening_intervals(hours, window, AMS) == [iv(AMS, (2026, 6, 1, 8), (2026, 6, 1, 20))]


def test_opening_intervals_end_midnight_means_end_of_day():
    hours = OpeningHours(twentyfourseven=False, regular=(WeeklyPeriod(1, time(18), time(0)),))
    window = local_day_window(datetime(2026, 6, 1).date(), AMS, days=2)
    assert opening_intervals(hours, window, AMS) == [iv(AMS, (2026, 6, 1, 18), (2026, 6, 2, 0))]


def test_opening_intervals_period_over_midnight_runs_into_next_day_and_merges():
    # Monday 22:00-00:00 and Tuesday 00:00-02:00 (as OCPI splits it) become one night.
    hours = OpeningHours(
        twentyfourseven=False,
        regular=(WeeklyPeriod(1, time(22), time(0)), WeeklyPeriod(2, time(0), time(2))),
    )
    window = local_day_window(datetime(2026, 6, 1).date(), AMS, days=2)
    assert opening_intervals(hours, window, AMS) == [iv(AMS, (2026, 6, 1, 22), (2026, 6, 2, 2))]
    # Written as one period ending before it begins, it means the same night.
    single = OpeningHours(twentyfourseven=False, regular=(WeeklyPeriod(1, time(22), time(2)),))
    assert opening_intervals(single, window, AMS) == [iv(AMS, (2026, 6, 1, 22), (2026, 6, 2, 2))]


def test_opening_intervals_exceptional_closing_and_opening():
    closing = iv(AMS, (2026, 6, 1, 12), (2026, 6, 1, 13))
    opening = iv(AMS, (2026, 6, 7, 10), (2026, 6, 7, 14))  # a Sunday, normally closed
    hours = OpeningHours(
        twentyfourseven=False,
        regular=(WeeklyPeriod(1, time(8), time(20)),),
        exceptional_openings=(opening,),
        exceptional_closings=(closing,),
    )
    window = local_day_window(datetime(2026, 6, 1).date(), AMS, days=7)
    assert opening_intervals(hours, window, AMS) == [
        iv(AMS, (2026, 6, 1, 8), (2026, 6, 1, 12)),
        iv(AMS, (2026, 6, 1, 13), (2026, 6, 1, 20)),
        opening,
    ]


def test_opening_intervals_exceptional_closing_applies_to_twentyfourseven():
    closing = iv(AMS, (2026, 6, 1, 12), (2026, 6, 1, 13))
    window = local_day_window(datetime(2026, 6, 1).date(), AMS)
    open_time = opening_intervals(OpeningHours(exceptional_closings=(closing,)), window, AMS)
    assert open_time == [Interval(window.start, closing.start), Interval(closing.end, window.end)]


# --- DST (Europe/Amsterdam) ------------------------------------------------------------------


def test_dst_spring_day_has_23_hours_and_autumn_day_25():
    assert local_day_window(datetime(2026, 3, 29).date(), AMS).duration == timedelta(hours=23)
    assert local_day_window(datetime(2026, 10, 25).date(), AMS).duration == timedelta(hours=25)
    assert local_day_window(datetime(2026, 3, 30).date(), AMS).duration == timedelta(hours=24)


def test_dst_opening_hours_across_the_change_have_their_real_length():
    hours = OpeningHours(
        twentyfourseven=False,
        regular=(WeeklyPeriod(7, time(1), time(4)), WeeklyPeriod(7, time(0), time(0))),
    )
    spring = local_day_window(datetime(2026, 3, 29).date(), AMS)
    autumn = local_day_window(datetime(2026, 10, 25).date(), AMS)
    # 00:00-00:00 on a Sunday is the whole local day: 23 h and 25 h of open time.
    assert sum((i.duration for i in opening_intervals(hours, spring, AMS)), timedelta()) == (
        23 * HOUR
    )
    assert sum((i.duration for i in opening_intervals(hours, autumn, AMS)), timedelta()) == (
        25 * HOUR
    )
    only_night = OpeningHours(twentyfourseven=False, regular=(WeeklyPeriod(7, time(1), time(4)),))
    assert [i.duration for i in opening_intervals(only_night, spring, AMS)] == [2 * HOUR]
    assert [i.duration for i in opening_intervals(only_night, autumn, AMS)] == [4 * HOUR]


def test_dst_slot_across_the_change_has_its_real_length_and_stays_on_the_grid():
    step = 30 * MIN
    # 01:30 CET -> 03:30 CEST is one real hour; 01:30 CEST -> 03:30 CET three.
    spring = Interval(at(AMS, 2026, 3, 29, 1, 30), at(AMS, 2026, 3, 29, 3, 30))
    autumn = Interval(at(AMS, 2026, 10, 25, 1, 30), at(AMS, 2026, 10, 25, 3, 30))
    assert spring.duration == HOUR
    assert autumn.duration == 3 * HOUR
    for moment in (spring.start, spring.end, autumn.start, autumn.end):
        assert on_grid(moment, step, AMS)


def test_dst_free_time_of_the_23_and_25_hour_days():
    for day, hours in ((datetime(2026, 3, 29).date(), 23), (datetime(2026, 10, 25).date(), 25)):
        window = local_day_window(day, AMS)
        free = free_intervals(
            window=window, open_time=[window], busy=[], rules=rules(), tz=AMS,
            now=window.start - HOUR,
        )  # fmt: skip
        assert free == [window]
        assert free[0].duration == timedelta(hours=hours)


def test_dst_grid_in_the_repeated_autumn_hour():
    step = 15 * MIN
    first_250 = datetime(2026, 10, 25, 2, 50, tzinfo=AMS)  # CEST, 00:50 UTC
    second_200 = datetime(2026, 10, 25, 2, 0, fold=1, tzinfo=AMS)  # CET, 01:00 UTC
    assert grid_ceil(first_250.astimezone(UTC) + MIN, step, AMS) == second_200.astimezone(UTC)
    second_210 = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=AMS).astimezone(UTC)
    assert grid_floor(second_210, step, AMS) == second_200.astimezone(UTC)
    assert grid_floor(second_210, HOUR, AMS) == second_200.astimezone(UTC)


def test_dst_grid_in_the_spring_gap_lands_after_the_gap():
    # 01:50 CET: the next quarter hour on the wall clock is 03:00 CEST, ten real minutes later.
    moment = at(AMS, 2026, 3, 29, 1, 50)
    assert grid_ceil(moment, 15 * MIN, AMS) == at(AMS, 2026, 3, 29, 3, 0)
    assert grid_ceil(moment, 15 * MIN, AMS) - moment == 10 * MIN
    # Two-hour steps: the 02:00 grid point does not exist; 03:10 CEST floors to the 00:00 one
    # or the gap's end, never after the moment.
    floored = grid_floor(at(AMS, 2026, 3, 29, 3, 10), 2 * HOUR, AMS)
    assert floored <= at(AMS, 2026, 3, 29, 3, 10)
    assert floored == at(AMS, 2026, 3, 29, 3, 0)


# --- the slot grid ----------------------------------------------------------------------------


def test_grid_runs_on_the_wall_clock_in_half_hour_offset_zones():
    assert on_grid(at(KOLKATA, 2026, 6, 1, 10, 0), 15 * MIN, KOLKATA)
    assert on_grid(datetime(2026, 6, 1, 4, 30, tzinfo=UTC), HOUR, KOLKATA)  # 10:00 IST
    assert not on_grid(datetime(2026, 6, 1, 4, 0, tzinfo=UTC), HOUR, KOLKATA)  # 09:30 IST
    assert grid_ceil(datetime(2026, 6, 1, 4, 0, tzinfo=UTC), HOUR, KOLKATA) == at(
        KOLKATA, 2026, 6, 1, 10, 0
    )
    assert grid_floor(at(KATHMANDU, 2026, 6, 1, 9, 40), 30 * MIN, KATHMANDU) == at(
        KATHMANDU, 2026, 6, 1, 9, 30
    )


def test_grid_is_anchored_at_local_midnight_for_steps_that_do_not_divide_a_day():
    step = 50 * MIN  # 1440 is not a multiple of 50: the grid restarts every midnight
    for day in range(1, 8):
        midnight = at(AMS, 2026, 6, day, 0, 0)
        assert on_grid(midnight, step, AMS)
        assert on_grid(midnight + step, step, AMS)
    assert not on_grid(at(AMS, 2026, 6, 2, 0, 10), step, AMS)


def test_grid_ceil_and_floor_keep_grid_points():
    moment = at(AMS, 2026, 6, 1, 10, 15)
    assert grid_ceil(moment, 15 * MIN, AMS) == moment
    assert grid_floor(moment, 15 * MIN, AMS) == moment
    assert grid_ceil(moment + timedelta(seconds=1), 15 * MIN, AMS) == moment + 15 * MIN


# --- free intervals ---------------------------------------------------------------------------

WINDOW = iv(AMS, (2026, 6, 1, 0), (2026, 6, 2, 0))
EARLY = at(AMS, 2026, 5, 31, 12)


def test_free_intervals_subtract_busy_time():
    busy = [iv(AMS, (2026, 6, 1, 10), (2026, 6, 1, 11))]
    free = free_intervals(
        window=WINDOW, open_time=[WINDOW], busy=busy, rules=rules(), tz=AMS, now=EARLY
    )
    assert free == [Interval(WINDOW.start, busy[0].start), Interval(busy[0].end, WINDOW.end)]


def test_free_intervals_keep_the_buffer_before_existing_bookings():
    # The existing booking 10:00-11:00 blocks until 11:05 (its own 5-minute buffer). A new
    # booking keeps 15 minutes free after itself, so it must end by 09:45; it may start at
    # 11:05, i.e. 11:15 on the grid.
    busy = [iv(AMS, (2026, 6, 1, 10), (2026, 6, 1, 11, 5))]
    free = free_intervals(
        window=WINDOW, open_time=[WINDOW], busy=busy, rules=rules(buffer=15 * MIN), tz=AMS,
        now=EARLY,
    )  # fmt: skip
    assert free == [
        Interval(WINDOW.start, at(AMS, 2026, 6, 1, 9, 45)),
        Interval(at(AMS, 2026, 6, 1, 11, 15), WINDOW.end),
    ]


def test_free_intervals_honour_min_notice_on_the_grid():
    now = at(AMS, 2026, 6, 1, 8, 7)
    free = free_intervals(
        window=WINDOW, open_time=[WINDOW], busy=[], rules=rules(min_notice=30 * MIN), tz=AMS,
        now=now,
    )  # fmt: skip
    assert free == [Interval(at(AMS, 2026, 6, 1, 8, 45), WINDOW.end)]


def test_free_intervals_stop_at_the_horizon():
    now = at(AMS, 2026, 5, 31, 12, 0)
    free = free_intervals(
        window=WINDOW, open_time=[WINDOW], busy=[], rules=rules(horizon=timedelta(days=1)),
        tz=AMS, now=now,
    )  # fmt: skip
    assert free == [Interval(WINDOW.start, at(AMS, 2026, 6, 1, 12, 0))]


def test_free_intervals_nothing_in_the_past_or_beyond_the_horizon():
    late = at(AMS, 2026, 6, 3, 0)
    assert (
        free_intervals(window=WINDOW, open_time=[WINDOW], busy=[], rules=rules(), tz=AMS, now=late)
        == []
    )


def test_free_intervals_drop_gaps_shorter_than_the_minimum_duration():
    busy = [
        iv(AMS, (2026, 6, 1, 10), (2026, 6, 1, 11)),
        iv(AMS, (2026, 6, 1, 11, 15), (2026, 6, 1, 12)),  # leaves a 15-minute gap
    ]
    free = free_intervals(
        window=WINDOW, open_time=[WINDOW], busy=busy, rules=rules(), tz=AMS, now=EARLY
    )
    assert free == [Interval(WINDOW.start, busy[0].start), Interval(busy[1].end, WINDOW.end)]


def test_free_intervals_trim_open_time_to_the_grid():
    open_time = [iv(AMS, (2026, 6, 1, 8, 5), (2026, 6, 1, 9, 50))]
    free = free_intervals(
        window=WINDOW, open_time=open_time, busy=[], rules=rules(), tz=AMS, now=EARLY
    )
    assert free == [iv(AMS, (2026, 6, 1, 8, 15), (2026, 6, 1, 9, 45))]


# --- fragmentation ----------------------------------------------------------------------------


def test_fragmentation_cost_prefers_a_slot_that_fills_a_gap_exactly():
    slot = iv(AMS, (2026, 6, 1, 10), (2026, 6, 1, 11))
    exact = [slot]
    whole_day = [WINDOW]
    short_gap = [iv(AMS, (2026, 6, 1, 9, 45), (2026, 6, 1, 11))]  # leaves 15 min: wasted
    r = rules()
    assert fragmentation_cost(slot, exact, r) < fragmentation_cost(slot, whole_day, r)
    assert fragmentation_cost(slot, whole_day, r) < fragmentation_cost(slot, short_gap, r)
    assert fragmentation_cost(slot, short_gap, r)[0] == 15 * MIN


def test_fragmentation_cost_counts_the_buffer_as_lost_time():
    slot = iv(AMS, (2026, 6, 1, 10), (2026, 6, 1, 11))
    free = [iv(AMS, (2026, 6, 1, 10), (2026, 6, 1, 11, 30))]
    # With a 15-minute buffer, the 30 minutes after the slot hold only 15 bookable ones.
    assert fragmentation_cost(slot, free, rules(buffer=15 * MIN))[0] == 30 * MIN
    assert fragmentation_cost(slot, free, rules())[0] == timedelta(0)


def test_fragmentation_cost_of_a_slot_that_does_not_fit():
    slot = iv(AMS, (2026, 6, 1, 10), (2026, 6, 1, 11))
    assert fragmentation_cost(slot, [iv(AMS, (2026, 6, 1, 10, 30), (2026, 6, 1, 12))], rules()) == (
        UNFIT
    )


def test_grid_fast_path_agrees_with_the_general_grid():
    from bookings.availability import _grid_functions, from_us, to_us

    for tz in (AMS, KOLKATA, KATHMANDU):
        bounds = iv(tz, (2026, 6, 1, 0), (2026, 6, 8, 0))
        for step in (15 * MIN, 30 * MIN, HOUR):
            ceil, floor = _grid_functions(bounds, step, tz)
            moment = bounds.start + timedelta(seconds=7)
            while moment < bounds.end:
                assert from_us(ceil(to_us(moment))) == grid_ceil(moment, step, tz)
                assert from_us(floor(to_us(moment))) == grid_floor(moment, step, tz)
                moment += timedelta(minutes=7, seconds=13)


# --- The hours a day view shows first (shown_window) ---


def _shown(day: date, tz: ZoneInfo, open_time=None, busy=(), now=None) -> tuple[str, str, float]:
    from bookings.availability import local_day_window, shown_window

    window = local_day_window(day, tz)
    shown = shown_window(
        window=window,
        open_time=[window] if open_time is None else open_time,
        busy=busy,
        now=now or datetime(2000, 1, 1, tzinfo=UTC),
        tz=tz,
    )
    local = shown.start.astimezone(tz), shown.end.astimezone(tz)
    return f"{local[0]:%H:%M %Z}", f"{local[1]:%H:%M %Z}", shown.duration.total_seconds() / 3600


def test_shown_window_of_a_24_7_site_is_daytime_widened_to_bookings_and_now():
    day = date(2027, 3, 10)
    assert _shown(day, AMS) == ("06:00 CET", "22:00 CET", 16)
    booking = Interval(
        datetime(2027, 3, 10, 4, 30, tzinfo=AMS).astimezone(UTC),
        datetime(2027, 3, 10, 5, 15, tzinfo=AMS).astimezone(UTC),
    )
    assert _shown(day, AMS, busy=[booking]) == ("04:00 CET", "22:00 CET", 18)
    late = datetime(2027, 3, 10, 23, 10, tzinfo=AMS).astimezone(UTC)
    assert _shown(day, AMS, now=late) == ("06:00 CET", "00:00 CET", 18)
    # Late in the evening the next two hours stay on the axis, bookable.
    evening = datetime(2027, 3, 10, 20, 40, tzinfo=AMS).astimezone(UTC)
    assert _shown(day, AMS, now=evening) == ("06:00 CET", "23:00 CET", 17)
    early = datetime(2027, 3, 10, 3, 20, tzinfo=AMS).astimezone(UTC)
    assert _shown(day, AMS, now=early) == ("03:00 CET", "22:00 CET", 19)


def test_shown_window_follows_opening_hours_and_whole_local_hours_in_odd_zones():
    day = date(2027, 3, 10)
    opened = [Interval(datetime(2027, 3, 10, 7, 30, tzinfo=KOLKATA).astimezone(UTC),
                       datetime(2027, 3, 10, 19, 0, tzinfo=KOLKATA).astimezone(UTC))]  # fmt: skip
    assert _shown(day, KOLKATA, open_time=opened) == ("07:00 IST", "19:00 IST", 12)
    # Closed all day: the daytime, on the hatched axis.
    assert _shown(day, AMS, open_time=[]) == ("06:00 CET", "22:00 CET", 16)


def test_shown_window_on_a_fall_back_night_keeps_both_two_o_clocks_apart():
    day = date(2027, 10, 31)  # Amsterdam: 03:00 CEST becomes 02:00 CET
    second = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 02:30 CET, the second 02:30
    booking = Interval(second, second + timedelta(hours=1))
    # Floored to the second 02:00 (CET), not to the first (CEST) an hour earlier.
    assert _shown(day, AMS, busy=[booking]) == ("02:00 CET", "22:00 CET", 20)
    first = Interval(second - timedelta(hours=1), second)  # 02:30 CEST
    assert _shown(day, AMS, busy=[first]) == ("02:00 CEST", "22:00 CET", 21)
