"""Meter values as chargers send them (OCPP 1.6 MeterValue / 2.0.1 MeterValue, in the `ocpp`
library's snake_case) read into plain readings: the energy register, power and current at a
moment. Pure functions; the csms calls them and chargers.services stores what they return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from locations.tariffs import Period

ENERGY = "Energy.Active.Import.Register"  # the default measurand in both versions
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
_SCALE = {"Wh": Decimal(1), "kWh": Decimal(1000), "W": Decimal(1), "kW": Decimal(1000),
          "A": Decimal(1)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reading:
    at: datetime
    energy_wh: Decimal | None = None  # the meter register, not energy since the start
    power_w: Decimal | None = None
    current_a: Decimal | None = None  # the total, else the phases reported summed


def _time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _value(sample: Mapping[str, Any]) -> Decimal | None:
    """A sampled value in base units (Wh, W, A); None when it cannot be read."""
    try:
        value = Decimal(str(sample["value"]))
    except (KeyError, InvalidOperation, ValueError):
        return None
    if not value.is_finite():
        return None
    unit = sample.get("unit")  # 1.6
    multiplier = 0
    if isinstance(sample.get("unit_of_measure"), Mapping):  # 2.0.1
        unit = sample["unit_of_measure"].get("unit")
        multiplier = sample["unit_of_measure"].get("multiplier") or 0
    scale = _SCALE.get(unit or "", Decimal(1))
    return value * scale * Decimal(10) ** int(multiplier)


def readings(meter_values: Iterable[Mapping[str, Any]] | None) -> list[Reading]:
    """One Reading per timestamped MeterValue that carries energy, power or current. Values of
    other measurands, per-phase energy and unreadable values are left out."""
    out = []
    for item in meter_values or ():
        if not isinstance(item, Mapping):
            continue
        at = _time(item.get("timestamp", ""))
        if at is None:
            continue
        energy = power = current = None
        phases: list[Decimal] = []
        for sample in item.get("sampled_value") or ():
            if not isinstance(sample, Mapping):
                continue
            measurand = sample.get("measurand") or ENERGY
            value = _value(sample)
            if value is None:
                continue
            if measurand == ENERGY and not sample.get("phase"):
                energy = value
            elif measurand == POWER and not sample.get("phase"):
                power = value
            elif measurand == CURRENT:
                if sample.get("phase"):
                    phases.append(value)
                else:
                    current = value
        if current is None and phases:
            current = sum(phases, Decimal(0))
        if energy is not None or power is not None or current is not None:
            out.append(Reading(at, energy, power, current))
    return out


def charging_periods(
    readings_: Iterable[Reading], *, start: datetime, end: datetime, meter_start_wh: Decimal | None
) -> list[Period]:
    """A session's meter readings as periods between consecutive readings (from its start to
    its end, or to the last reading while it runs): the energy each delivered by the register,
    charging while energy flows, at the power read at its end. What tariffs price sessions by."""
    points = sorted((r for r in readings_ if r.energy_wh is not None and start <= r.at <= end),
                    key=lambda r: r.at)  # fmt: skip
    out: list[Period] = []
    previous_at = start
    previous_wh = meter_start_wh if meter_start_wh is not None else (
        points[0].energy_wh if points else None
    )  # fmt: skip
    for r in points:
        if r.at <= previous_at:
            previous_wh = r.energy_wh
            continue
        delta = (
            max(r.energy_wh - previous_wh, Decimal(0)) if previous_wh is not None else Decimal(0)
        )
        out.append(Period(previous_at, r.at, delta, charging=delta > 0,
                          power_kw=None if r.power_w is None else r.power_w / 1000,
                          current_a=r.current_a))  # fmt: skip
        previous_at, previous_wh = r.at, r.energy_wh
    if end > previous_at and (not points or end != points[-1].at):
        out.append(Period(previous_at, end, Decimal(0), charging=False))
    return out
