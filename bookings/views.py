"""The staff slot picker: server-rendered pages, htmx partials (`template + "#partial"`).

Every view renders its full page for a plain request (new tab, back button, no JavaScript) and
only the swapped region for an htmx one; POSTs from htmx answer with the refreshed partial and an
`HX-Trigger: bookings-changed` event that makes the open timeline reload itself.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from itertools import pairwise
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render, resolve_url
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url, trigger_client_event

from locations.models import EVSE, BookingPolicy, Location
from locations.selectors import evses_of_location, location_get, location_policy, policy_for

from .availability import grid_ceil, local_day_window, zone_label
from .exceptions import BookingError, SlotUnavailable
from .forms import (
    BookingCancelForm,
    BookingChangeForm,
    BookingForm,
    LocationSearchForm,
    OutOfOrderForm,
    QuickBookForm,
    TimelineFilterForm,
    format_minutes,
    parse_instant,
)
from .insights import location_insights
from .models import (
    OPEN_STATUSES,
    REBOOK_CODE,
    Booking,
    BookingTransition,
    CanceledReason,
    ChargerReservation,
    RequestStatus,
    Status,
)
from .selectors import (
    STANDARD_LABELS,
    Criteria,
    DeskNotice,
    NoticeCursor,
    Segment,
    SlotOffer,
    Timeline,
    TimelineRow,
    booking_get,
    booking_rebook_of,
    booking_rebooked_as,
    booking_sessions,
    booking_transitions,
    bookings_needing_attention,
    bookings_on_charger,
    day_timeline,
    desk_day_bookings,
    desk_notice_cursor,
    desk_notices,
    desk_search,
    driver_search,
    drivers_by_ids,
    evse_choose,
    free_evses_at,
    location_capacities,
    location_list_for_staff,
    next_free_slots,
    running_session_starts,
    timeline_version,
)
from .services import (
    Actor,
    OutOfOrderOutcome,
    booking_cancel,
    booking_cancel_undoable,
    booking_change,
    booking_check_in,
    booking_create,
    booking_create_for_walk_in,
    booking_mark_no_show,
    booking_rebook,
    booking_rebook_refusal,
    charger_out_of_order,
)

UID_SLOT = uuid.UUID(int=0)  # reversed once, then filled in per booking
CHANGED_EVENT = "bookings-changed"  # the timeline listens for it and reloads (HX-Trigger)
# Sent with every grid the poll (or a change) redraws: the "Needs attention" count reloads on it.
GRID_DRAWN_EVENT = "desk-grid-drawn"
POLL_SECONDS = 20  # OCPI bookings show up without a reload (issue 6: every 15-30 s)


def poll_seconds() -> int:
    # A setting only so that browser tests need not wait 20 s for a poll.
    return int(getattr(settings, "STAFF_TIMELINE_POLL_SECONDS", POLL_SECONDS))


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged-in staff only; an expired session in an htmx call sends the whole page to login.
    Every response varies on HX-Request because the same URL answers full page or partial."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if request.htmx:
                page = request.htmx.current_url_abs_path or request.get_full_path()
                login = resolve_url(settings.LOGIN_URL)
                response: HttpResponse = HttpResponseClientRedirect(
                    f"{login}?{urlencode({'next': page})}"
                )
            else:
                response = redirect_to_login(request.get_full_path())
        elif not request.user.is_staff:
            raise PermissionDenied("Staff pages need a staff account.")
        else:
            response = view(request, *args, **kwargs)
        patch_vary_headers(response, ["HX-Request"])
        return response

    return wrapper


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: say what happened; X-Refused lets the page script tell a stale token
    (signed in again in another tab) from other refusals and renew it."""
    response = render(request, "403_csrf.html", status=403)
    response["X-Refused"] = "csrf"
    return response


def _partial(request: HttpRequest) -> bool:
    # A history restore after a cache miss wants the full page even though htmx asks.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _location(location_id: int) -> Location:
    try:
        return location_get(location_id=location_id)
    except Location.DoesNotExist:
        raise Http404("No such location.") from None


def _booking(uid: str) -> Booking:
    try:
        return booking_get(uid=uid)
    except Booking.DoesNotExist:
        raise Http404("No such booking.") from None


def _changed(response: HttpResponse) -> HttpResponse:
    return trigger_client_event(response, CHANGED_EVENT, {})


# What a panel's URL keeps of the view under it: day or week, its date, filters and hours.
VIEW_PARAMS = ("view", "date", "standard", "current", "min_kw", "hours")


def _view_params(request: HttpRequest) -> dict[str, str]:
    """The view state to keep in the next panel URL: from the page's address for htmx calls
    (a POST's own URL has none), else from this request's query."""
    source, path = request.GET, request.path
    if request.htmx and request.htmx.current_url:
        page = urlsplit(request.htmx.current_url)
        source, path = QueryDict(page.query), page.path
    params = {key: source[key] for key in VIEW_PARAMS if source.get(key)}
    try:
        if resolve(path).url_name == "location_week":
            params["view"] = "week"
    except Resolver404:
        pass
    return params


def _with_view(url: str, params: dict[str, str]) -> str:
    return f"{url}?{urlencode(params)}" if params else url


# --- Locations ---


@require_GET
@staff_required
def location_list(request: HttpRequest) -> HttpResponse:
    form = LocationSearchForm(request.GET)
    q = form.cleaned_data["q"] if form.is_valid() else ""
    locations = list(location_list_for_staff(search=q))
    capacities = location_capacities(locations=locations)
    rows = [(loc, capacities[loc.pk]) for loc in locations]
    template = "bookings/location_list.html"
    if _partial(request):
        template += "#results"
    return render(request, template, {"rows": rows, "q": q})


# --- Day and week views ---

# The rows of the day and week views are made here as plain strings, so that the template only
# prints attributes and autoescapes them: a busy 50-EVSE day places ~700 links with ~10 values
# each, and any filter, tag or method call in that loop is paid ~7,000 times per page
# (benchmarks/day_view.py).
# A FULFILLED booking keeps its slot until its end (issue 14): the driver is charging on it.
STATE_LABELS = {**dict(Status.choices), Status.FULFILLED: "Charging / fulfilled"}
STATE_MARKS = {
    Status.RESERVED: "✓",
    Status.PENDING: "◷",
    Status.FULFILLED: "⚡",
    Status.CANCELED: "⊘",
    Status.NO_SHOW: "✗",
}
CHARGER_LABELS = dict(ChargerReservation.choices)
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class Badge:
    css: str
    text: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class FreeLink:
    """Free time on a track: a link to the booking form prefilled with the EVSE and start."""

    href: str
    vals: str  # hx-vals JSON
    start: str  # epoch seconds, for the click-to-time script
    end: str
    style: str
    label: str


@dataclass(frozen=True, slots=True)
class BlockLink:
    """A booking on a track: a link to its detail panel."""

    css: str
    href: str
    uid: str
    style: str
    title: str
    mark: str
    who: str
    span: str
    state: str
    charger: str
    flag: str = ""  # why the rules as they stand would refuse it, when they would
    start: str = ""  # epoch seconds, for dragging
    end: str = ""
    change_url: str = ""  # set when the booking may be moved (dragged) on the timeline


@dataclass(frozen=True, slots=True)
class WeekCell:
    """One EVSE's day in the week view: its bookings as readable chips, and its free time as
    one link to the booking form at the day's first free slot."""

    blocks: list[BlockLink]
    free: FreeLink | None
    free_text: str


@dataclass(frozen=True, slots=True)
class EVSERow:
    """One EVSE's heading and track, every value ready to print."""

    css: str
    uid: str
    name: str
    identity: str
    connectors: list[str]
    status_css: str
    status_label: str
    status_title: str
    badges: list[Badge]
    reason: str
    step: str  # seconds
    min_duration: str  # seconds
    max_duration: str  # seconds
    free: list[FreeLink]
    blocks: list[BlockLink]
    days: list[WeekCell] = field(default_factory=list)


def _style(seg: Segment) -> str:
    return f"left:{seg.left:.3f}%;width:{seg.width:.3f}%"


def _timeline_rows(
    timeline: Timeline, *, new_url: str, detail_url: str, change_url: str, week: bool
) -> list[EVSERow]:
    """The rows of a day or week view as text; detail_url and change_url have `{uid}` where a
    booking's goes."""
    tz = timeline.location.zone
    seen: dict[datetime, tuple[str, str, str]] = {}

    def local(moment: datetime) -> tuple[str, str, str]:
        # (UTC ISO for links, label, HH:MM). Formatted by hand: strftime and isoformat cost
        # ~10 µs a call here, and a busy day has ~1,000 distinct moments.
        if moment not in seen:
            wall = moment.astimezone(tz)
            hm = f"{wall.hour:02d}:{wall.minute:02d}"
            u = moment.astimezone(UTC)
            seen[moment] = (
                f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:00Z",
                hm,
                hm,
            )
        return seen[moment]

    rows = [
        _evse_row(
            row,
            local=local,
            new_url=new_url,
            detail_url=detail_url,
            change_url=change_url,
            tz=tz,
            outside=timeline.outside_rules,
        )
        for row in timeline.rows
    ]
    if week:
        rows = [
            replace(text, days=_week_cells(row, text, timeline, local, new_url))
            for row, text in zip(timeline.rows, rows, strict=True)
        ]
    return rows


def _week_cells(
    row: TimelineRow,
    text: EVSERow,
    timeline: Timeline,
    local: Callable[[datetime], tuple[str, str, str]],
    new_url: str,
) -> list[WeekCell]:
    """An EVSE's week as seven day cells (a booking across midnight shows on both days)."""
    bounds = [t.at for t in timeline.days] + [timeline.window.end]
    tz = timeline.location.zone
    cells = []
    for day_start, day_end in pairwise(bounds):
        blocks = [
            link
            for (block, _), link in sorted(
                zip(row.blocks, text.blocks, strict=True), key=lambda pair: pair[0][0].start
            )
            if block.start < day_end and day_start < block.end
        ]
        free_link, free_text = None, ""
        pieces = [
            (max(seg.start, day_start), min(seg.end, day_end), link)
            for seg, link in zip(row.free, text.free, strict=True)
            if seg.start < day_end and day_start < seg.end
        ]
        if pieces:
            start, _, link = pieces[0]
            minutes = int(sum((e - s).total_seconds() for s, e, _ in pieces) // 60)
            iso, hm, _ = local(start)
            wall = start.astimezone(tz)
            free_text = f"+ {format_minutes(minutes)} free"
            href, vals = _free_link_target(new_url, text.uid, iso)
            free_link = replace(
                link,
                href=href,
                vals=vals,
                start=str(int(start.timestamp())),
                label=f" on {text.name}, {DAY_NAMES[wall.weekday()]} {wall.day} {wall:%b}: "
                f"book from {hm}",
            )
        cells.append(WeekCell(blocks=blocks, free=free_link, free_text=free_text))
    return cells


def _free_link_target(new_url: str, evse_uid: str, iso: str) -> tuple[str, str]:
    """The booking form's URL for an EVSE and a UTC start, and the same as htmx values."""
    sep = "&" if "?" in new_url else "?"
    href = f"{new_url}{sep}evse={quote(evse_uid, safe='')}&start={iso}"
    return href, f'{{"evse": {json.dumps(evse_uid)}, "start": "{iso}"}}'


def _offline_label(last_seen: datetime | None, tz: ZoneInfo) -> str:
    """What the desk knows of a charger that is not connected: when it was last heard from (its
    last reported EVSE status is stale, so it is not shown as current)."""
    if last_seen is None:
        return "Offline, never connected"
    seen = last_seen.astimezone(tz)
    today = timezone.now().astimezone(tz).date()
    when = f"{seen:%H:%M}" if seen.date() == today else f"{seen.day} {seen:%b %Y} {seen:%H:%M}"
    return f"Offline since {when}"


def _evse_row(
    row: TimelineRow,
    *,
    local: Callable[[datetime], tuple[str, str, str]],
    new_url: str,
    detail_url: str,
    change_url: str,
    tz: ZoneInfo,
    outside: dict[uuid.UUID, str],
) -> EVSERow:
    evse = row.evse
    name = str(evse)
    free = []
    for seg in row.free:
        iso, start_label, _ = local(seg.start)
        href, vals = _free_link_target(new_url, evse.uid, iso)
        free.append(
            FreeLink(
                href=href,
                vals=vals,
                start=str(int(seg.start.timestamp())),
                end=str(int(seg.end.timestamp())),
                style=_style(seg),
                label=f"Book {name}, free {start_label} to {local(seg.end)[1]}",
            )
        )
    blocks = []
    for block, seg in row.blocks:
        who = block.who or "No driver"
        span = f"{local(block.start)[1]}–{local(block.end)[2]}"
        state = STATE_LABELS.get(block.status, block.status)
        charger = CHARGER_LABELS.get(block.charger_reservation, block.charger_reservation)
        uid = str(block.uid)
        css = f"block block-{block.status.lower()}"
        if block.needs_attention:
            css += " attention"
        title = f"{span} · {who} · {state} · charger: {charger}"
        flag = outside.get(block.uid, "")
        if flag:
            css += " outside-rules"
            title = f"⚠ Outside the rules: {flag} · {title}"
        movable = block.status in OPEN_STATUSES  # what booking_change accepts
        blocks.append(
            BlockLink(
                css=css,
                href=detail_url.format(uid=uid),
                uid=uid,
                style=_style(seg),
                title=title,
                mark=STATE_MARKS.get(block.status, "◷"),
                who=who,
                span=span,
                state=state,
                charger=charger,
                flag=flag,
                start=str(int(block.start.timestamp())),
                end=str(int(block.end.timestamp())),
                change_url=change_url.format(uid=uid) if movable else "",
            )
        )
    badges = []
    if row.session is not None:
        since = row.session.started_at.astimezone(tz)
        energy = row.session.energy_wh
        text = f"⚡ Charging since {since:%H:%M}"
        if energy is not None:
            text += f" · {energy / 1000:.1f} kWh"
        badges.append(Badge("badge badge-charging", text, "A charging session is running now."))
    if row.offline:
        badges.append(Badge("badge badge-offline", "⚠ Charger offline"))
    if row.reason:
        badges.append(Badge("badge badge-off", "⊘ Not bookable", row.reason))
    css = "row"
    if not row.bookable:
        css += " unbookable"
    if row.offline:
        css += " offline"
    return EVSERow(
        css=css,
        uid=evse.uid,
        name=name,
        identity=evse.charge_point.identity,
        connectors=[
            f"{STANDARD_LABELS.get(c.standard, c.standard)} · "
            f"{c.power_kw:g} kW {'DC' if c.is_dc else 'AC'}"
            for c in evse.connector_list()
        ],
        status_css="status status-offline"
        if row.offline
        else f"status status-{evse.status.lower()}",
        status_label=(
            _offline_label(evse.charge_point.last_seen, tz) if row.offline else row.status_label
        ),
        status_title=f"Last reported status: {row.status_label}" if row.offline else "",
        badges=badges,
        reason=row.reason,
        step=str(int(row.rules.step.total_seconds())),
        min_duration=str(int(row.rules.min_duration.total_seconds())),
        max_duration=str(int(row.rules.max_duration.total_seconds())),
        free=free,
        blocks=blocks,
    )


def _timeline_context(
    request: HttpRequest, location: Location, *, week: bool, day: date | None = None
) -> dict[str, Any]:
    now = timezone.now()
    today = now.astimezone(location.zone).date()
    filters = _timeline_filters(request)
    if day is None:
        day = filters.cleaned_data.get("date") or today
    start = day  # the week view is the 7 days from the chosen day: the desk looks ahead
    days = 7 if week else 1
    focus = not week and filters.valid_data().get("hours") != "all"
    timeline = day_timeline(
        location=location,
        day=start,
        days=days,
        criteria=filters.criteria(),
        now=now,
        focus=focus,
    )
    step = timedelta(days=days)
    view_name = "bookings:location_week" if week else "bookings:location_day"
    base = reverse(view_name, args=[location.pk])

    def url(name: str, on: date) -> str:
        return f"{reverse(name, args=[location.pk])}?{filters.query(date=on)}"

    # A panel opened from this view keeps the view in its URL (back, reload, a shared link).
    view_params = {
        k: v for k, v in QueryDict(filters.query(date=day)).items() if k in VIEW_PARAMS
    } | ({"view": "week"} if week else {})
    new_url = _with_view(reverse("bookings:booking_new", args=[location.pk]), view_params)
    detail_url = _with_view(
        reverse("bookings:booking_detail", args=[UID_SLOT]), view_params
    ).replace(str(UID_SLOT), "{uid}")
    change_url = reverse("bookings:booking_change", args=[UID_SLOT]).replace(str(UID_SLOT), "{uid}")
    shown = timeline.shown or timeline.window
    # "New booking" (and its key, n) opens the form at the next step from now on today, else
    # where the shown hours begin; with no EVSE the form proposes one (bookings.selectors).
    slot_step = timeline.rows[0].rules.step if timeline.rows else timedelta(minutes=15)
    first = (
        grid_ceil(now, slot_step, location.zone) if shown.start <= now < shown.end else shown.start
    )
    tz = location.zone
    return {
        "location": location,
        "timeline": timeline,
        "rows": _timeline_rows(
            timeline, new_url=new_url, detail_url=detail_url, change_url=change_url, week=week
        ),
        "new_url": new_url,
        "closed_styles": [_style(seg) for seg in timeline.closed],
        "now_style": "" if timeline.now_left is None else f"left:{timeline.now_left:.3f}%",
        "filters": filters,
        "week": week,
        "day": day,
        "start": start,
        "end": start + step - timedelta(days=1),
        "today": today,
        "now": now,
        "base_url": base,
        "self_url": url(view_name, day),
        "prev_url": url(view_name, day - step),
        "next_url": url(view_name, day + step),
        "today_url": url(view_name, today),
        "day_url": url("bookings:location_day", day),
        "week_url": url("bookings:location_week", day),
        "day_links": [
            (tick, url("bookings:location_day", tick.at.astimezone(location.zone).date()))
            for tick in timeline.days
        ],
        "poll_seconds": poll_seconds(),
        "changed_event": CHANGED_EVENT,
        "grid_version": timeline_version(location=location, window=timeline.window, now=now),
        "focus": focus,
        "shown_hours": f"{timeline.shown_hours:g}",
        "shown_start": int(shown.start.timestamp()),
        "shown_end": int(shown.end.timestamp()),
        "shown_label": f"{shown.start.astimezone(tz):%H:%M}–"
        + ("24:00" if shown.end == timeline.window.end else f"{shown.end.astimezone(tz):%H:%M}"),
        "is_today": day == today,
        "hours_focus_url": f"{base}?{filters.query(date=day, hours='')}",
        "hours_all_url": f"{base}?{filters.query(date=day, hours='all')}",
        "new_booking_url": _with_view(
            reverse("bookings:booking_new", args=[location.pk]),
            {**view_params, "start": first.astimezone(UTC).isoformat()},
        ),
        "csv_url": f"{reverse('bookings:day_csv', args=[location.pk])}?date={day.isoformat()}",
        "arrivals_url": f"{reverse('bookings:arrivals', args=[location.pk])}?date={day}",
        "attention_url": reverse("bookings:attention", args=[location.pk]),
        "attention_count_url": reverse("bookings:attention_count", args=[location.pk]),
        "grid_drawn_event": GRID_DRAWN_EVENT,
        "quick_url": reverse("bookings:quick_book", args=[location.pk]),
        "quick_durations": QuickBookForm.base_fields["duration"].choices,
    }


def _timeline_filters(request: HttpRequest) -> TimelineFilterForm:
    filters = TimelineFilterForm(request.GET)
    filters.is_valid()
    return filters


def _grid_unchanged(request: HttpRequest, location: Location, *, week: bool) -> bool:
    """Whether a grid refresh asks about a version that is still current (the grid element
    sends the version it shows as X-Grid-Version)."""
    seen = request.headers.get("X-Grid-Version")
    if not (seen and _partial(request) and request.htmx.target == "grid"):
        return False
    now = timezone.now()
    today = now.astimezone(location.zone).date()
    day = _timeline_filters(request).cleaned_data.get("date") or today
    window = local_day_window(day, location.zone, days=7 if week else 1)
    return seen == timeline_version(location=location, window=window, now=now)


TEMPLATE = "bookings/timeline.html"  # one screen: a location's day or week, with its side panel


@dataclass(frozen=True, slots=True)
class NoticeView:
    key: str
    kind: str
    text: str
    href: str


def _notices(request: HttpRequest, location: Location) -> tuple[list[NoticeView], str | None]:
    """On a grid poll: what arrived since the cursor the page sent (X-Desk-Seen), as notices
    with links, and the cursor to send next (None when the poll sent none)."""
    if not (_partial(request) and request.htmx.target == "grid"):
        return [], None
    since = NoticeCursor.parse(request.headers.get("X-Desk-Seen", ""))
    if since is None:
        return [], None
    found, cursor = desk_notices(location=location, since=since)
    return [_notice_view(n) for n in found], str(cursor)


def _notice_view(notice: DeskNotice) -> NoticeView:
    href = (
        reverse("bookings:booking_detail", args=[notice.booking_uid]) if notice.booking_uid else ""
    )
    return NoticeView(notice.key, notice.kind, notice.text, href)


def _render_timeline(request: HttpRequest, location_id: int, *, week: bool) -> HttpResponse:
    location = _location(location_id)
    with timezone.override(location.zone):
        notices, cursor = _notices(request, location)
        if not notices and _grid_unchanged(request, location, week=week):
            response = HttpResponse(status=204)  # htmx keeps the grid it shows
            if cursor is not None:
                response["X-Desk-Seen"] = cursor  # staff.js keeps it for the next poll
            return response
        context = _timeline_context(request, location, week=week)
        context["notices"] = notices
        context["desk_seen"] = cursor or str(desk_notice_cursor(location=location))
        template = TEMPLATE
        if not _partial(request):
            return render(request, template, context)
        # The poll and the "changed" event reload the grid only; navigation and filters
        # reload the toolbar with it (dates and links change).
        if request.htmx.target != "grid":
            return render(request, template + "#view", context)
        # A redrawn grid: the "Needs attention" count in the toolbar asks again (at least every
        # minute, as the grid's version changes with the minute).
        return trigger_client_event(
            render(request, template + "#grid", context), GRID_DRAWN_EVENT, {}
        )


@require_GET
@staff_required
def location_day(request: HttpRequest, location_id: int) -> HttpResponse:
    return _render_timeline(request, location_id, week=False)


@require_GET
@staff_required
def location_week(request: HttpRequest, location_id: int) -> HttpResponse:
    return _render_timeline(request, location_id, week=True)


# --- The side panel: booking form and booking detail ---


def _panel(
    request: HttpRequest,
    location: Location,
    partial: str,
    context: dict[str, Any],
    *,
    day: date,
    status: int = 200,
) -> HttpResponse:
    """The panel alone for htmx, else the location's page with the panel open: the day or week
    view its URL names (`view`, `date`, the filters: _view_params), else `day`."""
    params = _view_params(request)
    week = params.get("view") == "week"
    shown = TimelineFilterForm(params).valid_data().get("date") or day
    close = _with_view(
        reverse("bookings:location_week" if week else "bookings:location_day", args=[location.pk]),
        {k: v for k, v in params.items() if k != "view"} | {"date": shown.isoformat()},
    )
    context = {**context, "close_url": close}
    if _partial(request):
        return render(request, f"{TEMPLATE}#{partial}", context, status=status)
    page = _timeline_context(request, location, week=week, day=shown)
    return render(request, TEMPLATE, {**page, **context, "panel": partial}, status=status)


def _local_initial(value: str | None, location: Location) -> datetime | None:
    """A start passed in a link (ISO, with or without offset) as an aware datetime; one that
    names no single instant is left for the user to fill in."""
    try:
        return parse_instant(value or "", location.zone).astimezone(location.zone)
    except ValidationError:
        return None


def _form_context(location: Location, form: BookingForm, q: str) -> dict[str, Any]:
    selected = form["driver"].value()
    results = driver_search(q=q) if q else []
    # The chosen driver stays listed (and checked) whatever the search shows now.
    if selected and str(selected).isdigit():
        ids = {d.pk for d in results}
        results = [d for d in drivers_by_ids(ids=[int(selected)]) if d.pk not in ids] + results
    return {
        "location": location,
        "form": form,
        "q": q,
        "driver_results": results,
        "selected_driver": str(selected or ""),
        "form_url": reverse("bookings:booking_new", args=[location.pk]),
    }


@require_http_methods(["GET", "POST"])
@staff_required
def booking_new(request: HttpRequest, location_id: int) -> HttpResponse:
    """GET: the form, prefilled from the clicked free time (and driver search results).
    POST: book it; on a refusal the form says why and the timeline reloads."""
    location = _location(location_id)
    evses = list(evses_of_location(location=location))
    policy = location_policy(location)
    with timezone.override(location.zone):
        if request.method == "GET":
            start = _local_initial(request.GET.get("start"), location)
            evse_uid = request.GET.get("evse")
            duration = request.GET.get("duration") or _default_duration(policy)
            if not evse_uid and start is not None and str(duration).isdigit():
                # "New booking" names a time only: propose the EVSE the engine would give it.
                chosen = evse_choose(
                    location=location,
                    start=start,
                    end=start.astimezone(UTC) + timedelta(minutes=int(duration)),
                )
                evse_uid = chosen.uid if chosen else None
            initial = {
                "evse": evse_uid,
                "start": start,
                "duration": duration,
                "driver": request.GET.get("driver"),
                "notes": request.GET.get("notes", ""),
            }
            form = BookingForm(initial=initial, evses=evses, policy=policy)
            q = request.GET.get("q", "").strip()[:100]
            if _partial(request) and request.htmx.target == "driver-results":
                context = _form_context(location, form, q)
                return render(request, f"{TEMPLATE}#driver_results", context)
            day = (start or timezone.now()).astimezone(location.zone).date()
            return _panel(
                request, location, "booking_form", _form_context(location, form, q), day=day
            )

        form = BookingForm(request.POST, evses=evses, policy=policy)
        q = request.POST.get("q", "").strip()[:100]
        refused, alternatives = False, []
        if form.is_valid():
            try:
                if form.walk_in is not None:
                    booking = booking_create_for_walk_in(
                        walk_in=form.walk_in,
                        evse=form.cleaned_data["evse"],
                        start=form.cleaned_data["start"],
                        end=form.end,
                        actor=Actor.staff(request.user),
                        notes=form.cleaned_data["notes"],
                    )
                else:
                    booking = booking_create(
                        evse=form.cleaned_data["evse"],
                        start=form.cleaned_data["start"],
                        end=form.end,
                        actor=Actor.staff(request.user),
                        driver=form.cleaned_data["driver"],
                        notes=form.cleaned_data["notes"],
                    )
            except ValidationError as error:  # the walk-in driver could not be registered
                _walk_in_errors(form, error)
            except BookingError as error:
                form.add_error(None, error.message)
                refused = True
                if isinstance(error, SlotUnavailable):
                    alternatives = _alternatives(request, location, form)
            else:
                if not _partial(request):
                    return redirect("bookings:booking_detail", uid=booking.uid)
                booking = booking_get(uid=booking.uid)
                context = _detail_context(booking, notice="Booked.")
                response = render(request, f"{TEMPLATE}#booking_detail", context)
                # The open panel is in the URL: reload, back and a shared link show the booking.
                detail = reverse("bookings:booking_detail", args=[booking.uid])
                response = push_url(response, _with_view(detail, _view_params(request)))
                return _changed(response)
        start = form.cleaned_data.get("start") or timezone.now()
        response = _panel(
            request,
            location,
            "booking_form",
            {**_form_context(location, form, q), "alternatives": alternatives},
            day=start.astimezone(location.zone).date(),
        )
        # A refusal may mean someone else just took the slot: reload the rows to show it.
        return _changed(response) if refused else response


# driver_create's field names -> the walk-in fields of the booking form
WALK_IN_FIELDS = {"name": "guest_name", "license_plate": "guest_plate", "phone": "guest_phone"}


def _walk_in_errors(form: BookingForm, error: ValidationError) -> None:
    """driver_create's refusal on the form's walk-in fields: a card uid another driver holds
    already is the one refusal the form cannot see beforehand."""
    fields = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
    for name, messages in fields.items():
        target = WALK_IN_FIELDS.get(name)
        if target is None:
            form.add_error(
                "guest_token",
                "Another driver holds this card already: search for them above, or leave the "
                "card out.",
            )
            return
        form.add_error(target, messages)


@dataclass(frozen=True, slots=True)
class Offer:
    """A slot offered instead of a taken one (or found by quick book): a link that opens the
    booking form on it, keeping the driver and notes already chosen."""

    href: str
    text: str


def _offer(location: Location, offer: SlotOffer, text: str, keep: dict[str, str]) -> Offer:
    minutes = int((offer.end - offer.start).total_seconds() // 60)
    query = {
        "evse": offer.evse.uid,
        "start": offer.start.astimezone(UTC).isoformat(),
        "duration": str(minutes),
        **{k: v for k, v in keep.items() if v},
    }
    href = f"{reverse('bookings:booking_new', args=[location.pk])}?{urlencode(query)}"
    return Offer(href=href, text=text)


ALTERNATIVES = 4  # other EVSEs offered at the taken time


def _alternatives(request: HttpRequest, location: Location, form: BookingForm) -> list[Offer]:
    """When the slot is taken: the same time on other EVSEs, and the next free time on the
    chosen one (bookings.selectors decides what is free)."""
    evse, start, end = form.cleaned_data["evse"], form.cleaned_data["start"], form.end
    tz = location.zone
    keep = {
        "driver": request.POST.get("driver", ""),
        "notes": request.POST.get("notes", "")[:500],
        "q": request.POST.get("q", "")[:100],
        **_view_params(request),
    }
    offers = []
    wall = f"{start.astimezone(tz):%H:%M}"
    others = [e for e in free_evses_at(location=location, start=start, end=end) if e != evse]
    for other in others[:ALTERNATIVES]:
        slot = SlotOffer(other, start, end)
        offers.append(_offer(location, slot, f"{other} at {wall} (same time)", keep))
    for slot in next_free_slots(location=location, evse=evse, after=start, duration=end - start):
        local = slot.start.astimezone(tz)
        day = (
            ""
            if local.date() == start.astimezone(tz).date()
            else f"{DAY_NAMES[local.weekday()]} {local.day} {local:%b} "
        )
        offers.append(
            _offer(location, slot, f"{evse} at {day}{local:%H:%M} (next free on {evse})", keep)
        )
    return offers


@require_GET
@staff_required
def quick_book(request: HttpRequest, location_id: int) -> HttpResponse:
    """The next free slot for a duration across the location (e.g. DC >= 100 kW for 1 h),
    opened in the booking form."""
    location = _location(location_id)
    form = QuickBookForm(request.GET)
    with timezone.override(location.zone):
        if not form.is_valid():
            context = {"location": location, "quick_form": form, "offers": []}
            return _panel(
                request, location, "quick_result", context, day=timezone.localdate(), status=400
            )
        data = form.cleaned_data
        duration = timedelta(minutes=int(data["duration"]))
        criteria = Criteria(power_type=data["current"] or None, min_power_kw=data["min_kw"])
        offers = next_free_slots(
            location=location, after=timezone.now(), duration=duration, criteria=criteria,
            limit=ALTERNATIVES,
        )  # fmt: skip
        tz = location.zone
        links = []
        for offer in offers:
            local = offer.start.astimezone(tz)
            text = (
                f"{offer.evse} · {DAY_NAMES[local.weekday()]} {local.day} {local:%b}, "
                f"{local:%H:%M}–{offer.end.astimezone(tz):%H:%M}"
            )
            links.append(_offer(location, offer, text, _view_params(request)))
        context = {
            "location": location,
            "quick_form": form,
            "offers": links,
            "duration_label": format_minutes(int(data["duration"])),
        }
        return _panel(request, location, "quick_result", context, day=timezone.localdate())


def _when(start: datetime, end: datetime, tz: ZoneInfo, *, with_day: bool = True) -> str:
    """A booking's period on the location's clock, saying which clock (CEST or CET) so that
    each time in the repeated hour of a fall-back day names one instant."""
    start, end = start.astimezone(tz), end.astimezone(tz)
    day = f"{DAY_NAMES[start.weekday()]} {start.day} {start:%b %Y}, " if with_day else ""
    end_day = (
        "" if end.date() == start.date() else f"{DAY_NAMES[end.weekday()]} {end.day} {end:%b} "
    )
    if start.utcoffset() == end.utcoffset():
        return f"{day}{start:%H:%M}–{end_day}{end:%H:%M} ({zone_label(start, tz)})"
    return (
        f"{day}{start:%H:%M} ({zone_label(start, tz)}) – "
        f"{end_day}{end:%H:%M} ({zone_label(end, tz)})"
    )


# Audit codes as people read them (a cancel reason, a charger's answer, a request's fate).
CODE_LABELS = {
    **dict(CanceledReason.choices),
    **dict(ChargerReservation.choices),
    **dict(RequestStatus.choices),
    REBOOK_CODE: "Undo of a cancel: booked again",
}


@dataclass(frozen=True, slots=True)
class HistoryLine:
    at: datetime
    what: str
    actor: str
    changes: list[str]
    code: str
    reason: str


def _history(
    transitions: list[BookingTransition], tz: ZoneInfo, evse_names: dict[str, str]
) -> list[HistoryLine]:
    """The audit trail in words: what changed from what to what, codes as labels."""
    lines = []
    for t in transitions:
        what = t.get_event_display()
        if t.from_status and t.from_status != t.to_status:
            what += f": {t.get_from_status_display().lower()} → {t.get_to_status_display().lower()}"
        elif t.event == BookingTransition.Event.CREATED:
            what += f": {t.get_to_status_display().lower()}"
        changes = []
        before, after = t.details.get("before"), t.details.get("after")
        if isinstance(before, dict) and isinstance(after, dict):
            changes = _changes(before, after, tz, evse_names)
        code = CODE_LABELS.get(t.code, t.code.replace("_", " ").capitalize()) if t.code else ""
        lines.append(
            HistoryLine(
                at=t.at,
                what=what,
                actor=t.actor_label or t.get_actor_type_display(),
                changes=changes,
                code=code,
                reason=t.reason,
            )
        )
    return lines


def _changes(before: dict, after: dict, tz: ZoneInfo, evse_names: dict[str, str]) -> list[str]:
    try:
        old = [datetime.fromisoformat(before[k]) for k in ("start", "end")]
        new = [datetime.fromisoformat(after[k]) for k in ("start", "end")]
    except (KeyError, TypeError, ValueError):
        return []
    changes = []
    if old[0] != new[0] or old[1] != new[1]:
        same_day = old[0].astimezone(tz).date() == new[0].astimezone(tz).date()
        changes.append(f"Time: {_when(*old, tz)} → {_when(*new, tz, with_day=not same_day)}")
    if before.get("evse") != after.get("evse"):
        name = evse_names.get
        changes.append(
            f"EVSE: {name(before.get('evse'), before.get('evse'))} → "
            f"{name(after.get('evse'), after.get('evse'))}"
        )
    old_minutes = int((old[1] - old[0]).total_seconds() // 60)
    new_minutes = int((new[1] - new[0]).total_seconds() // 60)
    if old_minutes != new_minutes:
        changes.append(f"Duration: {format_minutes(old_minutes)} → {format_minutes(new_minutes)}")
    return changes


def _default_duration(policy: BookingPolicy) -> int:
    return max(policy.min_duration_minutes, min(60, policy.max_duration_minutes))


def _detail_context(
    booking: Booking,
    *,
    notice: str = "",
    change_form: BookingChangeForm | None = None,
    cancel_form: BookingCancelForm | None = None,
) -> dict[str, Any]:
    location = booking.location
    evses = list(evses_of_location(location=location))
    policy = policy_for(booking.evse, location) if booking.evse else location_policy(location)
    duration = int((booking.end.timestamp() - booking.start.timestamp()) // 60)
    initial = {"evse": booking.evse.uid if booking.evse else None, "start": booking.start}
    if change_form is None:
        change_form = BookingChangeForm(
            initial={**initial, "duration": duration}, evses=evses, policy=policy
        )
    step = policy.slot_step_minutes
    resize = []
    for label, minutes in ((f"Shorten {step} min", duration - step),
                           (f"Extend {step} min", duration + step)):  # fmt: skip
        if policy.min_duration_minutes <= minutes <= policy.max_duration_minutes:
            resize.append((label, minutes))
    return {
        "location": location,
        "booking": booking,
        "when": _when(booking.start, booking.end, location.zone),
        "history": _history(
            list(booking_transitions(booking=booking)),
            location.zone,
            {e.uid: str(e) for e in evses},
        ),
        "notice": notice,
        "change_form": change_form,
        "cancel_form": cancel_form or BookingCancelForm(),
        "resize": resize,
        "can_change": booking.status in OPEN_STATUSES,
        "cancel_question": "Its slot is released and "
        + (
            "the driver is told. Undo stays offered for a moment afterwards."
            if booking_cancel_undoable(booking)
            else "its eMSP or API client is told at once: this cannot be undone here."
        ),
        "rebook_of": booking_rebook_of(booking=booking),
        "rebooked_as": booking_rebooked_as(booking=booking),
        "sessions": [
            {
                "when": _when(s.started_at, s.stopped_at, location.zone)
                if s.stopped_at
                else f"since {s.started_at.astimezone(location.zone):%H:%M}, charging now",
                "energy": "no meter value yet"
                if s.energy_wh is None
                else f"{s.energy_wh / 1000:.2f} kWh",
            }
            for s in booking_sessions(booking=booking)
        ],
    }


@require_GET
@staff_required
def booking_detail(request: HttpRequest, uid: str) -> HttpResponse:
    booking = _booking(uid)
    with timezone.override(booking.location.zone):
        return _panel(
            request,
            booking.location,
            "booking_detail",
            _detail_context(booking),
            day=booking.start.astimezone(booking.location.zone).date(),
        )


@require_http_methods(["GET", "POST"])
@staff_required
def booking_change_view(request: HttpRequest, uid: str) -> HttpResponse:
    """Move (time or EVSE), extend or shorten: one booking_change call. A drag on the timeline
    (htmx target `notices`) sends an `end` instead of a duration and is answered with a notice."""
    if request.method == "GET":
        return redirect("bookings:booking_detail", uid=uid)
    booking = _booking(uid)
    location = booking.location
    evses = list(evses_of_location(location=location))
    policy = policy_for(booking.evse, location)
    with timezone.override(location.zone):
        form = BookingChangeForm(request.POST, evses=evses, policy=policy)
        notice, changed = "", False
        # Where it was, for the Undo a drag's notice offers.
        before = MovedFrom(booking.evse, booking.start, booking.end)
        if form.is_valid():
            try:
                booking_change(
                    booking=booking,
                    actor=Actor.staff(request.user),
                    start=form.cleaned_data["start"],
                    end=form.end,
                    evse=form.cleaned_data["evse"],
                    override_reason=form.cleaned_data["override_reason"],
                )
            except BookingError as error:
                form.add_error(None, error.message)
            else:
                if not _partial(request):
                    return redirect("bookings:booking_detail", uid=uid)
                notice, changed, form = "Changed.", True, None
        booking = _booking(uid)
        if _partial(request) and request.POST.get("undo"):
            return _changed(_undo_move_notice(request, booking, form))
        if _partial(request) and request.htmx.target == "notices":
            return _changed(_drag_notice(request, booking, form, before))
        response = _panel(
            request,
            location,
            "booking_detail",
            _detail_context(booking, notice=notice, change_form=form),
            day=booking.start.astimezone(location.zone).date(),
        )
        return _changed(response) if changed or (form is not None and form.errors) else response


UNDO_SECONDS = 20  # how long the notice after a cancel or a drag offers "Undo"


def _notice(request: HttpRequest, context: dict[str, Any], *, oob: bool = False) -> str:
    """One in-page notice (the #notices region of every page): text, an optional action or
    link, and how long it stays (none for an error: it waits to be dismissed)."""
    defaults = {
        "kind": "ok",
        "action_url": "",
        "action_label": "",
        "action_values": [],
        "link_url": "",
        "timeout": 8,
    }
    return render_to_string(
        f"{TEMPLATE}#notice", {**defaults, **context, "oob": oob}, request=request
    )


@dataclass(frozen=True, slots=True)
class MovedFrom:
    """Where a booking was before a drag: what its notice's Undo sends back to booking_change."""

    evse: EVSE | None
    start: datetime
    end: datetime


def _form_errors(form: BookingChangeForm) -> str:
    return " ".join(
        [str(e) for e in form.non_field_errors()]
        + [
            f"{form[name].label}: {' '.join(errs)}"
            for name, errs in form.errors.items()
            if name != "__all__"
        ]
    )


def _drag_notice(
    request: HttpRequest, booking: Booking, form: BookingChangeForm | None, before: MovedFrom
) -> HttpResponse:
    """What a drag on the timeline did, where the eye is (the timeline reloads either way, so a
    refused block goes back to where it was). A move offers Undo for a moment: the same change
    back to where it was, through the same booking_change (so every rule applies again). Unlike
    a cancel's Undo it is offered for an eMSP's or API client's booking too: a move is not final,
    its partner was told of it and is told of the move back the same way."""
    if form is not None:
        return _refused_notice(request, booking, f"Not moved: {_form_errors(form)}")
    tz = booking.location.zone
    who = booking.driver.name if booking.driver else "The booking"
    text = f"{who}: moved to {_when(booking.start, booking.end, tz)} on {booking.evse}."
    context: dict[str, Any] = {"text": text}
    if (before.evse, before.start, before.end) != (booking.evse, booking.start, booking.end):
        back = f"{_when(before.start, before.end, tz)} on {before.evse}"
        told = "" if booking.channel == Booking.Channel.STAFF else "; its partner is told again"
        context |= {
            "action_url": _with_view(
                reverse("bookings:booking_change", args=[booking.uid]), _view_params(request)
            ),
            "action_label": "Undo",
            "action_hint": f"Moves it back to {back}, if that is still free{told}",
            "action_values": [
                ("undo", "1"),
                ("evse", before.evse.uid if before.evse else ""),
                ("start", before.start.astimezone(tz).isoformat()),
                ("end", before.end.astimezone(tz).isoformat()),
                ("override_reason", ""),
            ],
            "booking_uid": str(booking.uid),
            "timeout": UNDO_SECONDS,
        }
    return HttpResponse(_notice(request, context))


def _undo_move_notice(
    request: HttpRequest, booking: Booking, form: BookingChangeForm | None
) -> HttpResponse:
    """The answer to a drag notice's Undo (a change back): done, or why not. Offered once: the
    notice it replaces had the only Undo."""
    if form is not None:
        return _refused_notice(request, booking, f"Could not undo the move: {_form_errors(form)}")
    who = booking.driver.name if booking.driver else "The booking"
    when = _when(booking.start, booking.end, booking.location.zone)
    context = {"text": f"Move undone: {who} is back at {when} on {booking.evse}."}
    return HttpResponse(_notice(request, context))


def _refused_notice(request: HttpRequest, booking: Booking, text: str) -> HttpResponse:
    """A drag's or its Undo's refusal: the service's reason, kept until dismissed, with a link to
    the booking's panel."""
    detail = _with_view(
        reverse("bookings:booking_detail", args=[booking.uid]), _view_params(request)
    )
    context = {
        "kind": "error",
        "text": text,
        "link_url": detail,
        "link_label": "Open the booking",
        "timeout": 0,
    }
    return HttpResponse(_notice(request, context))


@require_http_methods(["GET", "POST"])
@staff_required
def booking_cancel_view(request: HttpRequest, uid: str) -> HttpResponse:
    """Cancel with a reason: one booking_cancel call."""
    if request.method == "GET":
        return redirect("bookings:booking_detail", uid=uid)
    booking = _booking(uid)
    location = booking.location
    with timezone.override(location.zone):
        form = BookingCancelForm(request.POST)
        notice = ""
        if form.is_valid():
            try:
                booking_cancel(
                    booking=booking,
                    actor=Actor.staff(request.user),
                    reason=form.cleaned_data["reason"],
                    note=form.cleaned_data["note"],
                    override_reason=form.cleaned_data["override_reason"],
                )
            except BookingError as error:
                form.add_error(None, error.message)
            else:
                if not _partial(request):
                    return redirect("bookings:booking_detail", uid=uid)
                notice, form = "Canceled.", None
        booking = _booking(uid)
        response = _panel(
            request,
            location,
            "booking_detail",
            _detail_context(booking, notice=notice, cancel_form=form),
            day=booking.start.astimezone(location.zone).date(),
        )
        if form is not None:
            return response
        if _partial(request):
            response.write(_notice(request, _cancel_notice(request, booking), oob=True))
        return _changed(response)


def _cancel_notice(request: HttpRequest, booking: Booking) -> dict[str, Any]:
    """The notice after a cancel: "Undo" (book the same again) where the desk may, else why not."""
    who = booking.driver.name if booking.driver else "The booking"
    when = _when(booking.start, booking.end, booking.location.zone)
    refusal = booking_rebook_refusal(booking)
    if refusal:
        return {"text": f"Canceled: {who}, {when}. {refusal}", "timeout": UNDO_SECONDS}
    return {
        "text": f"Canceled: {who}, {when}.",
        "action_url": _with_view(
            reverse("bookings:booking_rebook", args=[booking.uid]), _view_params(request)
        ),
        "action_label": "Undo",
        "action_hint": "Books the same driver, EVSE and time again, if still free",
        "timeout": UNDO_SECONDS,
    }


@require_POST
@staff_required
def booking_rebook_view(request: HttpRequest, uid: str) -> HttpResponse:
    """Undo a cancel: one booking_rebook call; the panel shows the new booking."""
    booking = _booking(uid)
    location = booking.location
    params = _view_params(request)
    with timezone.override(location.zone):
        try:
            new = booking_rebook(booking=booking, actor=Actor.staff(request.user))
        except BookingError as error:
            if not _partial(request):
                context = _detail_context(booking, notice=f"Not booked again: {error.message}")
                day = booking.start.astimezone(location.zone).date()
                return _panel(request, location, "booking_detail", context, day=day)
            text = f"Could not undo the cancel: {error.message}"
            notice = {"kind": "error", "text": text, "timeout": 0}
            return _changed(HttpResponse(_notice(request, notice)))
        detail = _with_view(reverse("bookings:booking_detail", args=[new.uid]), params)
        if not _partial(request):
            return redirect(detail)
        new = booking_get(uid=new.uid)
        when = _when(new.start, new.end, location.zone)
        who = new.driver.name if new.driver else "The booking"
        notice = {"text": f"Cancel undone: {who} is booked again, {when}."}
        response = HttpResponse(_notice(request, notice))
        # The panel shows the new booking too (its URL is the one pushed).
        day = new.start.astimezone(location.zone).date()
        panel = _panel(request, location, "booking_detail", _detail_context(new), day=day)
        response.write('<div id="panel" hx-swap-oob="innerHTML">')
        response.write(panel.content)
        response.write("</div>")
        return _changed(push_url(response, detail))


# --- Insights ---

INSIGHT_DAYS = (7, 30)
# Booked share of an hour -> fill, in six steps of one sequential blue (readable in greyscale and
# by the common colour-vision deficiencies); every cell also carries its figure as a tooltip and
# the table under the picture has every figure as text.
HEAT_STEPS = (
    (0.0, "#eef2f6", "0%"),
    (0.10, "#d6e6fb", "1–10%"),
    (0.25, "#9cc3f5", "10–25%"),
    (0.50, "#4f8fe0", "25–50%"),
    (0.75, "#1f5fa8", "50–75%"),
    (1.0, "#0f2f5c", "75–100%"),
)
HEAT_LABEL_W, HEAT_CELL_W, HEAT_CELL_H, HEAT_HEAD_H = 150, 34, 22, 22


@dataclass(frozen=True, slots=True)
class HeatCell:
    x: int
    y: int
    fill: str
    title: str


@dataclass(frozen=True, slots=True)
class HeatRow:
    label: str
    y: int
    text_y: int
    average: str
    cells: tuple[HeatCell, ...]
    percents: tuple[int, ...]

    # A 50-EVSE heatmap is 1,200 cells, its table as many: each row's cells are joined here
    # with format_html_join (every value escaped), where the template engine's loop over
    # them took more than half of the page's time.
    def rects(self) -> str:
        return format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}"><title>{}</title></rect>',
            ((c.x, c.y, HEAT_CELL_W - 2, HEAT_CELL_H - 2, c.fill, c.title) for c in self.cells),
        )

    def table_cells(self) -> str:
        return format_html_join("", "<td>{}</td>", ((p,) for p in self.percents))


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    width: float  # percent of the widest bar
    note: str


def _heat_fill(share: float) -> str:
    if share <= 0:
        return HEAT_STEPS[0][1]
    return next(fill for bound, fill, _ in HEAT_STEPS[1:] if share <= bound + 1e-9)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _bars(items: list[tuple[str, int, str]]) -> list[Bar]:
    top = max((v for _, v, _ in items), default=0) or 1
    return [Bar(label, v, round(100 * v / top, 1), note) for label, v, note in items]


@require_GET
@staff_required
def location_insights_view(request: HttpRequest, location_id: int) -> HttpResponse:
    """Pictures of the location's last 7 or 30 days: booked hours per EVSE, channels, outcomes,
    lead times (bookings.insights computes the figures)."""
    location = _location(location_id)
    asked = request.GET.get("days", str(INSIGHT_DAYS[0]))
    days = int(asked) if asked in {str(d) for d in INSIGHT_DAYS} else INSIGHT_DAYS[0]
    wrong_days = asked != str(days)
    data = location_insights(location=location, days=days)
    rows = []
    for i, evse in enumerate(data.evses):
        y = HEAT_HEAD_H + i * HEAT_CELL_H
        cells = tuple(
            HeatCell(
                x=HEAT_LABEL_W + hour * HEAT_CELL_W,
                y=y,
                fill=_heat_fill(share),
                title=f"{evse.label}, {hour:02d}:00–{(hour + 1) % 24:02d}:00: "
                f"{_percent(share)} booked",
            )
            for hour, share in enumerate(evse.shares)
        )
        rows.append(
            HeatRow(
                label=evse.label,
                y=y,
                text_y=y + HEAT_CELL_H // 2 + 4,
                average=_percent(evse.average),
                cells=cells,
                percents=tuple(round(s * 100) for s in evse.shares),
            )
        )
    o = data.outcomes
    lead_total = sum(n for _, n in data.lead.buckets)
    context = {
        "location": location,
        "insights": data,
        "days": days,
        "day_choices": INSIGHT_DAYS,
        "wrong_days": wrong_days,
        "heat": {
            "rows": rows,
            "width": HEAT_LABEL_W + 24 * HEAT_CELL_W,
            "height": HEAT_HEAD_H + max(1, len(rows)) * HEAT_CELL_H,
            "hours": [
                (HEAT_LABEL_W + h * HEAT_CELL_W + HEAT_CELL_W // 2, f"{h:02d}") for h in range(24)
            ],
            "legend": [(fill, label) for _, fill, label in HEAT_STEPS],
            "average": _percent(
                sum(e.average for e in data.evses) / len(data.evses) if data.evses else None
            ),
        },
        "channels": _bars(
            [
                (c.label, c.made, f"{c.canceled} of them canceled" if c.canceled else "")
                for c in data.channels
            ]
        ),
        "outcomes": o,
        "no_show_rate": _percent(o.no_show_rate),
        "cancel_rate": _percent(o.cancel_rate),
        "outcome_bars": _bars(
            [
                ("Fulfilled (driver came)", o.fulfilled, ""),
                ("No-show", o.no_show, ""),
                ("Canceled", o.canceled, ""),
                ("Still open", o.open, "reserved or pending, not resolved yet"),
                ("Refused requests", o.refused, "rejected or failed, never bookings"),
            ]
        ),
        "lead_bars": _bars(
            [
                (label, n, f"{_percent(n / lead_total)} of bookings" if lead_total else "")
                for label, n in data.lead.buckets
            ]
        ),
        "lead_median": (
            "–"
            if data.lead.median_hours is None
            else f"{data.lead.median_hours:.1f} h"
            if data.lead.median_hours < 48
            else f"{data.lead.median_hours / 24:.1f} days"
        ),
        "day_url": reverse("bookings:location_day", args=[location.pk]),
    }
    return render(request, "bookings/insights.html", context)


# --- Today's arrivals and departures ---

ENDS_SOON = timedelta(minutes=10)  # "ends in N min": time to tell the driver to move on


@dataclass(frozen=True, slots=True)
class DeskEntry:
    """One line of the arrivals and departures list: a booking starting or ending that day,
    every value ready to print (a busy day has 600 lines: benchmarks/day_view.py)."""

    at: datetime
    kind: str  # "Arrives" or "Leaves"
    booking: Booking
    state: str
    flags: list[Badge]
    can_check_in: bool
    can_no_show: bool
    css: str = ""
    time: str = ""  # HH:MM on the location's clock
    who: str = ""
    plate: str = ""
    evse: str = ""
    href: str = ""  # the booking's panel
    check_in_url: str = ""
    no_show_url: str = ""


def _desk_entries(location: Location, day: date, now: datetime) -> list[DeskEntry]:
    window = local_day_window(day, location.zone)
    bookings = desk_day_bookings(location=location, window=window)
    charging = running_session_starts(evse_ids=sorted({b.evse_id for b in bookings if b.evse_id}))
    tz = location.zone
    # Reversed once, the booking's uid put in per line: reverse() per line was a third of a busy
    # day's page.
    urls = {
        name: reverse(f"bookings:{name}", args=[UID_SLOT]).replace(str(UID_SLOT), "{uid}")
        for name in ("booking_detail", "booking_check_in", "booking_no_show")
    }
    entries = []
    for b in bookings:
        state = STATE_LABELS.get(b.status, b.status)
        reserved = b.status == Status.RESERVED
        uid = str(b.uid)
        driver = b.driver
        text = {
            "who": driver.name
            if driver
            else (f"{b.emsp_country_code}*{b.emsp_party_id}" if b.emsp_party_id else "No driver"),
            "plate": driver.license_plate if driver else "",
            "evse": str(b.evse) if b.evse else "—",
            "href": urls["booking_detail"].format(uid=uid),
            "check_in_url": urls["booking_check_in"].format(uid=uid),
            "no_show_url": urls["booking_no_show"].format(uid=uid),
        }
        status_css = f"entry-{b.status.lower()}"
        if window.start <= b.start < window.end:
            flags = []
            if b.checked_in_at:
                flags.append(
                    Badge("badge badge-ok", f"✓ Arrived {b.checked_in_at.astimezone(tz):%H:%M}")
                )
            elif reserved and b.start <= now:
                flags.append(Badge("badge badge-offline", "◷ Late"))
            entries.append(
                DeskEntry(
                    at=b.start,
                    kind="Arrives",
                    booking=b,
                    state=state,
                    flags=flags,
                    can_check_in=reserved and b.checked_in_at is None,
                    can_no_show=reserved and b.start <= now,
                    css=f"entry entry-arrives {status_css}",
                    time=_hm(b.start, tz),
                    **text,
                )
            )
        if window.start <= b.end < window.end:
            flags = []
            active = b.status in (Status.RESERVED, Status.FULFILLED)
            if active and now < b.end <= now + ENDS_SOON:
                minutes = max(1, int((b.end - now).total_seconds() // 60))
                flags.append(Badge("badge badge-soon", f"Ends in {minutes} min"))
            started = charging.get(b.evse_id)
            if b.status == Status.FULFILLED and b.end <= now and started and started < b.end:
                flags.append(Badge("badge badge-offline", "⚠ Overstaying: still charging"))
            entries.append(
                DeskEntry(
                    at=b.end,
                    kind="Leaves",
                    booking=b,
                    state=state,
                    flags=flags,
                    can_check_in=False,
                    can_no_show=False,
                    css=f"entry entry-leaves {status_css}",
                    time=_hm(b.end, tz),
                    **text,
                )
            )
    entries.sort(key=lambda e: (e.at, e.kind != "Leaves"))
    return entries


def _hm(moment: datetime, tz: ZoneInfo) -> str:
    wall = moment.astimezone(tz)
    return f"{wall.hour:02d}:{wall.minute:02d}"


ARRIVALS_TEMPLATE = "bookings/arrivals.html"


def _arrivals_response(
    request: HttpRequest, location: Location, *, day: date | None = None, notice: str = "",
    error: str = "", status: int = 200,
) -> HttpResponse:  # fmt: skip
    now = timezone.now()
    today = now.astimezone(location.zone).date()
    filters = _timeline_filters(request)
    day = day or filters.cleaned_data.get("date") or today
    with timezone.override(location.zone):
        context = {
            "location": location,
            "day": day,
            "today": today,
            "filters": filters,
            "entries": _desk_entries(location, day, now),
            "notice": notice,
            "error": error,
            "zone": zone_label(now, location.zone),
            "day_url": f"{reverse('bookings:location_day', args=[location.pk])}?date={day}",
            "self_url": f"{reverse('bookings:arrivals', args=[location.pk])}?date={day}",
            "csv_url": f"{reverse('bookings:day_csv', args=[location.pk])}?date={day}",
            "printed": now,
            "poll_seconds": poll_seconds(),
            "changed_event": CHANGED_EVENT,
        }
        template = ARRIVALS_TEMPLATE
        if _partial(request):
            template += "#arrivals"
        return render(request, template, context, status=status)


@require_GET
@staff_required
def location_arrivals(request: HttpRequest, location_id: int) -> HttpResponse:
    """Today's arrivals and departures by time, with check-in and no-show."""
    return _arrivals_response(request, _location(location_id))


def _desk_action(
    request: HttpRequest, uid: str, action: Callable[[Booking], Any], done: str
) -> HttpResponse:
    booking = _booking(uid)
    location = booking.location
    day = booking.start.astimezone(location.zone).date()
    try:
        action(booking)
    except BookingError as error:
        return _arrivals_response(request, location, day=day, error=error.message)
    if not _partial(request):
        return redirect(f"{reverse('bookings:arrivals', args=[location.pk])}?date={day}")
    who = booking.driver.name if booking.driver else "The driver"
    return _changed(_arrivals_response(request, location, day=day, notice=f"{who}: {done}"))


@require_http_methods(["POST"])
@staff_required
def booking_check_in_view(request: HttpRequest, uid: str) -> HttpResponse:
    def check_in(booking: Booking) -> None:
        booking_check_in(booking=booking, actor=Actor.staff(request.user))

    return _desk_action(request, uid, check_in, "checked in.")


@require_http_methods(["POST"])
@staff_required
def booking_no_show_view(request: HttpRequest, uid: str) -> HttpResponse:
    def no_show(booking: Booking) -> None:
        booking_mark_no_show(booking=booking, actor=Actor.staff(request.user))

    return _desk_action(request, uid, no_show, "marked as a no-show.")


# --- What the desk must not miss: the needs-attention list (issue 15) ---


@dataclass(frozen=True, slots=True)
class AttentionRow:
    when: str
    booking: Booking
    who: str
    state: str
    reasons: list[str]
    href: str


@require_GET
@staff_required
def location_attention(request: HttpRequest, location_id: int) -> HttpResponse:
    """The location's active bookings that need staff: outside the rules as they stand (an
    admin changed the hours, a policy or an EVSE after they were made) or not held by their
    charger; each links to its booking panel to move or cancel it."""
    location = _location(location_id)
    now = timezone.now()
    tz = location.zone
    rows = []
    for item in bookings_needing_attention(location=location, now=now):
        b = item.booking
        who = b.driver.name if b.driver else (
            f"eMSP {b.emsp_country_code}*{b.emsp_party_id}" if b.emsp_party_id else "No driver"
        )  # fmt: skip
        rows.append(
            AttentionRow(
                when=_when(b.start, b.end, tz),
                booking=b,
                who=who,
                state=STATE_LABELS.get(b.status, b.status),
                reasons=item.reasons,
                href=reverse("bookings:booking_detail", args=[b.uid]),
            )
        )
    context = {
        "location": location,
        "rows": rows,
        "zone": zone_label(now, tz),
        "day_url": reverse("bookings:location_day", args=[location.pk]),
        "self_url": reverse("bookings:attention", args=[location.pk]),
        "poll_seconds": poll_seconds(),
        "changed_event": CHANGED_EVENT,
    }
    template = "bookings/attention.html"
    if _partial(request):
        template += "#attention"
    return render(request, template, context)


@require_GET
@staff_required
def location_attention_count(request: HttpRequest, location_id: int) -> HttpResponse:
    """How many bookings the needs-attention list shows, for the day and week views' link
    ("Needs attention · 3"): the list's own selector (bookings_needing_attention), counted. Its
    own small htmx request, made after the page loads and whenever the grid is redrawn, so the
    grid's render does not pay for it."""
    location = _location(location_id)
    count = len(bookings_needing_attention(location=location, now=timezone.now()))
    context = {
        "attention_count": count,
        "attention_counted": True,
        "attention_url": reverse("bookings:attention", args=[location.pk]),
        "attention_count_url": reverse("bookings:attention_count", args=[location.pk]),
        "grid_drawn_event": GRID_DRAWN_EVENT,
    }
    return render(request, f"{TEMPLATE}#attention_link", context)


# --- One search box ---

SEARCH_SINCE = timedelta(days=1)  # bookings that ended longer ago than this are history


@require_GET
@staff_required
def search(request: HttpRequest) -> HttpResponse:
    """Drivers and bookings by plate, phone, reference, name, email or token uid, each booking
    with where and when (on its location's clock)."""
    form = LocationSearchForm(request.GET)  # one field `q`, 100 characters at most
    q = form.cleaned_data["q"] if form.is_valid() else ""
    drivers, bookings = desk_search(q=q, since=timezone.now() - SEARCH_SINCE)
    rows = [
        (b, _when(b.start, b.end, b.location.zone), STATE_LABELS.get(b.status, b.status))
        for b in bookings
    ]
    template = "bookings/search.html"
    if _partial(request):
        template += "#search_results"
    return render(request, template, {"q": q, "drivers": drivers, "rows": rows, "form": form})


# --- A charger out of order ---


@require_http_methods(["GET", "POST"])
@staff_required
def charger_out_of_order_view(request: HttpRequest, location_id: int) -> HttpResponse:
    """Move or cancel every booking of a broken charge point (charger_out_of_order). "Show its
    bookings" (GET) lists what it will touch; the POST does it and lists what it did."""
    location = _location(location_id)
    charge_points = list(location.charge_points.order_by("identity"))
    now = timezone.now()
    posted = request.method == "POST"
    query = request.POST if posted else request.GET
    form = OutOfOrderForm(
        request.POST if posted else None, charge_points=charge_points,
        initial={"charge_point": query.get("charge_point"), "days": query.get("days") or 1,
                 "action": query.get("action") or "move"},
    )  # fmt: skip
    chosen = next((cp for cp in charge_points if str(cp.pk) == query.get("charge_point")), None)
    days = 7 if query.get("days") == "7" else 1
    today = now.astimezone(location.zone).date()
    until = local_day_window(today, location.zone, days=days).end
    outcome: OutOfOrderOutcome | None = None
    if posted and form.is_valid():
        try:
            outcome = charger_out_of_order(
                charge_point=chosen, actor=Actor.staff(request.user),
                reason=form.cleaned_data["reason"], until=until,
                move=form.cleaned_data["action"] == "move", now=now,
            )  # fmt: skip
        except BookingError as error:
            form.add_error("reason", error.message)
    affected = (
        list(bookings_on_charger(charge_point=chosen, now=now, until=until))
        if chosen is not None and outcome is None
        else []
    )
    return render(
        request,
        "bookings/out_of_order.html",
        {"location": location, "form": form, "outcome": outcome, "affected": affected,
         "chosen": chosen, "last_day": today + timedelta(days=days - 1),
         "zone": zone_label(now, location.zone),
         "day_url": reverse("bookings:location_day", args=[location.pk])},
    )  # fmt: skip


# --- The shift sheet: the day as CSV ---

CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_FORMULA_STARTS) else text


def _csv_time(moment: datetime | None, tz: ZoneInfo) -> str:
    # Which clock it is read on, so a time in the repeated hour of a fall-back night names one
    # instant: "2027-10-31 02:30 (CET, UTC+1)".
    if moment is None:
        return ""
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M} ({zone_label(moment, tz)})"


@require_GET
@staff_required
def location_day_csv(request: HttpRequest, location_id: int) -> HttpResponse:
    """The day's bookings as CSV for the shift sheet: times on the location's clock (labelled)
    and in UTC, EVSE, driver, plate, state and channel."""
    location = _location(location_id)
    tz = location.zone
    filters = _timeline_filters(request)
    day = filters.cleaned_data.get("date") or timezone.now().astimezone(tz).date()
    bookings = desk_day_bookings(location=location, window=local_day_window(day, tz))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"{location.ocpi_id}-{day.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "Reference",
            f"Start ({location.time_zone})",
            f"End ({location.time_zone})",
            "Start (UTC)",
            "End (UTC)",
            "EVSE",
            "Charge point",
            "Driver",
            "Plate",
            "Phone",
            "State",
            "Arrived",
            "Channel",
            "Notes",
        ]
    )
    for b in bookings:
        driver = b.driver
        who = (
            driver.name
            if driver
            else (f"{b.emsp_country_code}*{b.emsp_party_id}" if b.emsp_party_id else "")
        )
        channel = b.get_channel_display()
        if b.emsp_party_id:
            channel += f" {b.emsp_country_code}*{b.emsp_party_id}"
        elif b.created_by_id:
            channel += f" ({b.created_by.get_username()})"
        writer.writerow(
            [
                _csv_cell(value)
                for value in (
                    b.authorization_reference,
                    _csv_time(b.start, tz),
                    _csv_time(b.end, tz),
                    b.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    b.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    str(b.evse) if b.evse else "",
                    b.evse.charge_point.identity if b.evse else "",
                    who,
                    driver.license_plate if driver else "",
                    driver.phone if driver else "",
                    STATE_LABELS.get(b.status, b.status),
                    _csv_time(b.checked_in_at, tz),
                    channel,
                    b.notes,
                )
            ]
        )
    return response
