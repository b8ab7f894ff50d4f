"""Bookings module 1.0 <-> 1.1 wire shapes (digest 4.13). Both travel under version 2.3.0, so the
module version is a per-party setting (Party.booking_module_version); the domain and the 1.0
builders in serializers.py stay as they are and these functions translate at the edge."""

from __future__ import annotations

from typing import Any

V10 = "1.0"
V11 = "1.1"


def _period_11(period: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in period.items() if k not in ("start_from", "end_before")}
    out["start_date_time"] = period.get("start_from")
    out["end_date_time"] = period.get("end_before")
    return out


def _terms_11(terms: dict[str, Any], policy=None) -> dict[str, Any]:
    out = {k: v for k, v in terms.items() if k != "RFID_auth_required"}
    if "RFID_auth_required" in terms:
        out["rfid_auth_required"] = terms["RFID_auth_required"]
    if policy is not None:
        out["min_booking_duration"] = policy.min_duration_minutes
        out["max_booking_duration"] = policy.max_duration_minutes
    return out


def request_from_11(body: Any) -> Any:
    """A 1.1 BookingRequest in the 1.0 shape the input serializer checks (unknown keys stay)."""
    if not isinstance(body, dict):
        return body
    data = dict(body)
    option = data.get("booking_option")
    if isinstance(option, dict):
        for key in ("evse_uid", "connector_id"):
            if key in option and key not in data:
                data[key] = option[key]
    if "evse_uid" not in data and isinstance(data.get("booking_location_id"), str):
        data["evse_uid"] = data["booking_location_id"]  # our BookingLocation id is the EVSE uid
    period = data.get("period")
    if isinstance(period, dict) and ("start_date_time" in period or "end_date_time" in period):
        data["period"] = {
            **{k: v for k, v in period.items() if k not in ("start_date_time", "end_date_time")},
            "start_from": period.get("start_date_time"),
            "end_before": period.get("end_date_time"),
        }
    return data


def looks_like_11(body: Any) -> bool:
    """Tolerant reader: a body that can only be 1.1 is read as 1.1 whatever the setting."""
    if not isinstance(body, dict):
        return False
    period = body.get("period")
    return (
        "booking_option" in body
        or "booking_location_id" in body
        or (isinstance(period, dict) and "start_date_time" in period)
    )


def booking_11(booking: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in booking.items()
           if k not in ("evse_uid", "connector_id", "parking_id", "bookable_parking_option",
                        "tariff_id", "access_methods", "period", "booking_terms")}  # fmt: skip
    option = {k: booking[k] for k in ("evse_uid", "connector_id", "parking_id") if k in booking}
    out["booking_option"] = option
    out["tariff_ids"] = booking.get("tariff_id", [])
    out["access_information"] = [
        {"method": m.get("location_access"), **({"value": m["value"]} if "value" in m else {})}
        for m in booking.get("access_methods", [])
    ]
    out["period"] = _period_11(booking["period"])
    out["booking_terms"] = _terms_11(booking.get("booking_terms") or {})
    return out


def calendar_11(calendar: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in calendar.items() if k not in ("step_size", "available_timeslots")}
    out["timeslot_increment"] = calendar.get("step_size")
    out["available_timeslots"] = [_period_11(s) for s in calendar.get("available_timeslots", [])]
    return out


def booking_location_11(bl: dict[str, Any], policy=None) -> dict[str, Any]:
    out = {k: v for k, v in bl.items()
           if k not in ("evse_uid", "connector_id", "bookable_parking_options", "bookable",
                        "tariff_id", "booking_terms", "calendars")}  # fmt: skip
    out["booking_option"] = {k: bl[k] for k in ("evse_uid", "connector_id") if k in bl}
    if "bookable" in bl:
        out["policy"] = bl["bookable"]
    out["tariff_ids"] = bl.get("tariff_id", [])
    terms = bl.get("booking_terms") or []
    if terms:
        out["booking_terms"] = _terms_11(terms[0], policy)
    out["calendars"] = [calendar_11(c) for c in bl.get("calendars", [])]
    return out


def for_party(version: str, kind: str, obj: dict[str, Any], policy=None) -> dict[str, Any]:
    """The object in the party's module version (kind: booking, booking_location, calendar)."""
    if version != V11:
        return obj
    if kind == "booking":
        return booking_11(obj)
    if kind == "calendar":
        return calendar_11(obj)
    return booking_location_11(obj, policy)
