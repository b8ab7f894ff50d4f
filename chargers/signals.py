"""Signals chargers send about what chargers report, so that apps depending on chargers can act
on it without chargers knowing them (STYLE.md: signals connect "things that should not know
about each other"). All but charger_booted are sent inside the transaction that records the
report: a receiver's writes commit or roll back with it, and a receiver that raises fails the
whole report (the charger gets a CallError and sends it again). charger_booted is sent in a
transaction of its own, once the charger's boot was answered."""

from django.dispatch import Signal

# A session start was recorded: a 1.6 StartTransaction, or a 2.0.1 TransactionEvent Started or
# Updated (sent again for the same session when a later event brings its token). Sent with
# `session` (a ChargingSession; its booking_id is set once a booking claimed it) and `at`, the
# time of the report (a 2.0.1 Updated event's may be later than the session's start).
session_started = Signal()

# The charger dropped a placement it held (2.0.1 ReservationStatusUpdate Expired or Removed) and
# the placement was still the one its booking wants. Sent with `reservation` (its status now
# EXPIRED or REMOVED) and `update_status` (the charger's word).
reservation_dropped = Signal()

# A charger's BootNotification was answered Accepted: it restarted, and any reservation it held
# is gone. Sent with `charge_point` and `at` (the boot's time) once the answer was sent, so that
# what receivers send the charger reaches it after its boot.
charger_booted = Signal()

# A session's end was recorded (1.6 StopTransaction, 2.0.1 TransactionEvent Ended). Sent with
# `session` (stopped_at set) inside the transaction that records it.
session_stopped = Signal()

# New meter values of a running session were stored. Sent with `session` (its meter_last_*
# updated) inside the transaction that stores them; receivers bound their own rate.
session_updated = Signal()

# A charge detail record was issued (chargers.services.cdr_issue). Sent with `cdr` inside the
# transaction that writes it.
cdr_issued = Signal()

# A charger answered a remote start, stop or unlock (or it could not be reached, or did not
# answer in time). Sent with `remote_command` (a RemoteCommand, its reply set) inside the
# transaction that records the answer.
remote_command_answered = Signal()
