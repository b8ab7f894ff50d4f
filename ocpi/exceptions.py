"""One exception handler for every OCPI view: DRF errors, Django ValidationError and domain
BookingErrors become the OCPI envelope with an OCPI status code. Unexpected errors are logged and
answered with 3000 in the envelope."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf

from bookings import exceptions as booking_exc
from partners.ratelimit import retry_after

from . import responses as r

logger = logging.getLogger(__name__)


class OcpiError(Exception):
    """An OCPI-level failure with its status code (and HTTP status)."""

    def __init__(self, status_code: int, message: str, *, http_status: int = 200):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status


class NotRegistered(OcpiError):
    def __init__(self, message: str = "The party is not registered."):
        super().__init__(r.CLIENT_ERROR, message, http_status=405)


def flatten_errors(detail: Any, prefix: str = "") -> list[str]:
    """DRF error detail as "field.sub: message" lines, so the message names the field."""
    if isinstance(detail, dict):
        lines = []
        for key, value in detail.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                name = "" if key == "non_field_errors" else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            lines.extend(flatten_errors(value, path))
        return lines
    if isinstance(detail, list):
        lines = []
        for i, value in enumerate(detail):
            if isinstance(value, dict | list):
                lines.extend(flatten_errors(value, f"{prefix}[{i}]"))
            else:
                lines.extend(flatten_errors(value, prefix))
        return lines
    return [f"{prefix}: {detail}" if prefix else str(detail)]


BOOKING_ERROR_CODES = {
    booking_exc.UnknownLocation: r.UNKNOWN_LOCATION,
    booking_exc.InvalidRequest: r.INVALID_PARAMETERS,
    booking_exc.UnknownEVSE: r.INVALID_PARAMETERS,
}


def ocpi_exception_handler(exc: Exception, context: dict) -> Any:
    if isinstance(exc, booking_exc.DATABASE_UNAVAILABLE):
        logger.warning("OCPI view %s: database unavailable: %s", context.get("view"), exc)
        response = r.ocpi_error(
            r.SERVER_ERROR,
            "The database is unavailable for a moment. Send the request again: one with the same "
            "request_id is only ever applied once.",
            http_status=503,
        )
        response["Retry-After"] = str(booking_exc.RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, OcpiError):
        return r.ocpi_error(exc.status_code, exc.message, http_status=exc.http_status)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        response = r.ocpi_error(r.CLIENT_ERROR, str(exc.detail), http_status=401)
        response["WWW-Authenticate"] = "Token"
        return response
    if isinstance(exc, drf.ParseError):
        return r.ocpi_error(
            r.INVALID_PARAMETERS, f"body: not valid JSON ({exc.detail})", http_status=400
        )
    if isinstance(exc, drf.UnsupportedMediaType):
        return r.ocpi_error(r.INVALID_PARAMETERS, str(exc.detail), http_status=415)
    if isinstance(exc, drf.ValidationError):
        return r.ocpi_error(r.INVALID_PARAMETERS, "; ".join(flatten_errors(exc.detail)))
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return r.ocpi_error(r.INVALID_PARAMETERS, "; ".join(flatten_errors(detail)))
    if isinstance(exc, booking_exc.BookingError):
        for cls, code in BOOKING_ERROR_CODES.items():
            if isinstance(exc, cls):
                return r.ocpi_error(code, exc.message)
        return r.ocpi_error(r.CLIENT_ERROR, exc.message)
    if isinstance(exc, Http404 | drf.NotFound):
        return r.ocpi_error(r.CLIENT_ERROR, "Not found.", http_status=404)
    if isinstance(exc, drf.Throttled):
        # HTTP 429 with Retry-After (RFC 6585); the body stays an OCPI envelope, so a partner
        # reads it like any other refusal.
        response = r.ocpi_error(
            r.CLIENT_ERROR, "Too many requests; retry after the Retry-After seconds.",
            http_status=429,
        )  # fmt: skip
        response["Retry-After"] = retry_after(exc.wait)
        return response
    if isinstance(exc, drf.MethodNotAllowed):
        return r.ocpi_error(r.CLIENT_ERROR, str(exc.detail), http_status=405)
    if isinstance(exc, drf.APIException):
        return r.ocpi_error(r.CLIENT_ERROR, str(exc.detail), http_status=exc.status_code)
    logger.exception("Unexpected error in OCPI view %s", context.get("view"))
    return r.ocpi_error(r.SERVER_ERROR, "Internal error; it has been logged.", http_status=500)
