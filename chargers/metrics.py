"""What a csms process counts, for Prometheus: each csms serves its own metrics on
CSMS_METRICS_PORT (prometheus_client's HTTP server), since only it knows its connections,
refused handshakes and the chargers' answer times (docs/operations.md, "Metrics")."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTED = Gauge(
    "chargebook_csms_connected_chargers", "Chargers connected to this csms process now."
)
HANDSHAKE_FAILURES = Counter(
    "chargebook_csms_handshake_failures",
    "Charger handshakes refused, by reason (unknown_charge_point, wrong_credentials, "
    "rate_limited).",
    ["reason"],
)
COMMANDS = Counter(
    "chargebook_csms_commands",
    "Commands from the workers (ReserveNow, CancelReservation, remote start, stop and unlock) "
    "by outcome: the charger's status, or Timeout, CallError, NotSent, Offline.",
    ["action", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "chargebook_csms_command_seconds",
    "Time from sending a command to a charger to its answer (or to the timeout).",
    ["action"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
