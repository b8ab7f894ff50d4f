"""The central system over real WebSockets: handshake rules, what chargers report, malformed
frames, sessions. What sessions and reservation reports do to bookings: tests/bookings."""

import asyncio
import base64
import json
import logging
import re
import threading
import time

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from chargers.csms import Csms
from chargers.models import ChargingSession
from locations.models import ChargePoint, EVSEStatus
from tests.chargers.fixtures import LoopThread, wait_for
from tests.locations.factories import CHARGER_PASSWORD, ChargePointFactory, EVSEFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _cp(version="1.6", evses=2, **kwargs):
    cp = ChargePointFactory(ocpp_version=version, is_connected=False, **kwargs)
    for n in range(1, evses + 1):
        EVSEFactory(charge_point=cp, ocpp_evse_id=n)
    return cp


def _basic(identity, password=CHARGER_PASSWORD):
    token = base64.b64encode(f"{identity}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _raw(url, identity, subprotocol, frames):
    """Send frames on a bare WebSocket and collect one answer per frame."""
    answers = []
    async with websockets.connect(
        f"{url}/{identity}", subprotocols=[subprotocol], additional_headers=_basic(identity)
    ) as ws:
        for frame in frames:
            await ws.send(frame)
            answers.append(json.loads(await ws.recv()))
    return answers


def test_csms_refuses_unknown_charge_point_at_handshake(stack):
    with pytest.raises(InvalidStatus) as refused:
        stack.run(_raw(stack.url(), "NOPE-1", "ocpp1.6", []))
    assert refused.value.response.status_code == 404


def test_csms_refuses_wrong_password_and_accepts_right_one(stack):
    cp = _cp()
    cp.set_password("s3cret-pass")
    cp.save()
    sim = stack.charger(cp, password="s3cret-pass")
    assert sim.connected
    stack.run(sim.disconnect())
    for password in ("wrong", None):
        intruder = type(sim)(stack.url(), cp.identity, password=password)
        with pytest.raises(InvalidStatus) as refused:
            stack.run(intruder.connect())
        assert refused.value.response.status_code == 401


def test_csms_refuses_connection_without_ocpp_subprotocol(stack):
    cp = _cp()
    with pytest.raises(InvalidStatus) as refused:
        stack.run(_raw(stack.url(), cp.identity, "ocpp9.9", []))
    assert refused.value.response.status_code == 400


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_csms_boot_stores_charger_and_disconnect_marks_offline(stack, version):
    cp = _cp(version)
    sim = stack.charger(cp)
    cp.refresh_from_db()
    assert cp.is_connected
    assert cp.vendor == "Chargebook"
    assert cp.model == ("Sim 2" if version == "2.0.1" else "Sim 1")
    assert cp.firmware_version == ("2.0" if version == "2.0.1" else "1.0")
    assert cp.last_boot is not None
    assert cp.ocpp_version == version
    stack.run(sim.disconnect())
    wait_for(lambda: not ChargePoint.objects.get(pk=cp.pk).is_connected)


@pytest.mark.parametrize(
    ("version", "reported", "expected"),
    [
        ("1.6", "Faulted", EVSEStatus.OUTOFORDER),
        ("1.6", "Charging", EVSEStatus.CHARGING),
        ("2.0.1", "Occupied", EVSEStatus.CHARGING),
        ("2.0.1", "Unavailable", EVSEStatus.INOPERATIVE),
    ],
)
def test_csms_status_notification_drives_evse_status(stack, version, reported, expected):
    cp = _cp(version)
    sim = stack.charger(cp)
    assert set(cp.evses.values_list("status", flat=True)) == {EVSEStatus.AVAILABLE}
    stack.run(sim.cp.report(2, reported))
    statuses = dict(cp.evses.values_list("ocpp_evse_id", "status"))
    assert statuses == {1: EVSEStatus.AVAILABLE, 2: expected}


def test_csms_connector_zero_reports_on_the_whole_station(stack):
    cp = _cp("1.6", evses=3)
    sim = stack.charger(cp)
    stack.run(sim.cp.report(3, "Charging"))
    stack.run(sim.cp.report(0, "Unavailable"))  # e.g. after ChangeAvailability Inoperative
    statuses = dict(cp.evses.values_list("ocpp_evse_id", "status"))
    assert statuses == {1: EVSEStatus.INOPERATIVE, 2: EVSEStatus.INOPERATIVE,
                        3: EVSEStatus.INOPERATIVE}  # fmt: skip
    stack.run(sim.cp.report(2, "Faulted"))
    stack.run(sim.cp.report(0, "Available"))
    statuses = dict(cp.evses.values_list("ocpp_evse_id", "status"))
    # What the station status took out comes back; what a connector reported itself since
    # then (a fault) stays until that connector says otherwise.
    assert statuses == {1: EVSEStatus.AVAILABLE, 2: EVSEStatus.OUTOFORDER,
                        3: EVSEStatus.AVAILABLE}  # fmt: skip


@pytest.mark.parametrize(
    ("version", "subprotocol", "format_code"),
    [("1.6", "ocpp1.6", "FormationViolation"), ("2.0.1", "ocpp2.0.1", "FormatViolation")],
)
def test_csms_malformed_frames_get_call_error_and_connection_survives(
    stack, version, subprotocol, format_code
):
    cp = _cp(version)
    answers = stack.run(
        _raw(stack.url(), cp.identity, subprotocol, [
            "this is not json",
            '{"not": "a list"}',
            '[2, "m1", "BootNotification", {}]',
            '[2, "m2", {"action": "odd"}, {}]',
            '[2, "m3", "NoSuchAction", {}]',
            '[2, "m4", "Heartbeat", {}]',
        ])
    )  # fmt: skip
    assert answers[0][:3] == [4, "-1", format_code]
    assert answers[1][0] == 4 and answers[1][2] == "ProtocolError"
    assert answers[2][:2] == [4, "m1"]
    assert answers[2][2] in ("ProtocolError", "OccurenceConstraintViolation")
    assert answers[3][:3] == [4, "m2", format_code]
    assert answers[4][:2] == [4, "m3"] and answers[4][2] in ("NotSupported", "NotImplemented")
    assert answers[5][:2] == [3, "m4"] and "currentTime" in answers[5][2]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_csms_records_session_start_and_stop(stack, version):
    cp = _cp(version)
    sim = stack.charger(cp)
    transaction_id = stack.run(sim.start_session("TOKEN-ABC", evse=1))
    session = ChargingSession.objects.get(charge_point=cp, transaction_id=transaction_id)
    assert (session.evse.ocpp_evse_id, session.id_tag, session.booking_id) == (1, "TOKEN-ABC", None)
    assert session.stopped_at is None
    stack.run(sim.stop_session(transaction_id, evse=1))
    session.refresh_from_db()
    assert session.stopped_at is not None
    assert cp.evses.get(ocpp_evse_id=1).status == EVSEStatus.AVAILABLE


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_csms_records_meter_values_and_the_energy_of_a_session(stack, version):
    cp = _cp(version)
    sim = stack.charger(cp)
    sim.power_w = 36_000_000  # 10 kWh a second: the test need not wait for energy
    transaction_id = stack.run(sim.start_session("TOKEN-MV", evse=2))
    session = ChargingSession.objects.get(charge_point=cp, transaction_id=transaction_id)
    time.sleep(0.05)
    stack.run(sim.send_meter_values())
    time.sleep(0.05)
    stack.run(sim.send_meter_values())
    session.refresh_from_db()
    readings = list(session.meter_readings.order_by("at"))
    assert len(readings) >= 2
    assert readings[-1].power_w == 36_000_000
    assert readings[-1].energy_wh > readings[0].energy_wh
    so_far = session.energy_wh
    assert so_far is not None and so_far > 0  # energy so far, while it charges
    stack.run(sim.stop_session(transaction_id, evse=2))
    session.refresh_from_db()
    assert session.stopped_at is not None and session.energy_wh >= so_far
    # The charger's own register decides (1.6 reports whole Wh).
    assert float(session.energy_wh) == pytest.approx(
        sim.register(2) - session.meter_start_wh, abs=1
    )


def test_csms_keeps_a_meter_value_sent_twice_once(stack):
    cp = _cp("1.6")
    sim = stack.charger(cp)
    transaction_id = stack.run(sim.start_session("TOKEN-MV2", evse=1))
    frame = sim.sample(1, "Sample.Periodic", version="1.6")
    from ocpp.v16 import call as call16

    message = call16.MeterValues(
        connector_id=1, transaction_id=int(transaction_id), meter_value=[frame]
    )
    stack.run(sim.cp.call(message))
    stack.run(sim.cp.call(message))
    session = ChargingSession.objects.get(charge_point=cp, transaction_id=transaction_id)
    assert session.meter_readings.count() == 1


def test_csms_basic_auth_username_must_be_charge_point_id(stack):
    cp = _cp()
    cp.set_password("s3cret-pass")
    cp.save()
    other = base64.b64encode(b"SOMEONE:s3cret-pass").decode()

    async def connect():
        async with websockets.connect(
            f"{stack.url()}/{cp.identity}", subprotocols=["ocpp1.6"],
            additional_headers={"Authorization": f"Basic {other}"},
        ):  # fmt: skip
            pass

    with pytest.raises(InvalidStatus) as refused:
        stack.run(connect())
    assert refused.value.response.status_code == 401


def test_csms_stop_is_bounded_when_a_database_call_hangs(transactional_db, bus_prefix, caplog):
    # A shutdown (SIGTERM) must end the process even when a database call never returns: the
    # csms logs what it left behind instead of waiting for it.
    loop = LoopThread()
    release = threading.Event()

    async def start() -> Csms:
        csms = Csms(port=0, bus_prefix=bus_prefix, db_threads=2)
        await csms.start()
        return csms

    try:
        csms = loop.run(start())
        stuck = asyncio.run_coroutine_threadsafe(csms.db(release.wait, 30), loop.loop)
        with caplog.at_level(logging.WARNING, logger="chargers.csms"):
            loop.run(csms.stop(timeout=0.5), timeout=10)
        assert "closing database connections took over 0.5 s" in caplog.text
        assert not stuck.done()  # still inside the hanging call when stop returned
    finally:
        release.set()
        stuck.result(10)
        loop.close()


def test_csms_logs_a_huge_unsupported_frame_cut_with_its_size(stack, caplog):
    cp = _cp("1.6")
    frame = json.dumps([2, "big", "NoSuchAction", {"data": "x" * 1_000_000}])
    with caplog.at_level(logging.INFO):
        answers = stack.run(_raw(stack.url(), cp.identity, "ocpp1.6", [frame]))
    assert answers[0][:2] == [4, "big"]
    logged = [r for r in caplog.records if r.name in ("ocpp", "chargers.csms")]
    assert any("NoSuchAction" in r.getMessage() for r in logged)
    sizes = [int(m) for r in logged for m in re.findall(r"cut: (\d+) bytes", r.getMessage())]
    assert sizes and max(sizes) > 1_000_000
    for record in logged:
        assert len(record.getMessage()) < 2000
        assert len(record.exc_text or "") < 20_000
