"""Management commands: add_charge_point provisions and prints EVSE uids."""

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
