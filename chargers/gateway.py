"""The worker side of the command bus to the csms processes: the only module that talks to it.

Routing: every csms process has a node id and an inbox list in Redis, and keeps
`<prefix>:route:<charge point id>` set to its node id (with a TTL it refreshes) for every charger
it holds. A command is pushed onto the inbox of the node that holds the charger; the csms answers
on the reply list named in the command. No route means the charger is offline.

Deadlines: OCPP allows one call in flight per connection, so a csms sends a charger's commands
one after another, and the charger has `timeout` seconds to answer each, counted from when it is
sent. A command not sent by `send_by` (its charger still busy with earlier calls) is answered
NOT_SENT instead, and the worker stops waiting at `send_by + timeout`: a slow charger holds a
worker for at most twice the timeout, and a worker that gave up never causes a late ReserveNow.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import redis
from django.conf import settings

# Reply statuses besides the charger's own (Accepted, Occupied, Faulted, Rejected, Unavailable).
OFFLINE = "Offline"  # no csms holds the charger
TIMEOUT = "Timeout"  # no answer within the timeout (charger or csms)
CALL_ERROR = "CallError"  # the charger answered with a CallError
NOT_SENT = "NotSent"  # the charger was still answering earlier calls: send it again soon

OCPP16_ID_TAG_LENGTH = 20  # IdToken is CiString20 in 1.6: a longer tag is sent cut to this


@dataclass(frozen=True)
class Reply:
    """The outcome of one command: the charger's status, or OFFLINE / TIMEOUT / CALL_ERROR."""

    status: str
    detail: str = ""
    node: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


@dataclass
class Command:
    """One command for one charger; `payload` is version-neutral, the csms builds the OCPP call."""

    charge_point_id: str
    action: str  # ReserveNow | CancelReservation | RemoteStart | RemoteStop | UnlockConnector
    payload: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


def bus_prefix() -> str:
    return getattr(settings, "CSMS_BUS_PREFIX", "cb:csms")


def route_key(charge_point_id: str, prefix: str | None = None) -> str:
    return f"{prefix or bus_prefix()}:route:{charge_point_id}"


def inbox_key(node: str, prefix: str | None = None) -> str:
    return f"{prefix or bus_prefix()}:inbox:{node}"


def node_key(node: str, prefix: str | None = None) -> str:
    """Where a csms process says it is up, reading its inbox, and how many chargers it holds."""
    return f"{prefix or bus_prefix()}:node:{node}"


@dataclass(frozen=True)
class Node:
    """A csms process as it last reported on the bus."""

    node: str
    connected: int
    reported_at: float  # epoch seconds


def csms_nodes() -> list[Node]:
    """The csms processes that reported on the bus within their key's lifetime (30 s)."""
    r = client()
    keys = sorted(r.scan_iter(match=node_key("*"), count=1000))
    nodes = []
    for key, raw in zip(keys, r.mget(keys) if keys else [], strict=True):
        if raw:
            data = json.loads(raw)
            nodes.append(Node(key.rpartition(":")[2], int(data["connected"]), float(data["at"])))
    return nodes


BLPOP_SLICE_SECONDS = 1.0  # wait for replies in slices shorter than the socket timeout
SOCKET_TIMEOUT_SECONDS = 30  # redis-py's default of 5 s would cut a long wait for replies


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=30
    )


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def default_timeout() -> float:
    return float(getattr(settings, "CSMS_COMMAND_TIMEOUT_SECONDS", 15))


def longest_wait(timeout: float | None = None) -> float:
    """How long send() may wait for replies: a command may wait `timeout` for its turn on its
    charger's connection, then `timeout` for the answer."""
    return 2 * (default_timeout() if timeout is None else timeout)


def send(commands: list[Command], *, timeout: float | None = None) -> dict[str, Reply]:
    """Send commands to the csms processes holding their chargers, all at once, and wait for
    every reply: each charger has `timeout` seconds per call from when the call goes out, and
    a call still queued behind its charger's earlier ones after `timeout` is answered NOT_SENT
    (see the module docstring). Returns the reply by command id; never raises for a charger."""
    if not commands:
        return {}
    timeout = default_timeout() if timeout is None else timeout
    r = client()
    prefix = bus_prefix()
    reply_key = f"{prefix}:reply:{uuid.uuid4().hex}"
    nodes = r.mget([route_key(c.charge_point_id, prefix) for c in commands])
    replies: dict[str, Reply] = {}
    send_by = time.time() + timeout
    deadline = send_by - timeout + longest_wait(timeout)
    pipe = r.pipeline(transaction=False)
    for command, node in zip(commands, nodes, strict=True):
        if not node:
            replies[command.id] = Reply(OFFLINE, "The charger is not connected.")
            continue
        message = {
            "id": command.id,
            "cp": command.charge_point_id,
            "action": command.action,
            "payload": command.payload,
            "reply_to": reply_key,
            "send_by": send_by,
            "timeout": timeout,
        }
        pipe.rpush(inbox_key(node, prefix), json.dumps(message))
    pipe.execute()
    waiting = {c.id for c in commands} - replies.keys()
    try:
        while waiting:
            left = deadline - time.time()
            if left <= 0:
                break
            item = r.blpop([reply_key], timeout=max(min(left, BLPOP_SLICE_SECONDS), 0.01))
            if item is None:
                continue
            data = json.loads(item[1])
            if data["id"] in waiting:
                waiting.discard(data["id"])
                replies[data["id"]] = Reply(data["status"], data.get("detail", ""), data["node"])
    finally:
        r.delete(reply_key)
    for command_id in waiting:
        replies[command_id] = Reply(TIMEOUT, f"No answer within {longest_wait(timeout):g} s.")
    return replies


def reserve_now_command(
    *,
    charge_point_id: str,
    reservation_id: int,
    evse_id: int,
    expires_at: datetime,
    id_tag: str,
    token_type: str = "Central",
    parent_id_tag: str | None = None,
    connector_type: str | None = None,
) -> Command:
    """A ReserveNow for the charger: OCPP 1.6 uses evse_id as connectorId, 2.0.1 as evseId."""
    return Command(
        charge_point_id,
        "ReserveNow",
        {
            "reservation_id": reservation_id,
            "evse_id": evse_id,
            "expires_at": expires_at.isoformat(),
            "id_tag": id_tag,
            "token_type": token_type,
            "parent_id_tag": parent_id_tag,
            "connector_type": connector_type,
        },
    )


def cancel_reservation_command(*, charge_point_id: str, reservation_id: int) -> Command:
    return Command(charge_point_id, "CancelReservation", {"reservation_id": reservation_id})


def remote_start_command(
    *,
    charge_point_id: str,
    remote_start_id: int,
    id_tag: str,
    evse_id: int | None,
    token_type: str = "Central",
) -> Command:
    """Start a transaction for id_tag (1.6 RemoteStartTransaction with evse_id as connectorId,
    2.0.1 RequestStartTransaction with remote_start_id, which its TransactionEvent repeats)."""
    return Command(
        charge_point_id,
        "RemoteStart",
        {"remote_start_id": remote_start_id, "id_tag": id_tag, "evse_id": evse_id,
         "token_type": token_type},
    )  # fmt: skip


def remote_stop_command(*, charge_point_id: str, transaction_id: str) -> Command:
    """Stop a transaction (1.6 RemoteStopTransaction, 2.0.1 RequestStopTransaction)."""
    return Command(charge_point_id, "RemoteStop", {"transaction_id": transaction_id})


def unlock_connector_command(*, charge_point_id: str, evse_id: int, connector_id: int) -> Command:
    """Unlock a connector: 1.6 uses evse_id as connectorId, 2.0.1 both."""
    return Command(
        charge_point_id, "UnlockConnector", {"evse_id": evse_id, "connector_id": connector_id}
    )


def send_one(command: Command, *, timeout: float | None = None) -> Reply:
    """Send one command and wait for its reply (see send)."""
    return send([command], timeout=timeout)[command.id]


def reserve_now(*, timeout: float | None = None, **kwargs: Any) -> Reply:
    """Send one ReserveNow (see reserve_now_command) and wait for its reply."""
    command = reserve_now_command(**kwargs)
    return send([command], timeout=timeout)[command.id]


def cancel_reservation(
    *, charge_point_id: str, reservation_id: int, timeout: float | None = None
) -> Reply:
    """Send one CancelReservation and wait for its reply."""
    command = cancel_reservation_command(
        charge_point_id=charge_point_id, reservation_id=reservation_id
    )
    return send([command], timeout=timeout)[command.id]


def is_connected(charge_point_id: str) -> bool:
    """Whether some csms process currently holds the charger."""
    return bool(client().exists(route_key(charge_point_id)))


def connected_of(charge_point_ids: list[str]) -> set[str]:
    """Which of these chargers some csms process currently holds."""
    if not charge_point_ids:
        return set()
    nodes = client().mget([route_key(cp) for cp in charge_point_ids])
    return {cp for cp, node in zip(charge_point_ids, nodes, strict=True) if node}
