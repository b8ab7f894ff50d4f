"""Reading OCPP meter values (1.6 and 2.0.1 shapes) into plain readings."""

from datetime import UTC, datetime
from decimal import Decimal as D

from chargers.meter import readings


def test_1_6_energy_power_and_current_in_their_units():
    values = [{"timestamp": "2027-01-05T10:00:00Z", "sampled_value": [
        {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "10", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"value": "11", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
        {"value": "230", "measurand": "Voltage", "unit": "V"},
    ]}]  # fmt: skip
    (r,) = readings(values)
    assert r.at == datetime(2027, 1, 5, 10, tzinfo=UTC)
    assert (r.energy_wh, r.power_w, r.current_a) == (D("12500.0"), D("7400.0"), D("21"))


def test_the_default_measurand_is_the_energy_register_in_wh():
    (r,) = readings(
        [{"timestamp": "2027-01-05T10:00:00+01:00", "sampled_value": [{"value": "42"}]}]
    )
    assert r.energy_wh == D(42) and r.at == datetime(2027, 1, 5, 9, tzinfo=UTC)


def test_2_0_1_unit_of_measure_with_multiplier():
    values = [{"timestamp": "2027-01-05T10:00:00.123Z", "sampled_value": [
        {"value": 3.2, "measurand": "Energy.Active.Import.Register",
         "unit_of_measure": {"unit": "Wh", "multiplier": 3}},
        {"value": 16, "measurand": "Current.Import"},
    ]}]  # fmt: skip
    (r,) = readings(values)
    assert r.energy_wh == D("3200.0") and r.current_a == D(16) and r.power_w is None


def test_unreadable_values_and_other_measurands_are_left_out():
    values = [
        {"timestamp": "not a time", "sampled_value": [{"value": "1"}]},
        {"timestamp": "2027-01-05T10:00:00Z", "sampled_value": [{"value": "NaN"}, "junk"]},
        {"timestamp": "2027-01-05T10:01:00Z",
         "sampled_value": [{"value": "5", "measurand": "SoC", "unit": "Percent"}]},
        "junk",
    ]  # fmt: skip
    assert readings(values) == []
    assert readings(None) == []
