"""Domain errors: each refusal has a machine-readable `code` and a sentence a person reads."""

from __future__ import annotations

from typing import Any

from django import db

# Errors that mean the database went away for a moment (a restart, a failover, a cut
# connection), not that a request was wrong: every interface answers them 503 with Retry-After
# in its own format, and the client sends the request again (idempotently).
DATABASE_UNAVAILABLE = (db.OperationalError, db.InterfaceError)
RETRY_AFTER_SECONDS = 5


class BookingError(Exception):
    code = "booking_error"
    default_message = "The booking could not be made."

    def __init__(self, message: str | None = None, *, code: str | None = None, **context: Any):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.context = context
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class InvalidRequest(BookingError):
    code = "invalid_request"
    default_message = "The request is not valid."


class InvalidWindow(InvalidRequest):
    code = "invalid_window"
    default_message = "The time window is not valid."


class UnknownLocation(BookingError):
    code = "unknown_location"
    default_message = "There is no such location."


class UnknownEVSE(BookingError):
    code = "unknown_evse"
    default_message = "There is no such EVSE at this location."


class NotBookable(BookingError):
    code = "not_bookable"
    default_message = "This EVSE cannot be booked."


class SlotUnavailable(BookingError):
    code = "slot_unavailable"
    default_message = "That time is already taken on this EVSE."


class NoEVSEAvailable(SlotUnavailable):
    code = "no_evse_available"
    default_message = "No EVSE that fits is free for that time."


class OutsideOpeningHours(BookingError):
    code = "outside_opening_hours"
    default_message = "The location is closed for part of that time."


class TooShort(BookingError):
    code = "too_short"
    default_message = "The booking is shorter than the minimum duration."


class TooLong(BookingError):
    code = "too_long"
    default_message = "The booking is longer than the maximum duration."


class MisalignedSlot(BookingError):
    code = "misaligned_slot"
    default_message = "The booking does not start and end on the slot grid."


class InThePast(BookingError):
    code = "in_the_past"
    default_message = "That time is in the past."


class TooLittleNotice(BookingError):
    code = "too_little_notice"
    default_message = "That starts too soon: bookings need more notice."


class BeyondHorizon(BookingError):
    code = "beyond_horizon"
    default_message = "That is too far ahead: bookings open later."


class TooLateToCancel(BookingError):
    code = "too_late_to_cancel"
    default_message = "It is too late to cancel this booking."


class TooLateToChange(BookingError):
    code = "too_late_to_change"
    default_message = "It is too late to change this booking."


class ChangeNotAllowed(BookingError):
    code = "change_not_allowed"
    default_message = "This booking's terms do not allow changes."


class BookedForOthers(BookingError):
    code = "booked_for_others"
    default_message = "The EVSE is booked for another driver now."


class InvalidTransition(BookingError):
    code = "invalid_transition"
    default_message = "The booking cannot go to that state from its current state."


class RequestConflict(BookingError):
    code = "request_conflict"
    default_message = "This request id is already used for another booking request."


class Busy(BookingError):
    """Another write held what this one needs for too long; sending it again is safe."""

    code = "busy"
