"""Simulated charge points, built on the `ocpp` library's charge point classes (1.6 and 2.0.1).

Each boots, reports its EVSEs' status, heartbeats, answers ReserveNow/CancelReservation as its
mode says, and starts a session with a token when told. Like a real charger it takes remote
starts (refused for a token other than the reservation's on a reserved connector, or on a busy
one), remote stops of its open transactions and unlocks, and then starts or stops the session.
`python manage.py simulate_chargers` runs many; tests drive them directly. Modes: accept,
occupied, faulted, unavailable, rejected (the ReserveNow answer; a charger in any mode but
accept refuses remote starts), offline (disconnected until the mode changes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

logger = logging.getLogger("chargers.simulator")

MODES = ("accept", "occupied", "faulted", "unavailable", "rejected", "offline")
RESERVE_ANSWER = {
    "accept": "Accepted",
    "occupied": "Occupied",
    "faulted": "Faulted",
    "unavailable": "Unavailable",
    "rejected": "Rejected",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Received:
    action: str
    payload: dict[str, Any]


class _SimMixin:
    sim: SimulatedCharger

    def _record(self, action: str, payload: dict[str, Any]) -> None:
        self.sim.received.append(Received(action, payload))


class Sim16(_SimMixin, ChargePoint16):
    charging_status = "Charging"  # the connector status reported once a session starts

    @on(Action16.reserve_now)
    async def on_reserve_now(self, connector_id, expiry_date, id_tag, reservation_id, **kw):
        payload = {"connector_id": connector_id, "expiry_date": expiry_date, "id_tag": id_tag,
                   "reservation_id": reservation_id, **kw}  # fmt: skip
        self._record("ReserveNow", payload)
        await self.sim.think()
        status = RESERVE_ANSWER.get(self.sim.mode, "Rejected")
        if status == "Accepted":
            self.sim.reservations[reservation_id] = payload
        return result16.ReserveNow(status=status)

    @on(Action16.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id, **kw):
        self._record("CancelReservation", {"reservation_id": reservation_id})
        await self.sim.think()
        found = self.sim.reservations.pop(reservation_id, None) is not None
        return result16.CancelReservation(status="Accepted" if found else "Rejected")

    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, id_tag, connector_id=None, **kw):
        self._record("RemoteStartTransaction", {"id_tag": id_tag, "connector_id": connector_id,
                                                **kw})  # fmt: skip
        await self.sim.think()
        accepted = self.sim.accept_remote_start(id_tag, connector_id)
        return result16.RemoteStartTransaction(status="Accepted" if accepted else "Rejected")

    @after(Action16.remote_start_transaction)
    async def after_remote_start(self, id_tag, connector_id=None, **kw):
        self.sim.spawn(self.sim.begin_remote_start(id_tag))

    @on(Action16.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id, **kw):
        self._record("RemoteStopTransaction", {"transaction_id": transaction_id})
        await self.sim.think()
        known = str(transaction_id) in self.sim.sessions
        return result16.RemoteStopTransaction(status="Accepted" if known else "Rejected")

    @after(Action16.remote_stop_transaction)
    async def after_remote_stop(self, transaction_id, **kw):
        self.sim.spawn(self.sim.end_remote_stop(str(transaction_id)))

    @on(Action16.unlock_connector)
    async def on_unlock_connector(self, connector_id, **kw):
        self._record("UnlockConnector", {"connector_id": connector_id})
        await self.sim.think()
        known = 1 <= connector_id <= self.sim.evses
        return result16.UnlockConnector(status="Unlocked" if known else "NotSupported")

    @after(Action16.unlock_connector)
    async def after_unlock_connector(self, connector_id, **kw):
        # OCPP 1.6 5.18: a transaction on the connector is stopped before it is unlocked.
        for transaction_id, evse in list(self.sim.sessions.items()):
            if evse == connector_id:
                self.sim.spawn(self.sim.stop_session(transaction_id, evse))

    async def boot(self) -> None:
        await self.call(call16.BootNotification(
            charge_point_model="Sim 1", charge_point_vendor="Chargebook", firmware_version="1.0"
        ))  # fmt: skip
        for evse in range(1, self.sim.evses + 1):
            await self.report(evse, "Available")

    async def report(self, evse: int, status: str) -> None:
        await self.call(call16.StatusNotification(
            connector_id=evse, error_code="NoError", status=status, timestamp=_now()
        ))  # fmt: skip

    async def heartbeat(self) -> None:
        await self.call(call16.Heartbeat())

    async def start_session(self, id_tag: str, evse: int, remote_start_id: int | None) -> str:
        await self.call(call16.Authorize(id_tag=id_tag))
        reservation = next(
            (rid for rid, r in self.sim.reservations.items() if r["connector_id"] == evse), None
        )
        result = await self.call(call16.StartTransaction(
            connector_id=evse, id_tag=id_tag, meter_start=int(self.sim.register(evse)),
            timestamp=_now(), reservation_id=reservation,
        ))  # fmt: skip
        self.sim.reservations.pop(reservation, None)
        return str(result.transaction_id)

    async def meter_values(self, transaction_id: str, evse: int) -> None:
        await self.call(call16.MeterValues(
            connector_id=evse, transaction_id=int(transaction_id),
            meter_value=[self.sim.sample(evse, "Sample.Periodic", version="1.6")],
        ))  # fmt: skip

    async def stop_session(self, transaction_id: str, evse: int) -> None:
        await self.call(call16.StopTransaction(
            meter_stop=int(self.sim.register(evse)), timestamp=_now(),
            transaction_id=int(transaction_id), reason="Local",
        ))  # fmt: skip
        await self.report(evse, "Available")


class Sim201(_SimMixin, ChargePoint201):
    charging_status = "Occupied"
    seq_no = -1  # TransactionEvent sequence number, per connection

    @on(Action201.reserve_now)
    async def on_reserve_now(self, id, expiry_date_time, id_token, **kw):
        payload = {"id": id, "expiry_date_time": expiry_date_time, "id_token": id_token, **kw}
        self._record("ReserveNow", payload)
        await self.sim.think()
        status = RESERVE_ANSWER.get(self.sim.mode, "Rejected")
        if status == "Accepted":
            self.sim.reservations[id] = payload
        return result201.ReserveNow(status=status)

    @on(Action201.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id, **kw):
        self._record("CancelReservation", {"reservation_id": reservation_id})
        await self.sim.think()
        found = self.sim.reservations.pop(reservation_id, None) is not None
        return result201.CancelReservation(status="Accepted" if found else "Rejected")

    @on(Action201.request_start_transaction)
    async def on_request_start(self, id_token, remote_start_id, evse_id=None, **kw):
        self._record("RequestStartTransaction", {"id_token": id_token,
                     "remote_start_id": remote_start_id, "evse_id": evse_id, **kw})  # fmt: skip
        await self.sim.think()
        accepted = self.sim.accept_remote_start(id_token["id_token"], evse_id, remote_start_id)
        return result201.RequestStartTransaction(status="Accepted" if accepted else "Rejected")

    @after(Action201.request_start_transaction)
    async def after_request_start(self, id_token, remote_start_id, evse_id=None, **kw):
        self.sim.spawn(self.sim.begin_remote_start(id_token["id_token"]))

    @on(Action201.request_stop_transaction)
    async def on_request_stop(self, transaction_id, **kw):
        self._record("RequestStopTransaction", {"transaction_id": transaction_id})
        await self.sim.think()
        known = transaction_id in self.sim.sessions
        return result201.RequestStopTransaction(status="Accepted" if known else "Rejected")

    @after(Action201.request_stop_transaction)
    async def after_request_stop(self, transaction_id, **kw):
        self.sim.spawn(self.sim.end_remote_stop(transaction_id))

    @on(Action201.unlock_connector)
    async def on_unlock_connector(self, evse_id, connector_id, **kw):
        self._record("UnlockConnector", {"evse_id": evse_id, "connector_id": connector_id})
        await self.sim.think()
        if not 1 <= evse_id <= self.sim.evses or connector_id != 1:
            status = "UnknownConnector"
        elif evse_id in self.sim.sessions.values():
            status = "OngoingAuthorizedTransaction"
        else:
            status = "Unlocked"
        return result201.UnlockConnector(status=status)

    async def boot(self) -> None:
        await self.call(call201.BootNotification(
            charging_station={"vendor_name": "Chargebook", "model": "Sim 2",
                              "firmware_version": "2.0"},
            reason="PowerUp",
        ))  # fmt: skip
        for evse in range(1, self.sim.evses + 1):
            await self.report(evse, "Available")

    async def report(self, evse: int, status: str) -> None:
        await self.call(call201.StatusNotification(
            timestamp=_now(), connector_status=status, evse_id=evse, connector_id=1
        ))  # fmt: skip

    async def heartbeat(self) -> None:
        await self.call(call201.Heartbeat())

    async def start_session(self, id_tag: str, evse: int, remote_start_id: int | None) -> str:
        token = {"id_token": id_tag, "type": "ISO14443"}
        await self.call(call201.Authorize(id_token=token))
        reservation = next(
            (rid for rid, r in self.sim.reservations.items() if r.get("evse_id") == evse), None
        )
        transaction_id = f"T{random.randrange(10**9)}"
        info: dict[str, Any] = {"transaction_id": transaction_id}
        if remote_start_id is not None:
            info["remote_start_id"] = remote_start_id
        self.seq_no += 1
        await self.call(call201.TransactionEvent(
            event_type="Started", timestamp=_now(),
            trigger_reason="RemoteStart" if remote_start_id is not None else "Authorized",
            seq_no=self.seq_no, transaction_info=info,
            evse={"id": evse, "connector_id": 1}, id_token=token, reservation_id=reservation,
            meter_value=[self.sim.sample(evse, "Transaction.Begin", version="2.0.1")],
        ))  # fmt: skip
        self.sim.reservations.pop(reservation, None)
        return transaction_id

    async def meter_values(self, transaction_id: str, evse: int) -> None:
        self.seq_no += 1
        await self.call(call201.TransactionEvent(
            event_type="Updated", timestamp=_now(), trigger_reason="MeterValuePeriodic",
            seq_no=self.seq_no, transaction_info={"transaction_id": transaction_id},
            meter_value=[self.sim.sample(evse, "Sample.Periodic", version="2.0.1")],
        ))  # fmt: skip

    async def stop_session(self, transaction_id: str, evse: int) -> None:
        self.seq_no += 1
        await self.call(call201.TransactionEvent(
            event_type="Ended", timestamp=_now(), trigger_reason="StopAuthorized",
            seq_no=self.seq_no,
            transaction_info={"transaction_id": transaction_id, "stopped_reason": "Local"},
            meter_value=[self.sim.sample(evse, "Transaction.End", version="2.0.1")],
        ))  # fmt: skip
        await self.report(evse, "Available")


class SimulatedCharger:
    """One simulated charge point and its connection to the csms at `url` (ws://.../ocpp)."""

    def __init__(
        self,
        url: str,
        identity: str,
        *,
        version: str = "1.6",
        evses: int = 2,
        password: str | None = None,
        mode: str = "accept",
        response_timeout: float = 30,
        power_w: float = 11000,
        meter_seconds: float = 60,
        answer_delay: float = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.url = url.rstrip("/")
        self.identity = identity
        self.version = version
        self.evses = evses
        self.password = password
        self.mode = mode
        self.response_timeout = response_timeout
        self.answer_delay = answer_delay  # seconds before answering a ReserveNow or a cancel
        self.received: list[Received] = []
        self.reservations: dict[int, dict[str, Any]] = {}
        self.power_w = power_w
        self.meter_seconds = meter_seconds
        self.sessions: dict[str, int] = {}  # open transaction -> EVSE
        # Remote starts accepted and not begun yet: id tag -> (EVSE, remoteStartId).
        self.remote_starts: dict[str, tuple[int, int | None]] = {}
        # Each EVSE's energy register (Wh) and when it last advanced; it runs while charging.
        self._registers: dict[int, tuple[float, float]] = {}
        self.cp: Sim16 | Sim201 | None = None
        self._work: set[asyncio.Task] = set()  # what it does after answering a command
        self._ws = None
        self._reader: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def connect(self, *, boot: bool = True) -> None:
        """Open the WebSocket (raises websockets' InvalidStatus when refused) and boot."""
        headers = {}
        if self.password is not None:
            token = base64.b64encode(f"{self.identity}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        subprotocol = "ocpp2.0.1" if self.version == "2.0.1" else "ocpp1.6"
        self._ws = await websockets.connect(
            f"{self.url}/{self.identity}", subprotocols=[subprotocol],
            additional_headers=headers, open_timeout=30, ping_interval=60, ping_timeout=60,
        )  # fmt: skip
        cls = Sim201 if self.version == "2.0.1" else Sim16
        self.cp = cls(self.identity, self._ws, response_timeout=self.response_timeout)
        self.cp.sim = self
        self._reader = asyncio.create_task(self._read())
        if boot:
            await self.cp.boot()

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.cp.start()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Do something after a command's answer is out (a start after a remote start), as a
        task of this charger's, ended on disconnect."""
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def disconnect(self) -> None:
        for task in list(self._work):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()  # a handler still busy would otherwise keep it alive
            with contextlib.suppress(BaseException):
                await self._reader
        self._ws = None
        self._reader = None

    async def think(self) -> None:
        """Take `answer_delay` seconds, as a slow charger does before it answers a command."""
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)

    async def send_raw(self, frame: str) -> None:
        """Send a frame as is (to test how the csms treats malformed OCPP)."""
        await self._ws.send(frame)

    async def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode
        if mode == "offline" and self.connected:
            await self.disconnect()

    def register(self, evse: int) -> float:
        """The EVSE's energy register in Wh, advanced at power_w while a session charges."""
        now = time.monotonic()
        wh, since = self._registers.get(evse, (1_000_000.0 + 250_000.0 * evse, now))
        if evse in self.sessions.values():
            wh += self.power_w * (now - since) / 3600
        self._registers[evse] = (wh, now)
        return wh

    def sample(self, evse: int, context: str, *, version: str) -> dict[str, Any]:
        """One MeterValue: the energy register and the power, in the version's shape."""
        charging = evse in self.sessions.values() and context != "Transaction.End"
        power = self.power_w if charging else 0
        values = [(f"{self.register(evse):.1f}", "Energy.Active.Import.Register", "Wh"),
                  (f"{power:.0f}", "Power.Active.Import", "W")]  # fmt: skip
        if version == "2.0.1":
            sampled = [{"value": float(v), "measurand": m, "context": context,
                        "unit_of_measure": {"unit": u}} for v, m, u in values]  # fmt: skip
        else:
            sampled = [{"value": v, "measurand": m, "context": context, "unit": u}
                       for v, m, u in values]  # fmt: skip
        return {"timestamp": _now(), "sampled_value": sampled}

    async def start_session(
        self, id_tag: str, evse: int = 1, remote_start_id: int | None = None
    ) -> str:
        self.register(evse)  # the register stands still until the session starts
        transaction_id = await self.cp.start_session(id_tag, evse, remote_start_id)
        self.sessions[transaction_id] = evse  # open (a remote stop may come) before the report
        await self.cp.report(evse, self.cp.charging_status)
        return transaction_id

    def reserved_for(self, evse: int) -> str | None:
        """The id tag a reservation holds the EVSE for, if any."""
        for reservation in self.reservations.values():
            if reservation.get("connector_id", reservation.get("evse_id")) == evse:
                return reservation.get("id_tag") or reservation["id_token"]["id_token"]
        return None

    def accept_remote_start(
        self, id_tag: str, evse: int | None, remote_start_id: int | None = None
    ) -> bool:
        """Whether to accept a remote start (noting it for begin_remote_start): the charger
        must take commands (mode accept), and the EVSE (the first fitting one when none is
        named) must be free and not reserved for another id tag."""
        if self.mode != "accept":
            return False
        busy = {*self.sessions.values(), *(e for e, _ in self.remote_starts.values())}
        for candidate in [evse] if evse else range(1, self.evses + 1):
            if not 1 <= candidate <= self.evses or candidate in busy:
                continue
            held_for = self.reserved_for(candidate)
            if held_for is not None and held_for.upper() != id_tag.upper():
                continue
            self.remote_starts[id_tag] = (candidate, remote_start_id)
            return True
        return False

    async def begin_remote_start(self, id_tag: str) -> None:
        """Start the session of an accepted remote start (the driver plugs in at once)."""
        accepted = self.remote_starts.pop(id_tag, None)
        if accepted is not None:
            await self.start_session(id_tag, accepted[0], remote_start_id=accepted[1])

    async def end_remote_stop(self, transaction_id: str) -> None:
        evse = self.sessions.get(transaction_id)
        if evse is not None:
            await self.stop_session(transaction_id, evse)

    async def send_meter_values(self) -> None:
        """A periodic meter value for every open session."""
        for transaction_id, evse in list(self.sessions.items()):
            await self.cp.meter_values(transaction_id, evse)

    async def stop_session(self, transaction_id: str, evse: int = 1) -> None:
        self.register(evse)
        self.sessions.pop(transaction_id, None)
        await self.cp.stop_session(transaction_id, evse)

    async def run_forever(self, heartbeat_seconds: float = 300) -> None:
        """Stay connected (reconnecting with backoff) and heartbeat, unless the mode is offline."""
        delay = 1.0
        last_heartbeat = time.monotonic()
        while True:
            if self.mode == "offline":
                await asyncio.sleep(1)
                continue
            try:
                if not self.connected:
                    await self.connect()
                    delay = 1.0
                # Wake at least every meter interval: a session may start in between.
                tick = min(heartbeat_seconds, self.meter_seconds)
                await asyncio.wait_for(asyncio.shield(self._reader), tick)
            except TimeoutError:
                with contextlib.suppress(Exception):
                    if self.sessions:
                        await self.send_meter_values()
                    elif time.monotonic() - last_heartbeat >= heartbeat_seconds - 1:
                        await self.cp.heartbeat()
                        last_heartbeat = time.monotonic()
            except asyncio.CancelledError:
                await self.disconnect()
                raise
            except Exception as error:
                logger.warning("%s: %s; reconnecting in %.0f s", self.identity, error, delay)
                await self.disconnect()
                await asyncio.sleep(delay + random.random())
                delay = min(delay * 2, 60)


async def handle_control(chargers: dict[str, SimulatedCharger], message: dict[str, Any]) -> str:
    """Apply a control message {"cp": id | "*", "action": "mode" | "start" | "stop" |
    "stop_all", ...}."""
    targets = list(chargers.values()) if message.get("cp") == "*" else (
        [chargers[message["cp"]]] if message.get("cp") in chargers else []
    )  # fmt: skip
    results = []
    for sim in targets:
        action = message.get("action")
        if action == "mode":
            await sim.set_mode(message["mode"])
            results.append(f"{sim.identity}: mode {sim.mode}")
        elif action == "start":
            tx = await sim.start_session(message["token"], int(message.get("evse", 1)))
            results.append(f"{sim.identity}: session {tx} started")
        elif action == "stop":
            await sim.stop_session(message["transaction"], int(message.get("evse", 1)))
            results.append(f"{sim.identity}: session {message['transaction']} stopped")
        elif action == "stop_all":
            for transaction_id, evse in list(sim.sessions.items()):
                await sim.stop_session(transaction_id, evse)
            results.append(f"{sim.identity}: every session stopped")
    return "; ".join(results) or "no such charger"


def control_channel(prefix: str) -> str:
    return f"{prefix}:simulator"


def encode_control(**message: Any) -> str:
    return json.dumps(message)
