"""Simulated charge points, built on the `ocpp` library's charge point classes (1.6 and 2.0.1).

Each boots, reports its EVSEs' status, heartbeats, answers ReserveNow/CancelReservation as its
mode says, and starts a session with a token when told. `python manage.py simulate_chargers`
runs many; tests drive them directly. Modes: accept, occupied, faulted, unavailable, rejected
(the ReserveNow answer), offline (disconnected until the mode changes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import on
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

    async def start_session(self, id_tag: str, evse: int) -> str:
        await self.call(call16.Authorize(id_tag=id_tag))
        reservation = next(
            (rid for rid, r in self.sim.reservations.items() if r["connector_id"] == evse), None
        )
        result = await self.call(call16.StartTransaction(
            connector_id=evse, id_tag=id_tag, meter_start=int(self.sim.register(evse)),
            timestamp=_now(), reservation_id=reservation,
        ))  # fmt: skip
        self.sim.reservations.pop(reservation, None)
        await self.report(evse, "Charging")
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

    async def start_session(self, id_tag: str, evse: int) -> str:
        token = {"id_token": id_tag, "type": "ISO14443"}
        await self.call(call201.Authorize(id_token=token))
        reservation = next(
            (rid for rid, r in self.sim.reservations.items() if r.get("evse_id") == evse), None
        )
        transaction_id = f"T{random.randrange(10**9)}"
        self.seq_no += 1
        await self.call(call201.TransactionEvent(
            event_type="Started", timestamp=_now(), trigger_reason="Authorized",
            seq_no=self.seq_no, transaction_info={"transaction_id": transaction_id},
            evse={"id": evse, "connector_id": 1}, id_token=token, reservation_id=reservation,
            meter_value=[self.sim.sample(evse, "Transaction.Begin", version="2.0.1")],
        ))  # fmt: skip
        self.sim.reservations.pop(reservation, None)
        await self.report(evse, "Occupied")
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
        # Each EVSE's energy register (Wh) and when it last advanced; it runs while charging.
        self._registers: dict[int, tuple[float, float]] = {}
        self.cp: Sim16 | Sim201 | None = None
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

    async def disconnect(self) -> None:
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

    async def start_session(self, id_tag: str, evse: int = 1) -> str:
        self.register(evse)  # the register stands still until the session starts
        transaction_id = await self.cp.start_session(id_tag, evse)
        self.sessions[transaction_id] = evse
        return transaction_id

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
