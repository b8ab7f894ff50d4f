"""The OCPI response envelope {data, status_code, status_message, timestamp}: every OCPI response,
errors included, is built here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.utils import timezone
from rest_framework.response import Response

SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
NOT_ENOUGH_INFORMATION = 2002
UNKNOWN_LOCATION = 2003
UNKNOWN_TOKEN = 2004
SERVER_ERROR = 3000
UNABLE_TO_USE_CLIENT_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003


def ocpi_datetime(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z` and whole seconds, as OCPI DateTime wants it."""
    if value is None:
        return None
    return _format_utc(value)


@lru_cache(maxsize=8192)  # calendars repeat the same day bounds and last_updated many times
def ocpi_number(value: Decimal, places: str | None = None) -> int | float:
    """A Decimal as an OCPI number: rounded to `places` when given (e.g. "0.0001"), without
    trailing zeros (0.2500 -> 0.25, 3.000 -> 3)."""
    normal = (value.quantize(Decimal(places)) if places else value).normalize()
    return int(normal) if normal == normal.to_integral_value() else float(normal)


@lru_cache(maxsize=8192)  # a week of calendars formats ~2,000 bounds, most of them repeated
def _format_utc(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    # f-string rather than strftime: calendars format thousands of these per response.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}Z"
    )


def envelope(
    data: Any = None, *, status_code: int = SUCCESS, status_message: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = status_code
    body["status_message"] = status_message or ("Success" if status_code < 2000 else "Error")
    body["timestamp"] = ocpi_datetime(timezone.now())
    return body


def ocpi_response(
    data: Any = None,
    *,
    status_code: int = SUCCESS,
    status_message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        envelope(data, status_code=status_code, status_message=status_message),
        status=http_status,
        headers=headers,
    )


def ocpi_error(
    status_code: int, message: str, *, http_status: int = 200, data: Any = None
) -> Response:
    return ocpi_response(
        data, status_code=status_code, status_message=message, http_status=http_status
    )
