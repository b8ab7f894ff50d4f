"""The OCPP central system: an asyncio WebSocket server on the `ocpp` library (1.6-J and 2.0.1).

One process holds many charger connections. Database work runs on a small thread pool
(`Csms.db`), each call opening/closing Django connections as a request would. Commands from
workers arrive over Redis (see `chargers.gateway` for the protocol) and are answered there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import math
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone
from django.utils.crypto import salted_hmac
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from ocpp.exceptions import OCPPError
from ocpp.messages import MessageType, unpack
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from prometheus_client import start_http_server
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError

from locations.models import ChargePoint
from locations.services import (
    charge_point_record_boot,
    charge_point_set_connected,
    charge_points_touch,
)

from . import gateway, meter, metrics, services

logger = logging.getLogger("chargers.csms")
T = TypeVar("T")

FRAME_LOG_CHARS = 1000  # a frame in a log line is cut to this many characters, then its size

SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
ROUTE_TTL_SECONDS = 30  # a crashed csms's chargers look offline after this long
ROUTE_REFRESH_SECONDS = 10
LAST_SEEN_FLUSH_SECONDS = 15  # last_seen is written in batches, not on every frame
REPLY_TTL_SECONDS = 60
REDIS_POOL_SIZE = 32
REDIS_CONNECT_TIMEOUT_SECONDS = 5  # a Redis host that is away must not stall a handshake
# A charger's password, once verified, is remembered as a keyed digest (not the password) for
# every csms process: reconnects after a restart skip the slow hash (about 0.25-0.5 s each).
VERIFIED_TTL_SECONDS = 7 * 24 * 3600
VERIFIED_LOOKUP_TIMEOUT_SECONDS = 0.5  # a slow Redis means the slow hash, not a stalled handshake
STOP_TIMEOUT_SECONDS = 10.0

# Deletes the route only if it still names this node (a reconnect elsewhere may own it now).
_DELETE_IF_OURS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _cut(text: str) -> str:
    if len(text) <= FRAME_LOG_CHARS:
        return text
    return f"{text[:FRAME_LOG_CHARS]}... [cut: {len(text.encode())} bytes in all]"


class FrameLogFilter(logging.Filter):
    """Cut the OCPP frames in log records: a charger may send a frame as large as the WebSocket
    allows (1 MiB), and every log line would carry it whole (issue 18)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg if isinstance(arg, int | float | None) else _cut(str(arg))
                for arg in record.args
            )
        if record.exc_info and not record.exc_text:
            # An error about a frame may quote it (a schema error names the whole payload).
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = "\n".join(_cut(line) for line in text.splitlines())
        return True


# The ocpp library logs frames on its own logger ("ocpp", OCPP_LOG_LEVEL), this module on its own.
for _name in ("ocpp", "chargers.csms"):
    logging.getLogger(_name).addFilter(FrameLogFilter())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime:
    if value:
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                return parsed
    return timezone.now()


def _call_error(version: str, message_id: str, error: OCPPError) -> str:
    code = error.code
    if code == "FormatViolation" and version == "1.6":
        code = "FormationViolation"  # OCPP 1.6-J spells it so (section 4.2.3)
    return json.dumps([4, message_id, code, error.description, error.details or {}])


def _guess_message_id(raw: Any) -> str:
    """The message id of a frame that failed to parse, or "-1" (OCPP 2.0.1-J section 4.2.3)."""
    with contextlib.suppress(Exception):
        data = json.loads(raw)
        if isinstance(data, list) and len(data) > 1 and isinstance(data[1], str):
            return data[1]
    return "-1"


class NotSent(Exception):
    """A command whose turn on its connection did not come in time; it was not sent."""


class _CentralMixin:
    """What both protocol versions share: malformed-frame handling, last-seen tracking and the
    commands' turns on the connection."""

    version: str  # "1.6" or "2.0.1"
    csms: Csms
    row: ChargePoint
    websocket: ServerConnection
    turn: asyncio.Lock  # held while one of our calls awaits the charger's answer

    async def send_frame(self, frame: str) -> None:
        """Send a frame the library would not send itself (a CallError for a broken frame)."""
        await self.websocket.send(frame)

    async def route_message(self, raw_msg):
        self.csms.seen.add(self.id)
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            # The library only logs unparseable frames; the charger deserves a CallError.
            await self.send_frame(_call_error(self.version, _guess_message_id(raw_msg), error))
            return
        if not isinstance(msg.unique_id, str) or (
            msg.message_type_id == MessageType.Call
            and not (isinstance(msg.action, str) and isinstance(msg.payload, dict))
        ):
            from ocpp.exceptions import FormatViolationError

            error = FormatViolationError(details={"cause": "Malformed message frame"})
            message_id = msg.unique_id if isinstance(msg.unique_id, str) else "-1"
            await self.send_frame(_call_error(self.version, message_id, error))
            return
        try:
            await super().route_message(raw_msg)
        except ConnectionClosed:
            raise
        except Exception as error:  # a handler bug must not drop the charger
            logger.exception("%s: error handling %s", self.id, raw_msg)
            if msg.message_type_id == MessageType.Call:
                from ocpp.exceptions import InternalError

                await self.send_frame(
                    _call_error(self.version, msg.unique_id, InternalError(str(error)))
                )

    async def execute(
        self, action: str, payload: dict[str, Any], *, send_by: float, timeout: float
    ) -> tuple[str, str]:
        """Send a bus command to this charger once its earlier calls are answered; the charger
        then has `timeout` seconds to answer. Returns (status, detail). Raises NotSent when its
        turn has not come by `send_by` (wall clock, as the worker set it).

        OCPP allows one call in flight per connection (1.6-J section 4.1.1, 2.0.1-J section
        4.1.1): a deadline counted from when a command was queued let a charger answering
        in 10 s time out nine of its ten ReserveNows (issue 18, finding 8)."""
        call = self.build_call(action, payload)
        try:
            async with asyncio.timeout(max(send_by - time.time(), 0)):
                await self.turn.acquire()
        except TimeoutError:
            raise NotSent from None
        sent = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                result = await self.call(call, suppress=False)
        finally:
            metrics.COMMAND_SECONDS.labels(action).observe(time.monotonic() - sent)
            self.turn.release()
        return str(result.status), ""

    def build_call(self, action: str, payload: dict[str, Any]):
        raise NotImplementedError

    async def announce_boot(self) -> None:
        """Tell the apps that care (the holds it should have are sent again) once the boot's
        answer is out: a charger takes no calls before its boot is accepted."""
        try:
            await self.csms.db(services.charger_booted, charge_point=self.row, at=timezone.now())
        except Exception:  # the reconciling sweep finds what this missed
            logger.exception("%s: announcing its boot failed", self.id)


class Central16(_CentralMixin, ChargePoint16):
    version = "1.6"

    def build_call(self, action: str, payload: dict[str, Any]):
        if action == "ReserveNow":
            return call16.ReserveNow(
                connector_id=payload["evse_id"],
                expiry_date=_iso(datetime.fromisoformat(payload["expires_at"])),
                id_tag=payload["id_tag"][: gateway.OCPP16_ID_TAG_LENGTH],
                reservation_id=payload["reservation_id"],
                parent_id_tag=payload.get("parent_id_tag") or None,
            )
        if action == "CancelReservation":
            return call16.CancelReservation(reservation_id=payload["reservation_id"])
        if action == "RemoteStart":
            return call16.RemoteStartTransaction(
                id_tag=payload["id_tag"][: gateway.OCPP16_ID_TAG_LENGTH],
                connector_id=payload.get("evse_id") or None,
            )
        if action == "RemoteStop":
            return call16.RemoteStopTransaction(transaction_id=int(payload["transaction_id"]))
        if action == "UnlockConnector":
            return call16.UnlockConnector(connector_id=payload["evse_id"])
        raise ValueError(f"Unknown command {action!r}")

    @on(Action16.boot_notification)
    async def on_boot(self, charge_point_vendor, charge_point_model, **kw):
        await self.csms.db(
            charge_point_record_boot, charge_point=self.row, vendor=charge_point_vendor,
            model=charge_point_model,
            serial_number=kw.get("charge_point_serial_number") or kw.get("charge_box_serial_number") or "",  # noqa: E501
            firmware_version=kw.get("firmware_version") or "", at=timezone.now(),
        )  # fmt: skip
        return result16.BootNotification(
            current_time=_iso(timezone.now()),
            interval=self.csms.heartbeat_interval,
            status="Accepted",
        )

    @after(Action16.boot_notification)
    async def after_boot(self, **kw):
        await self.announce_boot()

    @on(Action16.heartbeat)
    async def on_heartbeat(self, **kw):
        return result16.Heartbeat(current_time=_iso(timezone.now()))

    @on(Action16.status_notification)
    async def on_status(self, connector_id, error_code, status, timestamp=None, **kw):
        await self.csms.db(
            services.charger_status_notification, charge_point=self.row,
            ocpp_evse_id=connector_id, ocpp_status=status, at=_parse_time(timestamp),
        )  # fmt: skip
        return result16.StatusNotification()

    @on(Action16.authorize)
    async def on_authorize(self, id_tag, **kw):
        # No token whitelist here: eMSP tokens are authorised by their eMSP; the charger's own
        # reservation enforces who may use a reserved connector.
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action16.start_transaction)
    async def on_start(self, connector_id, id_tag, meter_start, timestamp, **kw):
        session = await self.csms.db(
            services.session_start, charge_point=self.row, ocpp_evse_id=connector_id,
            id_tag=id_tag, started_at=_parse_time(timestamp),
            reservation_id=kw.get("reservation_id"), meter_start_wh=meter_start,
        )  # fmt: skip
        return result16.StartTransaction(
            transaction_id=int(session.transaction_id), id_tag_info={"status": "Accepted"}
        )

    @on(Action16.stop_transaction)
    async def on_stop(self, meter_stop, timestamp, transaction_id, **kw):
        if kw.get("transaction_data"):
            await self.csms.db(
                services.session_meter_values, charge_point=self.row,
                transaction_id=str(transaction_id), readings=meter.readings(kw["transaction_data"]),
            )  # fmt: skip
        await self.csms.db(
            services.session_stop, charge_point=self.row, transaction_id=str(transaction_id),
            stopped_at=_parse_time(timestamp), meter_stop_wh=meter_stop,
            reason=kw.get("reason") or "",
        )  # fmt: skip
        return result16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(Action16.meter_values)
    async def on_meter_values(self, connector_id, meter_value, **kw):
        transaction_id = kw.get("transaction_id")
        await self.csms.db(
            services.session_meter_values, charge_point=self.row,
            readings=meter.readings(meter_value), ocpp_evse_id=connector_id,
            transaction_id=None if transaction_id is None else str(transaction_id),
        )  # fmt: skip
        return result16.MeterValues()


class Central201(_CentralMixin, ChargePoint201):
    version = "2.0.1"

    def build_call(self, action: str, payload: dict[str, Any]):
        if action == "ReserveNow":
            return call201.ReserveNow(
                id=payload["reservation_id"],
                expiry_date_time=_iso(datetime.fromisoformat(payload["expires_at"])),
                id_token={"id_token": payload["id_tag"],
                          "type": payload.get("token_type") or "Central"},
                evse_id=payload["evse_id"],
                connector_type=payload.get("connector_type") or None,
            )  # fmt: skip
        if action == "CancelReservation":
            return call201.CancelReservation(reservation_id=payload["reservation_id"])
        if action == "RemoteStart":
            return call201.RequestStartTransaction(
                id_token={"id_token": payload["id_tag"],
                          "type": payload.get("token_type") or "Central"},
                remote_start_id=payload["remote_start_id"],
                evse_id=payload.get("evse_id") or None,
            )  # fmt: skip
        if action == "RemoteStop":
            return call201.RequestStopTransaction(transaction_id=payload["transaction_id"])
        if action == "UnlockConnector":
            return call201.UnlockConnector(
                evse_id=payload["evse_id"], connector_id=payload["connector_id"]
            )
        raise ValueError(f"Unknown command {action!r}")

    @on(Action201.boot_notification)
    async def on_boot(self, charging_station, reason, **kw):
        await self.csms.db(
            charge_point_record_boot, charge_point=self.row,
            vendor=charging_station.get("vendor_name", ""), model=charging_station.get("model", ""),
            serial_number=charging_station.get("serial_number") or "",
            firmware_version=charging_station.get("firmware_version") or "", at=timezone.now(),
        )  # fmt: skip
        return result201.BootNotification(
            current_time=_iso(timezone.now()),
            interval=self.csms.heartbeat_interval,
            status="Accepted",
        )

    @after(Action201.boot_notification)
    async def after_boot(self, **kw):
        await self.announce_boot()

    @on(Action201.heartbeat)
    async def on_heartbeat(self, **kw):
        return result201.Heartbeat(current_time=_iso(timezone.now()))

    @on(Action201.status_notification)
    async def on_status(self, timestamp, connector_status, evse_id, connector_id, **kw):
        await self.csms.db(
            services.charger_status_notification, charge_point=self.row, ocpp_evse_id=evse_id,
            ocpp_status=connector_status, at=_parse_time(timestamp),
        )  # fmt: skip
        return result201.StatusNotification()

    @on(Action201.authorize)
    async def on_authorize(self, id_token, **kw):
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on(Action201.transaction_event)
    async def on_transaction_event(
        self, event_type, timestamp, trigger_reason, seq_no, transaction_info, **kw
    ):
        at = _parse_time(timestamp)
        id_token = (kw.get("id_token") or {}).get("id_token", "")
        evse_id = (kw.get("evse") or {}).get("id")
        transaction_id = transaction_info["transaction_id"]
        if event_type in ("Started", "Updated"):
            await self.csms.db(
                services.session_start, charge_point=self.row, ocpp_evse_id=evse_id,
                id_tag=id_token, started_at=at, transaction_id=transaction_id,
                reservation_id=kw.get("reservation_id"),
                remote_start_id=transaction_info.get("remote_start_id"),
            )  # fmt: skip
        if kw.get("meter_value"):
            await self.csms.db(
                services.session_meter_values, charge_point=self.row,
                transaction_id=transaction_id, readings=meter.readings(kw["meter_value"]),
            )  # fmt: skip
        if event_type == "Ended":
            await self.csms.db(
                services.session_stop, charge_point=self.row, transaction_id=transaction_id,
                stopped_at=at, reason=transaction_info.get("stopped_reason") or "",
            )  # fmt: skip
        if id_token:
            return result201.TransactionEvent(id_token_info={"status": "Accepted"})
        return result201.TransactionEvent()

    @on(Action201.reservation_status_update)
    async def on_reservation_status_update(self, reservation_id, reservation_update_status, **kw):
        await self.csms.db(
            services.reservation_status_update, charge_point=self.row,
            reservation_id=reservation_id, update_status=reservation_update_status,
            now=timezone.now(),
        )  # fmt: skip
        return result201.ReservationStatusUpdate()

    @on(Action201.meter_values)
    async def on_meter_values(self, evse_id, meter_value, **kw):
        await self.csms.db(
            services.session_meter_values, charge_point=self.row, ocpp_evse_id=evse_id,
            readings=meter.readings(meter_value),
        )  # fmt: skip
        return result201.MeterValues()


def _with_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    close_old_connections()  # like a request: drop broken or expired connections
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


def _charge_point_for_handshake(identity: str) -> ChargePoint | None:
    return ChargePoint.objects.filter(identity=identity).first()


def verified_token(charge_point: ChargePoint, password: str) -> str:
    """What a verified password is remembered as: which password hash it was verified against
    (a digest of the hash, so a new password forgets it) and a digest of the password keyed with
    SECRET_KEY (useless to whoever reads it without the key)."""
    hash_tag = salted_hmac("chargebook.csms.hash", charge_point.password_hash).hexdigest()[:16]
    digest = salted_hmac(
        "chargebook.csms.password", f"{charge_point.identity}:{password}", algorithm="sha256"
    ).hexdigest()
    return f"{hash_tag}:{digest}"


def _basic_credentials(request) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic Authorization header, or None."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return username, password


class HandshakeGuard:
    """Failed handshakes per charge point id and per client address (OCPP security profile 1
    sends the password on every connect): past the settings' limits a handshake is refused
    before any lookup or password check. Per process, in memory: it must work while Redis is
    away, and each csms process guards its own CPU."""

    def __init__(self) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_id = parse_limit(settings.CSMS_AUTH_FAILURES_PER_ID)
        self.per_address = parse_limit(settings.CSMS_AUTH_FAILURES_PER_ADDRESS)

    def retry_after(self, identity: str, address: str) -> int | None:
        """Seconds until a handshake for this id from this address may be tried, or None."""
        wait = None
        for item, key in ((self.per_id, ("id", identity)), (self.per_address, ("ip", address))):
            if not self.limiter.test(item, *key):
                reset = self.limiter.get_window_stats(item, *key).reset_time
                wait = max(wait or 1, math.ceil(reset - time.time()))
        return wait

    def failed(self, identity: str, address: str) -> None:
        self.limiter.hit(self.per_id, "id", identity)
        self.limiter.hit(self.per_address, "ip", address)


class Csms:
    """One csms process: the WebSocket server, the command bus consumer and housekeeping."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        node: str | None = None,
        redis_url: str | None = None,
        bus_prefix: str | None = None,
        heartbeat_interval: int | None = None,
        command_timeout: float | None = None,
        db_threads: int = 4,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.node = node or uuid.uuid4().hex[:12]
        self.redis_url = redis_url or settings.REDIS_URL
        self.prefix = bus_prefix or gateway.bus_prefix()
        self.heartbeat_interval = heartbeat_interval or settings.CSMS_HEARTBEAT_INTERVAL_SECONDS
        self.command_timeout = command_timeout or gateway.default_timeout()
        self.connections: dict[str, Central16 | Central201] = {}
        self.seen: set[str] = set()
        self._db_threads = db_threads
        self._executor = ThreadPoolExecutor(db_threads, thread_name_prefix="csms-db")
        self._tasks: list[asyncio.Task] = []
        self._running: set[asyncio.Task] = set()
        self._server = None
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="csms-auth")
        self._verified: dict[str, str] = {}  # identity -> verified_token(...)
        self.guard = HandshakeGuard()
        self.redis: aioredis.Redis | None = None
        self.port = port

    # -- database access from the event loop --

    async def db(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(_with_db, fn, *args, **kwargs))

    # -- lifecycle --

    async def start(self) -> None:
        # A blocking pool: a boot storm of thousands of chargers waits for a connection
        # instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url, decode_responses=True, max_connections=REDIS_POOL_SIZE, timeout=30,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        )  # fmt: skip
        self.redis = aioredis.Redis(connection_pool=pool)
        self._server = await serve(
            self._handle,
            self.host,
            self.requested_port,
            subprotocols=["ocpp2.0.1", "ocpp1.6"],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            ping_interval=60,
            ping_timeout=60,
            max_size=2**20,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        metrics.CONNECTED.set_function(lambda: len(self.connections))
        with contextlib.suppress(redis.RedisError):
            await self._report_node()
        self._tasks = [
            asyncio.create_task(self._bus_loop(), name="csms-bus"),
            asyncio.create_task(self._route_refresh_loop(), name="csms-routes"),
            asyncio.create_task(self._last_seen_loop(), name="csms-last-seen"),
        ]
        logger.info("csms %s listening on ws://%s:%s/ocpp", self.node, self.host, self.port)

    async def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Close the chargers' connections, write what is pending, release Redis and the
        database threads' connections, in at most `timeout` seconds in all: a connection or
        a database call that hangs is logged and left behind instead of holding the shutdown
        (a SIGTERM must end the process)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        async def within(step: Awaitable[Any], what: str) -> None:
            try:
                await asyncio.wait_for(step, max(deadline - loop.time(), 0.01))
            except TimeoutError:
                logger.warning("csms %s: %s took over %s s; stopping without it", self.node,
                               what, timeout)  # fmt: skip

        for task in self._tasks:
            task.cancel()
        # A cancel can be swallowed inside redis-py's blocking read (seen in the tests: the bus
        # loop then never ends, and an unbounded wait here hung the shutdown); on timeout,
        # wait_for cancels them again.
        await within(
            asyncio.gather(*self._tasks, return_exceptions=True), "stopping the background loops"
        )
        if self._server is not None:
            self._server.close()
            await within(self._server.wait_closed(), "closing the charger connections")
        await within(self._flush_last_seen(), "writing last-seen times")
        if self.redis is not None:
            with contextlib.suppress(redis.RedisError):
                await within(self.redis.delete(gateway.node_key(self.node, self.prefix)),
                             "leaving the bus")  # fmt: skip
            await within(self.redis.aclose(close_connection_pool=True), "closing Redis")
        await within(
            loop.run_in_executor(None, self._close_db_threads), "closing database connections"
        )
        self._hasher.shutdown(wait=False, cancel_futures=True)

    def _close_db_threads(self) -> None:
        """Close each pool thread's database connection (a test database can then be dropped)."""
        barrier = threading.Barrier(self._db_threads, timeout=10)

        def close() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            connections.close_all()

        futures = [self._executor.submit(close) for _ in range(self._db_threads)]
        for future in futures:
            future.result()
        self._executor.shutdown(wait=True)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    # -- handshake --

    async def _process_request(self, connection: ServerConnection, request):
        """Admit a charger (OCPP security profile 1: HTTP Basic, user = charge point id) before
        its connection replaces any other with its id (issue 18, finding 5)."""
        path = request.path.split("?", 1)[0].rstrip("/")
        prefix, _, identity = path.rpartition("/")
        if prefix != "/ocpp" or not identity:
            return connection.respond(HTTPStatus.NOT_FOUND, "Connect to /ocpp/<charge point id>.\n")
        address = str((connection.remote_address or ("?",))[0])
        wait = self.guard.retry_after(identity, address)
        if wait is not None:
            metrics.HANDSHAKE_FAILURES.labels("rate_limited").inc()
            logger.warning("Refused %r from %s: too many failed handshakes", identity, address)
            response = connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "Too many failed attempts; try again later.\n"
            )
            response.headers["Retry-After"] = str(wait)
            return response
        charge_point = await self.db(_charge_point_for_handshake, identity)
        if charge_point is None:
            self.guard.failed(identity, address)
            metrics.HANDSHAKE_FAILURES.labels("unknown_charge_point").inc()
            logger.warning("Refused unknown charge point %r from %s", identity, address)
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown charge point.\n")
        if charge_point.password_hash:
            admitted = await self._authenticated(charge_point, request)
            reason = "wrong or missing password"
        else:
            admitted = settings.CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD
            reason = "it has no password (set one; docs/operations.md)"
        if not admitted:
            self.guard.failed(identity, address)
            metrics.HANDSHAKE_FAILURES.labels("wrong_credentials").inc()
            logger.warning("Refused %r from %s: %s", identity, address, reason)
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Wrong credentials.\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return response
        connection.charge_point = charge_point
        return None

    async def _authenticated(self, charge_point: ChargePoint, request) -> bool:
        credentials = _basic_credentials(request)
        if credentials is None or credentials[0] != charge_point.identity:
            return False
        # A password verified before against this very hash (by this csms or another, before a
        # restart) is checked against its keyed digest, without the hasher; a different one
        # for the same hash is wrong. Only the digest is kept, in memory and in Redis.
        token = verified_token(charge_point, credentials[1])
        known = self._verified.get(charge_point.identity) or await self._shared_verified(
            charge_point.identity
        )
        if known is not None and known.split(":", 1)[0] == token.split(":", 1)[0]:
            if hmac.compare_digest(known, token):
                self._verified[charge_point.identity] = token
                return True
            return False
        # The hasher runs on a thread of its own, never the database threads: a flood of bad
        # handshakes must not delay real chargers' reports (issue 18, finding 5).
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._hasher, charge_point.check_password, credentials[1]):
            self._verified[charge_point.identity] = token
            with contextlib.suppress(redis.RedisError, TimeoutError):
                await asyncio.wait_for(
                    self.redis.set(self._verified_key(charge_point.identity), token,
                                   ex=VERIFIED_TTL_SECONDS),
                    VERIFIED_LOOKUP_TIMEOUT_SECONDS,
                )  # fmt: skip
            return True
        return False

    def _verified_key(self, identity: str) -> str:
        return f"{self.prefix}:verified:{identity}"

    async def _shared_verified(self, identity: str) -> str | None:
        if self.redis is None:
            return None
        try:
            return await asyncio.wait_for(
                self.redis.get(self._verified_key(identity)), VERIFIED_LOOKUP_TIMEOUT_SECONDS
            )
        except (redis.RedisError, TimeoutError):
            return None  # the slow hash decides

    def _select_subprotocol(self, connection: ServerConnection, offered):
        charge_point = getattr(connection, "charge_point", None)
        preferred = SUBPROTOCOLS.get(charge_point.ocpp_version) if charge_point else None
        if preferred in offered:
            return preferred
        for subprotocol in ("ocpp2.0.1", "ocpp1.6"):
            if subprotocol in offered:
                return subprotocol
        raise NegotiationError("Offer ocpp1.6 or ocpp2.0.1 as Sec-WebSocket-Protocol.")

    # -- connections --

    async def _handle(self, connection: ServerConnection) -> None:
        row: ChargePoint = connection.charge_point
        identity = row.identity
        version = "2.0.1" if connection.subprotocol == "ocpp2.0.1" else "1.6"
        cls = Central201 if version == "2.0.1" else Central16
        handler = cls(identity, connection, response_timeout=self.command_timeout)
        handler.csms = self
        handler.row = row
        handler.websocket = connection
        handler.turn = asyncio.Lock()
        previous = self.connections.get(identity)
        self.connections[identity] = handler
        if previous is not None:  # the charger reconnected (authenticated): the newer one wins
            await previous.websocket.close(code=1000, reason="Replaced by a new connection")
        try:
            await self.redis.set(gateway.route_key(identity, self.prefix), self.node,
                                 ex=ROUTE_TTL_SECONDS)  # fmt: skip
            await self._report_node()
        except redis.RedisError as error:
            # Without Redis no worker reaches the charger, but it may still report (sessions
            # and statuses go to PostgreSQL); the route refresh loop publishes the route once
            # Redis answers again (issue 18, finding 3).
            logger.warning("%s: could not publish its route (%s); retrying", identity, error)
        await self.db(
            charge_point_set_connected, charge_point=row, connected=True, at=timezone.now(),
            ocpp_version=version,
        )  # fmt: skip
        logger.info("%s connected (OCPP %s)", identity, version)
        try:
            await handler.start()
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(identity) is handler:
                del self.connections[identity]
                with contextlib.suppress(Exception):
                    await self.redis.eval(
                        _DELETE_IF_OURS, 1, gateway.route_key(identity, self.prefix), self.node
                    )
                    await self._report_node()
                await self.db(
                    charge_point_set_connected, charge_point=row, connected=False,
                    at=timezone.now(),
                )  # fmt: skip
                logger.info("%s disconnected", identity)

    # -- the command bus --

    async def _bus_loop(self) -> None:
        inbox = gateway.inbox_key(self.node, self.prefix)
        while True:
            try:
                item = await self.redis.blpop([inbox], timeout=1)
                if item is None:
                    continue
                batch = [item[1]]
                more = await self.redis.lpop(inbox, 500)
                if more:
                    batch.extend(more)
                for raw in batch:
                    task = asyncio.create_task(self._execute(json.loads(raw)))
                    self._running.add(task)  # keep a reference until done (asyncio docs)
                    task.add_done_callback(self._running.discard)
            except asyncio.CancelledError:
                raise
            except redis.RedisError as error:
                logger.warning("command bus: %s; retrying", error)
                await asyncio.sleep(1)
            except Exception:
                logger.exception("command bus error; retrying")
                await asyncio.sleep(1)

    async def _execute(self, command: dict[str, Any]) -> None:
        if command["send_by"] + command["timeout"] <= time.time():
            return  # the worker stopped waiting; it will decide again from the database
        handler = self.connections.get(command["cp"])
        if handler is None:
            status, detail = gateway.OFFLINE, "The charger is not connected."
        elif command["send_by"] <= time.time():  # picked up late (the bus was slow or away)
            status, detail = gateway.NOT_SENT, "The command reached the csms too late to send."
        else:
            try:
                status, detail = await handler.execute(
                    command["action"], command["payload"], send_by=command["send_by"],
                    timeout=command["timeout"],
                )  # fmt: skip
            except NotSent:
                status, detail = gateway.NOT_SENT, "The charger was still answering earlier calls."
            except OCPPError as error:
                status, detail = gateway.CALL_ERROR, f"{error.code}: {error.description}"
            except TimeoutError:
                status, detail = gateway.TIMEOUT, "The charger did not answer in time."
            except ConnectionClosed:
                status, detail = gateway.OFFLINE, "The connection closed."
            except Exception as error:
                logger.exception("command %s failed", command.get("id"))
                status, detail = gateway.CALL_ERROR, str(error)[:200]
        metrics.COMMANDS.labels(command["action"], status).inc()
        reply = json.dumps({"id": command["id"], "status": status, "detail": detail,
                            "node": self.node})  # fmt: skip
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(command["reply_to"], reply)
                pipe.expire(command["reply_to"], REPLY_TTL_SECONDS)
                await pipe.execute()
        except Exception:
            logger.exception("could not send reply for %s", command.get("id"))

    async def _route_refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(ROUTE_REFRESH_SECONDS)
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for identity in list(self.connections):
                        pipe.set(gateway.route_key(identity, self.prefix), self.node,
                                 ex=ROUTE_TTL_SECONDS)  # fmt: skip
                    await pipe.execute()
                await self._report_node()
            except asyncio.CancelledError:
                raise
            except redis.RedisError as error:
                logger.warning("route refresh failed: %s", error)
            except Exception:
                logger.exception("route refresh failed")

    async def _report_node(self) -> None:
        """Say on the bus that this csms is up and how many chargers it holds (the readiness
        check reads it; chargers.gateway.csms_nodes): every 10 s and when a charger comes or
        goes. Gone with the routes if it dies."""
        report = json.dumps({"connected": len(self.connections), "at": time.time()})
        await self.redis.set(gateway.node_key(self.node, self.prefix), report,
                             ex=ROUTE_TTL_SECONDS)  # fmt: skip

    async def _last_seen_loop(self) -> None:
        while True:
            await asyncio.sleep(LAST_SEEN_FLUSH_SECONDS)
            try:
                await self._flush_last_seen()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("last-seen flush failed")

    async def _flush_last_seen(self) -> None:
        seen, self.seen = self.seen, set()
        if seen:
            await self.db(charge_points_touch, identities=seen, at=timezone.now())


def run(*, host: str, port: int, node: str | None = None) -> None:
    """Run a csms until interrupted (the run_csms command)."""

    async def main() -> None:
        csms = Csms(host=host, port=port, node=node)
        if settings.CSMS_METRICS_PORT:
            # prometheus_client's own server, on a thread: GET /metrics (docs/operations.md).
            start_http_server(settings.CSMS_METRICS_PORT, addr=settings.CSMS_METRICS_HOST)
            logger.info("csms %s: metrics on http://%s:%s/metrics", csms.node,
                        settings.CSMS_METRICS_HOST, settings.CSMS_METRICS_PORT)  # fmt: skip
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Stop cleanly: chargers are marked offline and routes dropped at once, rather
            # than after the route TTL.
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await csms.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
