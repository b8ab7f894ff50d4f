"""Writes to locations that have rules: what chargers report about themselves."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from .models import EVSE, ChargePoint, EVSEStatus

# EVSE statuses that only an operator sets; a charger's report does not overwrite them.
OPERATOR_STATUSES = (EVSEStatus.PLANNED, EVSEStatus.REMOVED)


# Statuses a charger can report for itself as a whole (OCPP 1.6 connector 0).
STATION_STATUSES = (EVSEStatus.INOPERATIVE, EVSEStatus.OUTOFORDER)


def _reportable(charge_point: ChargePoint, at: datetime):
    """The charger's EVSEs a report made at `at` may change: not under an operator status,
    and with no newer report stored."""
    return (
        EVSE.objects.filter(charge_point=charge_point)
        .exclude(status__in=OPERATOR_STATUSES)
        .filter(Q(status_updated_at__isnull=True) | Q(status_updated_at__lte=at))
    )


def evse_set_status(
    *, charge_point: ChargePoint, ocpp_evse_id: int, status: str, at: datetime
) -> int:
    """Set the status a charger reports for one of its EVSEs, unless a newer report is stored
    or an operator status applies. Returns the number of EVSEs changed (0 or 1)."""
    return (
        _reportable(charge_point, at)
        .filter(ocpp_evse_id=ocpp_evse_id)
        .update(status=status, status_updated_at=at, last_updated=at)
    )


@transaction.atomic
def charge_point_set_status(*, charge_point: ChargePoint, status: str, at: datetime) -> int:
    """Apply a status the charger reports for itself as a whole (OCPP 1.6 connector 0).

    Unavailable or faulted, the whole station is: every EVSE takes that status. Available
    again, the EVSEs that this station status took out come back as available; an EVSE that
    reported a status of its own since then (a later timestamp) keeps it. Returns the number of
    EVSEs changed.
    """
    charge_point = ChargePoint.objects.select_for_update().get(pk=charge_point.pk)
    if charge_point.station_down_at and charge_point.station_down_at > at:
        return 0  # an older report
    evses = _reportable(charge_point, at)
    if status in STATION_STATUSES:
        ChargePoint.objects.filter(pk=charge_point.pk).update(station_down_at=at)
        return evses.update(status=status, status_updated_at=at, last_updated=at)
    if status != EVSEStatus.AVAILABLE or charge_point.station_down_at is None:
        return 0
    ChargePoint.objects.filter(pk=charge_point.pk).update(station_down_at=None)
    return evses.filter(
        status__in=STATION_STATUSES, status_updated_at=charge_point.station_down_at
    ).update(status=status, status_updated_at=at, last_updated=at)


@transaction.atomic
def charge_point_record_boot(
    *,
    charge_point: ChargePoint,
    vendor: str,
    model: str,
    serial_number: str = "",
    firmware_version: str = "",
    at: datetime,
) -> ChargePoint:
    """Store what a BootNotification says about the charger."""
    charge_point = ChargePoint.objects.select_for_update().get(pk=charge_point.pk)
    charge_point.vendor = vendor[:50]
    charge_point.model = model[:50]
    charge_point.serial_number = (serial_number or "")[:50]
    charge_point.firmware_version = (firmware_version or "")[:50]
    charge_point.last_boot = at
    charge_point.last_seen = at
    charge_point.is_connected = True
    charge_point.save()
    return charge_point


def charge_point_set_connected(
    *, charge_point: ChargePoint, connected: bool, at: datetime, ocpp_version: str | None = None
) -> None:
    """Record a connection opened or dropped (a dropped connection marks the charger offline)."""
    fields = {"is_connected": connected, "last_seen": at, "last_updated": at}
    if connected:
        fields["connected_at"] = at
    if ocpp_version:
        fields["ocpp_version"] = ocpp_version
    ChargePoint.objects.filter(pk=charge_point.pk).update(**fields)


def charge_points_touch(*, identities: Iterable[str], at: datetime) -> int:
    """Set last_seen for chargers that sent something (batched by the csms)."""
    identities = list(identities)
    if not identities:
        return 0
    return ChargePoint.objects.filter(identity__in=identities).update(last_seen=at)


class ProvisioningError(Exception):
    pass


def charger_password() -> str:
    """A new OCPP Basic-auth password: 32 hex characters (128 random bits), within OCPP
    2.0.1's 16 to 40 characters and plain enough for any charger's setup tool."""
    return secrets.token_hex(16)


@transaction.atomic
def charge_point_set_password(*, charge_point: ChargePoint, password: str | None = None) -> str:
    """Give the charge point a new password (a generated one unless given); only its hash is
    stored, so the password returned is shown once. Its connection, if any, stays open."""
    password = password or charger_password()
    charge_point.set_password(password)
    ChargePoint.objects.filter(pk=charge_point.pk).update(password_hash=charge_point.password_hash)
    return password


@transaction.atomic
def charge_point_provision(
    *,
    identity: str,
    location_ocpi_id: str,
    evses: int,
    ocpp_version: str = ChargePoint.OcppVersion.V16,
    password: str | None = None,
) -> ChargePoint:
    """Create a charge point with `evses` reservable EVSEs (one 22 kW Type 2 socket each) at
    the location with that OCPI id. Raises ProvisioningError."""
    from django.conf import settings
    from django.core.exceptions import ValidationError

    from .models import (
        Capability,
        Connector,
        ConnectorFormat,
        ConnectorStandard,
        Location,
        PowerType,
    )

    location = Location.objects.filter(ocpi_id=location_ocpi_id).first()
    if location is None:
        raise ProvisioningError(f"There is no location with OCPI id {location_ocpi_id!r}.")
    if not 1 <= evses <= 99:
        raise ProvisioningError("A charge point has between 1 and 99 EVSEs.")
    if ChargePoint.objects.filter(identity=identity).exists():
        raise ProvisioningError(f"Charge point {identity!r} exists already.")
    charge_point = ChargePoint(location=location, identity=identity, ocpp_version=ocpp_version)
    charge_point.set_password(password)
    try:
        charge_point.full_clean()
    except ValidationError as error:
        raise ProvisioningError("; ".join(error.messages)) from error
    charge_point.save()
    base = re.sub(r"[^A-Za-z0-9_.\-*#]", "-", identity)
    country = location.country[:2]
    for number in range(1, evses + 1):
        uid = f"{base}-{number}"
        suffix = 1
        while EVSE.objects.filter(uid=uid).exists():  # OCPI uids are never reused
            suffix += 1
            uid = f"{base}-{number}-{suffix}"
        evse = EVSE.objects.create(
            charge_point=charge_point, uid=uid[:36], ocpp_evse_id=number,
            evse_id=f"{country}*{settings.OCPI_PARTY_ID}*E{base.replace('-', '')}{number}"[:48],
            capabilities=[Capability.RESERVABLE, Capability.RFID_READER,
                          Capability.REMOTE_START_STOP_CAPABLE, Capability.UNLOCK_CAPABLE],
            physical_reference=f"{number}",
        )  # fmt: skip
        Connector.objects.create(
            evse=evse, connector_id="1", standard=ConnectorStandard.IEC_62196_T2,
            format=ConnectorFormat.SOCKET, power_type=PowerType.AC_3_PHASE, max_voltage=400,
            max_amperage=32, max_electric_power=22000,
        )  # fmt: skip
    return charge_point
