"""The HTML of the timeline tracks (free time, bookings, closed hours, the now line).

Built with plain string formatting instead of the template: a busy 50-EVSE day has ~700 placed
elements and the template engine spends ~20 variable lookups and filters on each, which made
the day view cost over a second; formatting strings does the same work in a few milliseconds
(benchmarks/day_view.py). Free text (names, labels) goes through `escape`; EVSE uids are OCPI
ids (letters, digits and `. _ - * #`), booking uids are UUIDs and times are ISO strings.

The track element carries `hx-target="#panel" hx-swap="innerHTML"`, which its links inherit.
"""

from __future__ import annotations

import json
from datetime import UTC
from html import escape  # the stdlib one: Django's wraps it in lazy/safe-string machinery
from urllib.parse import quote

from django.utils.safestring import SafeString, mark_safe

from locations.models import ConnectorStandard

from .models import ChargerReservation, Status
from .selectors import Timeline, TimelineRow

# Plain dict lookups: get_FOO_display() costs ~60 µs a call, and a busy day has 600 of them.
STATUS_LABELS = {value: escape(label) for value, label in Status.choices}
CHARGER_LABELS = {value: escape(label) for value, label in ChargerReservation.choices}
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
STANDARD_LABELS = {value: escape(label) for value, label in ConnectorStandard.choices}


def label_html(row: TimelineRow) -> SafeString:
    """The row's heading: EVSE, charge point, connectors (standard, power, AC/DC), live state."""
    evse = row.evse
    connectors = "".join(
        f'<span class="conn">{STANDARD_LABELS.get(c.standard, escape(c.standard))} · '
        f"{c.power_kw:g} kW {'DC' if c.is_dc else 'AC'}</span>"
        for c in evse.connectors.all()
    )
    state = [
        f'<span class="status status-{escape(evse.status.lower())}">'
        f"{escape(row.status_label)}</span>"
    ]
    if row.offline:
        state.append('<span class="badge badge-offline">⚠ Charger offline</span>')
    if row.reason:
        state.append(
            f'<span class="badge badge-off" title="{escape(row.reason)}">⊘ Not bookable</span>'
        )
    return mark_safe(  # every interpolated value is escaped
        f'<div class="evse-name"><strong>{escape(str(evse))}</strong> '
        f'<span class="muted">{escape(evse.charge_point.identity)}</span></div>'
        f'<div class="evse-conn">{connectors}</div>'
        f'<div class="evse-state">{" ".join(state)}</div>'
    )


def track_html(
    row: TimelineRow, timeline: Timeline, *, new_url: str, detail_url: str, week: bool
) -> SafeString:
    """One EVSE's track. detail_url is a booking's URL with `{uid}` where its uid goes."""
    tz = timeline.location.zone
    seen: dict = {}

    def local(moment) -> tuple[str, str, str]:
        # (UTC ISO for links, label, HH:MM). Formatted by hand: strftime and isoformat cost
        # ~10 µs a call here, and a busy day has ~1,000 distinct moments.
        if moment not in seen:
            wall = moment.astimezone(tz)
            hm = f"{wall.hour:02d}:{wall.minute:02d}"
            u = moment.astimezone(UTC)
            seen[moment] = (
                f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:00Z",
                f"{DAY_NAMES[wall.weekday()]} {hm}" if week else hm,
                hm,
            )
        return seen[moment]

    parts = [
        f'<div class="closed" style="left:{s.left:.3f}%;width:{s.width:.3f}%" title="Closed"></div>'
        for s in timeline.closed
    ]
    evse = escape(str(row.evse))
    href = f"{new_url}?evse={quote(row.evse.uid, safe='')}&amp;start="
    vals = escape(f'{{"evse": {json.dumps(row.evse.uid)}, "start": "')
    data = (
        f'data-step="{int(row.rules.step.total_seconds())}" '
        f'data-min="{int(row.rules.min_duration.total_seconds())}"'
    )
    for seg in row.free:
        iso, start_label, _ = local(seg.start)
        parts.append(
            f'<a class="free" href="{href}{iso}" hx-get="{new_url}" '
            f'hx-vals=\'{vals}{iso}"}}\' data-start="{int(seg.start.timestamp())}" '
            f'data-end="{int(seg.end.timestamp())}" {data} '
            f'style="left:{seg.left:.3f}%;width:{seg.width:.3f}%" '
            f'aria-label="Book {evse}, free {start_label} to {local(seg.end)[1]}">'
            '<span class="free-hint" aria-hidden="true">+</span></a>'
        )
    for block, seg in row.blocks:
        who = escape(block.who) if block.who else "No driver"
        span = f"{local(block.start)[1]}–{local(block.end)[2]}"
        state = STATUS_LABELS.get(block.status, block.status)
        charger = CHARGER_LABELS.get(block.charger_reservation, block.charger_reservation)
        mark = "✓" if block.status == Status.RESERVED else "◷"
        attention = " attention" if block.needs_attention else ""
        uid = str(block.uid)
        url = detail_url.format(uid=uid)
        parts.append(
            f'<a class="block block-{block.status.lower()}{attention}" href="{url}" '
            f'hx-get="{url}" data-booking="{uid}" '
            f'style="left:{seg.left:.3f}%;width:{seg.width:.3f}%" '
            f'title="{span} · {who} · {state} · charger: {charger}">'
            f'<span class="who">{mark} {who}</span>'
            f'<span class="what">{span} · {state} · {charger}</span></a>'
        )
    if timeline.now_left is not None:
        parts.append(f'<div class="now" style="left:{timeline.now_left:.3f}%" title="Now"></div>')
    return mark_safe("".join(parts))  # every interpolated value above is escaped or safe
