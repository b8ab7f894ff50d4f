"""Signals the locations app sends; the apps above it answer without locations knowing them
(chargers.signals and bookings.signals work the same way)."""

from __future__ import annotations

from dataclasses import dataclass

from django.dispatch import Signal


@dataclass(frozen=True)
class OutsideRules:
    """Something at a location that its rules as they stand would refuse (an active booking)."""

    key: str  # unique among the answers, e.g. "booking:42"
    text: str  # when, where, who and why, for a person
    url: str  # where staff can move or cancel it


# Sent by the admin just before and just after it saves a change to a location's rules (its
# hours, closings, booking policies or EVSEs), with `location` (as the database has it). Each
# receiver returns a list of OutsideRules; the admin asks before saving a change that adds any.
outside_rules_wanted = Signal()


@dataclass(frozen=True)
class ActiveBooking:
    """An active booking (not ended) on an EVSE that someone wants to delete."""

    key: str  # unique among the answers, e.g. "booking:42"
    text: str  # when, where, who and its state, for a person
    url: str  # where staff can move or cancel it


# Sent by the admin before it deletes EVSEs (alone, or with their charge point or location),
# with `evse_ids`. Each receiver returns a list of ActiveBooking: the bookings that would lose
# their EVSE. The admin lists them on the delete page (the database refuses the delete while
# any booking holds an EVSE: Booking.evse is PROTECT).
active_bookings_wanted = Signal()
