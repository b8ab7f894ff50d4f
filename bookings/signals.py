"""Signals the booking domain sends; interface apps (OCPI pushes) listen without the domain
knowing them (STYLE.md: "If a push must be immediate, a custom signal fits")."""

from django.dispatch import Signal

# Sent inside the writing transaction whenever services append BookingTransition audit rows
# (single saves, batches and the one-statement insert of a new booking alike), with
# `booking_ids`. Listeners that act on the change defer to transaction.on_commit.
booking_audited = Signal()
