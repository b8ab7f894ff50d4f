"""The HTML of the timeline tracks (free time, bookings, closed hours, the now line).

Built with plain string formatting instead of the template: a busy 50-EVSE day has ~700 placed
elements and the template engine spends ~20 variable lookups and filters on each, which made
the day view cost over a second; formatting strings does the same work in a few milliseconds
(benchmarks/day_view.py). Every interpolated value goes through `escape`.
"""

from __future__ import annotations

import json
from html import escape  # the stdlib one: Django's wraps it in lazy/safe-string machinery
from urllib.parse import quote

from django.utils.safestring import SafeString, mark_safe

from .models import ChargerReservation, Status
from .selectors import Segment, Timeline, TimelineRow

# Plain dict lookups: get_FOO_display() costs ~60 µs a call, and a busy day has 600 of them.
STATUS_LABELS = {value: escape(label) for value, label in Status.choices}
CHARGER_LABELS = {value: escape(label) for value, label in ChargerReservation.choices}

CLOSED = '<div class="closed" style="left:{l:.3f}%;width:{w:.3f}%" title="Closed"></div>'


def _pos(seg: Segment) -> str:
    return f"left:{seg.left:.3f}%;width:{seg.width:.3f}%"


def track_html(
    row: TimelineRow, timeline: Timeline, *, new_url: str, detail_url: str, week: bool
) -> SafeString:
    """One EVSE's track. detail_url holds `{uid}` where the booking's uid goes."""
    tz = timeline.location.zone
    parts = [CLOSED.format(l=s.left, w=s.width) for s in timeline.closed]

    def wall(moment) -> str:
        local = moment.astimezone(tz)
        return local.strftime("%a %H:%M") if week else local.strftime("%H:%M")

    evse = escape(str(row.evse))
    uid = row.evse.uid
    step = int(row.rules.step.total_seconds())
    minimum = int(row.rules.min_duration.total_seconds())
    for seg in row.free:
        start = seg.start.astimezone(tz).isoformat()
        href = f"{new_url}?evse={quote(uid)}&start={quote(start)}"
        vals = json.dumps({"evse": uid, "start": start})
        parts.append(
            f'<a class="free" href="{escape(href)}" hx-get="{escape(new_url)}" '
            f'hx-vals=\'{escape(vals)}\' hx-target="#panel" hx-swap="innerHTML" '
            f'data-start="{int(seg.start.timestamp())}" data-end="{int(seg.end.timestamp())}" '
            f'data-step="{step}" data-min="{minimum}" style="{_pos(seg)}" '
            f'aria-label="Book {evse}, free {wall(seg.start)} to {wall(seg.end)}">'
            '<span class="free-hint" aria-hidden="true">+</span></a>'
        )
    for booking, seg in row.blocks:
        if booking.driver_id:
            who = booking.driver.name
        elif booking.emsp_party_id:
            who = f"{booking.emsp_country_code}*{booking.emsp_party_id}"
        else:
            who = "No driver"
        who = escape(who)
        span = f"{wall(booking.start)}–{booking.end.astimezone(tz):%H:%M}"
        state = STATUS_LABELS.get(booking.status, booking.status)
        charger = CHARGER_LABELS.get(booking.charger_reservation, booking.charger_reservation)
        mark = "✓" if booking.status == Status.RESERVED else "◷"
        classes = f"block block-{booking.status.lower()}"
        if booking.needs_attention:
            classes += " attention"
        url = escape(detail_url.format(uid=booking.uid))
        parts.append(
            f'<a class="{classes}" href="{url}" hx-get="{url}" hx-target="#panel" '
            f'hx-swap="innerHTML" data-booking="{booking.uid}" style="{_pos(seg)}" '
            f'title="{span} · {who} · {state} · charger: {charger}">'
            f'<span class="who">{mark} {who}</span>'
            f'<span class="what">{span} · {state} · {charger}</span></a>'
        )
    if timeline.now_left is not None:
        parts.append(f'<div class="now" style="left:{timeline.now_left:.3f}%" title="Now"></div>')
    return mark_safe("".join(parts))  # every interpolated value above is escaped
