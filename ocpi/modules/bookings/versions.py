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


# BookingTerms fields 1.1 adds (locations.selectors.policy_terms writes them for both versions).
_TERMS_11_ONLY = ("min_booking_duration", "max_booking_duration")


def terms_10(terms: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in terms.items() if k not in _TERMS_11_ONLY}


def _terms_11(terms: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in terms.items() if k != "RFID_auth_required"}
    if "RFID_auth_required" in terms:
        out["rfid_auth_required"] = terms["RFID_auth_required"]
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


_REQUEST_10_ONLY = ("evse_uid", "connector_id", "bookable_parking_option")
_REQUEST_11_ONLY = ("booking_option", "booking_location_id", "access_information")


def request_10(body: Any) -> Any:
    """A stored BookingRequest (as the eMSP sent it, in either shape) in the 1.0 shape."""
    if not looks_like_11(body):
        return body
    return {k: v for k, v in request_from_11(body).items() if k not in _REQUEST_11_ONLY}


def request_11(body: Any) -> Any:
    """A stored BookingRequest (as the eMSP sent it, in either shape) in the 1.1 shape."""
    if not isinstance(body, dict) or looks_like_11(body):
        return body
    out = {k: v for k, v in body.items() if k not in _REQUEST_10_ONLY}
    option = {k: body[k] for k in ("evse_uid", "connector_id") if body.get(k)}
    if option:
        out["booking_option"] = option
        out["booking_location_id"] = option.get("evse_uid")  # our BookingLocation id
    if isinstance(body.get("period"), dict):
        out["period"] = _period_11(body["period"])
    return out


def _requests_in(booking: dict[str, Any], shape) -> list[dict[str, Any]]:
    return [
        {**r, "booking_request": shape(r.get("booking_request"))}
        for r in booking.get("booking_requests", [])
    ]


def booking_10(booking: dict[str, Any]) -> dict[str, Any]:
    """The 1.0 Booking with every embedded request in the 1.0 shape and 1.0 terms."""
    return {
        **booking,
        "booking_terms": terms_10(booking.get("booking_terms") or {}),
        "booking_requests": _requests_in(booking, request_10),
    }


def booking_location_10(bl: dict[str, Any]) -> dict[str, Any]:
    return {**bl, "booking_terms": [terms_10(t) for t in bl.get("booking_terms", [])]}


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
    out["booking_requests"] = _requests_in(booking, request_11)
    return out


def calendar_11(calendar: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in calendar.items() if k not in ("step_size", "available_timeslots")}
    out["timeslot_increment"] = calendar.get("step_size")
    out["available_timeslots"] = [_period_11(s) for s in calendar.get("available_timeslots", [])]
    return out


def booking_location_11(bl: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in bl.items()
           if k not in ("evse_uid", "connector_id", "bookable_parking_options", "bookable",
                        "tariff_id", "booking_terms", "calendars")}  # fmt: skip
    out["booking_option"] = {k: bl[k] for k in ("evse_uid", "connector_id") if k in bl}
    if "bookable" in bl:
        out["policy"] = bl["bookable"]
    out["tariff_ids"] = bl.get("tariff_id", [])
    terms = bl.get("booking_terms") or []
    if terms:
        out["booking_terms"] = _terms_11(terms[0])
    out["calendars"] = [calendar_11(c) for c in bl.get("calendars", [])]
    return out


def for_party(version: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object in the party's module version (kind: booking, booking_location, calendar).
    Everything in it is in that version, requests the eMSP sent in the other shape included."""
    if version != V11:
        if kind == "booking":
            return booking_10(obj)
        if kind == "booking_location":
            return booking_location_10(obj)
        return obj
    if kind == "booking":
        return booking_11(obj)
    if kind == "calendar":
        return calendar_11(obj)
    return booking_location_11(obj)
