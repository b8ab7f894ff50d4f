"""Management commands: add_charge_point provisions and prints EVSE uids."""

import json
import socket
import time

import pytest
from django.core.management import CommandError, call_command

from locations.models import ChargePoint
from tests.locations.factories import LocationFactory

pytestmark = pytest.mark.django_db


def test_add_charge_point_creates_evses_and_prints_their_uids(capsys, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    LocationFactory(ocpi_id="UTR-01", country="NLD")
    call_command(
        "add_charge_point", "UTR-CP01", "--location", "UTR-01", "--evses", "3", "--ocpp",
        "2.0.1", "--password", "pw-123456",
    )  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    cp = ChargePoint.objects.get(identity="UTR-CP01")
    uids = list(cp.evses.order_by("ocpp_evse_id").values_list("uid", flat=True))
    assert out == [f"EVSE {uid}" for uid in uids]
    assert uids == ["UTR-CP01-1", "UTR-CP01-2", "UTR-CP01-3"]
    assert cp.ocpp_version == "2.0.1"
    assert cp.check_password("pw-123456")
    assert all(e.reservable and e.connectors.count() == 1 for e in cp.evses.all())


def test_add_charge_point_without_password_generates_one_shown_once(capsys):
    LocationFactory(ocpi_id="UTR-04")
    call_command("add_charge_point", "UTR-CP04", "--location", "UTR-04", "--evses", "1")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "EVSE UTR-CP04-1"
    label, password = out[1].split()
    assert label == "Password" and len(password) == 32
    cp = ChargePoint.objects.get(identity="UTR-CP04")
    assert password not in cp.password_hash
    assert cp.check_password(password)


def test_set_charge_point_password_replaces_it(capsys):
    LocationFactory(ocpi_id="UTR-05")
    call_command("add_charge_point", "UTR-CP05", "--location", "UTR-05", "--evses", "1")
    first = capsys.readouterr().out.splitlines()[-1].split()[1]
    call_command("set_charge_point_password", "UTR-CP05")
    second = capsys.readouterr().out.split()[1]
    cp = ChargePoint.objects.get(identity="UTR-CP05")
    assert second != first
    assert cp.check_password(second) and not cp.check_password(first)
    with pytest.raises(CommandError, match="no charge point"):
        call_command("set_charge_point_password", "NOPE")


def test_seed_demo_gives_every_demo_charger_a_password_the_simulator_can_read(tmp_path):
    passwords = tmp_path / "charger-passwords.json"
    call_command("seed_demo", "--passwords-file", str(passwords))
    known = json.loads(passwords.read_text())
    assert oct(passwords.stat().st_mode & 0o777) == "0o600"
    demo = ChargePoint.objects.all()
    assert set(known) == {cp.identity for cp in demo} and len(known) >= 3
    assert all(cp.check_password(known[cp.identity]) for cp in demo)
    call_command("seed_demo", "--passwords-file", str(passwords))  # again: nothing changes
    assert json.loads(passwords.read_text()) == known
    passwords.unlink()  # lost: new passwords, which the database then holds
    call_command("seed_demo", "--passwords-file", str(passwords))
    renewed = json.loads(passwords.read_text())
    assert all(ChargePoint.objects.get(identity=i).check_password(p) for i, p in renewed.items())


def test_add_charge_point_refuses_unknown_location_and_duplicates():
    LocationFactory(ocpi_id="UTR-02")
    with pytest.raises(CommandError, match="no location"):
        call_command("add_charge_point", "X-1", "--location", "NOPE", "--evses", "1")
    call_command("add_charge_point", "X-1", "--location", "UTR-02", "--evses", "1")
    with pytest.raises(CommandError, match="exists already"):
        call_command("add_charge_point", "X-1", "--location", "UTR-02", "--evses", "1")
    with pytest.raises(CommandError, match="between 1 and 99"):
        call_command("add_charge_point", "X-2", "--location", "UTR-02", "--evses", "0")


def test_tell_publishes_to_running_simulators(capsys, bus_prefix):
    call_command("simulate_chargers", "--tell", "AMS-CP01", "mode", "occupied")
    assert "sent to 0 simulator process(es)" in capsys.readouterr().out


def test_simulate_chargers_waits_for_the_csms_and_gives_up_clearly():
    LocationFactory(ocpi_id="UTR-03")
    call_command("add_charge_point", "W-1", "--location", "UTR-03", "--evses", "1")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there once closed
    started = time.monotonic()
    with pytest.raises(CommandError, match="did not accept connections within"):
        call_command("simulate_chargers", "--url", f"ws://127.0.0.1:{port}/ocpp",
                     "--wait-for-csms", "0.5")  # fmt: skip
    assert 0.5 <= time.monotonic() - started < 5
