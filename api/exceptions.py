"""One exception handler for every API view: `{"message": ..., "errors": {field path: [...]}}`
or `{"message": ..., "code": ...}` with the status a developer expects. Bad input never
answers 500."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework import status
from rest_framework.response import Response

from bookings import exceptions as booking_exc
from partners.ratelimit import retry_after

logger = logging.getLogger(__name__)


class Conflict(drf.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def field_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF error detail as {"field.sub[0].name": [messages]}: one flat map of field paths."""
    errors: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a list's item (ListField): items[0]
                path = f"{prefix}[{key}]"
            else:
                name = "" if key == "non_field_errors" else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            for sub, messages in field_errors(value, path).items():
                errors.setdefault(sub, []).extend(messages)
    elif isinstance(detail, list):
        for i, value in enumerate(detail):
            path = f"{prefix}[{i}]" if isinstance(value, dict | list) else prefix
            for sub, messages in field_errors(value, path).items():
                errors.setdefault(sub, []).extend(messages)
    else:
        errors.setdefault(prefix or "body", []).append(str(detail))
    return errors


def error_response(
    http_status: int, message: str, *, code: str = "", errors: dict | None = None
) -> Response:
    body: dict[str, Any] = {"message": message}
    if code:
        body["code"] = code
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=http_status)


# Domain refusals outside a booking request (which records them instead): the status each gets.
BOOKING_ERROR_STATUS = {
    booking_exc.Busy: 409,
    booking_exc.RequestConflict: 409,
    booking_exc.SlotUnavailable: 409,
    booking_exc.UnknownLocation: 404,
    booking_exc.UnknownEVSE: 404,
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, booking_exc.DATABASE_UNAVAILABLE):
        logger.warning("API view %s: database unavailable: %s", context.get("view"), exc)
        response = error_response(
            503, "The service is unavailable for a moment. Send the request again: a booking "
            "request with the same externalId is only ever applied once.", code="unavailable",
        )  # fmt: skip
        response["Retry-After"] = str(booking_exc.RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"body": exc.detail}
        return error_response(422, "The given data was invalid.", errors=field_errors(detail))
    if isinstance(exc, drf.ParseError):
        return error_response(400, f"The body is not valid JSON: {exc.detail}", code="parse_error")
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        response = error_response(
            401, "The Bearer access token is missing, invalid or expired.", code="unauthenticated"
        )
        view = context.get("view")
        request = context.get("request")
        if view is not None and request is not None:
            response["WWW-Authenticate"] = view.get_authenticate_header(request)
        return response
    if isinstance(exc, drf.PermissionDenied | DjangoPermissionDenied):
        return error_response(403, str(getattr(exc, "detail", exc)), code="forbidden")
    if isinstance(exc, Http404 | drf.NotFound):
        detail = getattr(exc, "detail", "") or "The record is not found."
        return error_response(404, str(detail), code="not_found")
    if isinstance(exc, drf.Throttled):
        response = error_response(
            429, "Too many requests. Please try again later.", code="rate_limited"
        )
        response["Retry-After"] = retry_after(exc.wait)
        return response
    if isinstance(exc, booking_exc.BookingError):
        for cls, http_status in BOOKING_ERROR_STATUS.items():
            if isinstance(exc, cls):
                return error_response(http_status, exc.message, code=exc.code)
        return error_response(422, exc.message, code=exc.code)
    if isinstance(exc, drf.APIException):
        return error_response(exc.status_code, str(exc.detail), code=exc.get_codes())
    logger.exception("Unexpected error in API view %s", context.get("view"))
    return error_response(500, "Internal error; it has been logged.", code="internal_error")
