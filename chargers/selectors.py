"""Reads of what chargers reported."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from locations.tariffs import Period

from .meter import Reading, charging_periods
from .models import ChargingSession


def session_periods(session: ChargingSession, *, until: datetime) -> list[Period]:
    """A session's charging periods from its meter readings (prefetch `meter_readings` when
    reading many), up to its end or, while it runs, `until`."""
    readings = [Reading(r.at, r.energy_wh, r.power_w, r.current_a)
                for r in session.meter_readings.all()]  # fmt: skip
    if session.stopped_at is not None and session.meter_stop_wh is not None:
        readings.append(Reading(session.stopped_at, Decimal(session.meter_stop_wh)))
    end = session.stopped_at or until
    return charging_periods(readings, start=session.started_at, end=max(end, session.started_at),
                            meter_start_wh=session.meter_start_wh)  # fmt: skip
