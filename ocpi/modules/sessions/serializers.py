"""Sessions module (OCPI 2.3.0) object shape: the Session of a chargers ChargingSession fetched
with ocpi.selectors.sessions_of_party(), priced by the one cost function (locations.tariffs) under
the tariff in force at its EVSE when it started."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models.functions import Upper
from rest_framework import serializers

from bookings.billing import session_authorization_reference
from bookings.models import Booking
from chargers.models import ChargingSession
from chargers.selectors import session_periods
from locations.models import Tariff
from locations.selectors import TariffCatalog, tariff_catalog, tariff_terms
from locations.tariffs import Cost, Period, session_cost
from ocpi.models import Token
from ocpi.responses import ocpi_datetime, ocpi_number

HOUR = Decimal(3600)


def number(value: Decimal, places: str = "0.0001") -> int | float:
    """A volume or amount as an OCPI number, to four places (Sessions and CDRs)."""
    return ocpi_number(value, places)


def price_object(cost: Cost) -> dict[str, Any]:
    """A 2.3.0 Price: before taxes, and the taxes as TaxAmounts."""
    price: dict[str, Any] = {"before_taxes": number(cost.before_taxes), "taxes": []}
    if cost.taxes:
        tax: dict[str, Any] = {"name": cost.tax_name or "VAT", "amount": number(cost.taxes)}
        if cost.tax_percentage is not None:
            tax["percentage"] = number(cost.tax_percentage)
        price["taxes"].append(tax)
    return price


@dataclass(frozen=True)
class SessionContext:
    """What a page of sessions needs besides the rows: each one's booking (for its token and
    authorization reference), the party's tokens by uid, and the tariffs."""

    bookings: Mapping[int, Any]
    tokens: Mapping[str, Any]
    tariff_for: Any  # (session) -> Tariff | None


def session_context(
    party, sessions: Sequence[ChargingSession], *, catalog: TariffCatalog | None = None
) -> SessionContext:
    """What rendering these sessions (or CDRs: anything with booking_id and id_tag) for the
    party needs, loaded at once. The tariffs are loaded when first asked for, unless the caller
    gives the `catalog` it already has (a deliverer pushing many sessions)."""
    booking_ids = {s.booking_id for s in sessions if s.booking_id}
    bookings = Booking.objects.filter(pk__in=booking_ids).prefetch_related("tokens")
    # Matched as sessions_of_party matched them: uids are case-insensitive.
    tags = {s.id_tag.upper() for s in sessions}
    tokens = Token.objects.annotate(key=Upper("uid")).filter(owner=party, key__in=tags)
    loaded: list[TariffCatalog] = [catalog] if catalog is not None else []

    def tariff_for(session: ChargingSession) -> Tariff | None:
        if not loaded:
            loaded.append(tariff_catalog())
        return loaded[0].for_session(
            evse_id=session.evse_id, location_id=session.charge_point.location_id,
            at=session.started_at,
        )  # fmt: skip

    return SessionContext(
        bookings={b.pk: b for b in bookings},
        tokens={t.uid.upper(): t for t in tokens},
        tariff_for=tariff_for,
    )


def cdr_token(session, booking, token, party) -> dict[str, str]:
    """The CdrToken of a session or CDR (anything with `id_tag`): the booking's token with that
    uid, else the party's token, else the uid as an RFID of the party."""
    uid = session.id_tag
    for t in booking.tokens.all() if booking is not None else ():
        if t.uid.upper() == uid.upper():
            return {"country_code": t.country_code, "party_id": t.party_id, "uid": t.uid,
                    "type": t.type, "contract_id": t.contract_id}  # fmt: skip
    if token is not None:
        return {"country_code": token.country_code, "party_id": token.party_id, "uid": token.uid,
                "type": token.type, "contract_id": token.contract_id}  # fmt: skip
    return {"country_code": party.country_code, "party_id": party.party_id, "uid": uid,
            "type": "RFID", "contract_id": uid}  # fmt: skip


def _period_object(period: Period, tariff: Tariff | None) -> dict[str, Any]:
    hours = Decimal(str((period.end - period.start).total_seconds())) / HOUR
    dimensions = []
    if period.energy_wh:
        dimensions.append({"type": "ENERGY", "volume": number(period.energy_wh / 1000)})
    dimensions.append({"type": "TIME" if period.charging else "PARKING_TIME",
                       "volume": number(hours)})  # fmt: skip
    if period.power_kw is not None:
        dimensions.append({"type": "MAX_POWER", "volume": number(period.power_kw, "0.001")})
    item: dict[str, Any] = {
        "start_date_time": ocpi_datetime(period.start),
        "dimensions": dimensions,
    }
    if tariff is not None:
        item["tariff_id"] = tariff.ocpi_id
    return item


def session_object(
    session: ChargingSession, *, party, context: SessionContext, now
) -> dict[str, Any]:
    location = session.charge_point.location
    booking = context.bookings.get(session.booking_id) if session.booking_id else None
    tariff = context.tariff_for(session)
    periods = session_periods(session, until=now)
    energy = session.energy_wh or Decimal(0)
    connectors: Sequence = list(session.evse.connectors.all()) if session.evse_id else []
    data: dict[str, Any] = {
        "country_code": settings.OCPI_COUNTRY_CODE,
        "party_id": settings.OCPI_PARTY_ID,
        "id": str(session.pk),
        "start_date_time": ocpi_datetime(session.started_at),
        "kwh": number(energy / 1000),
        "cdr_token": cdr_token(session, booking, context.tokens.get(session.id_tag.upper()), party),
        "auth_method": "COMMAND" if session.started_by_command else "WHITELIST",
        "location_id": location.ocpi_id,
        "evse_uid": session.evse.uid if session.evse_id else "#NA",
        "connector_id": connectors[0].connector_id if connectors else "#NA",
        "currency": tariff.currency if tariff is not None else settings.DEFAULT_CURRENCY,
        "charging_periods": [_period_object(p, tariff) for p in periods],
        "status": "COMPLETED" if session.stopped_at else "ACTIVE",
        "last_updated": ocpi_datetime(session.ocpi_last_updated),
    }
    if session.stopped_at:
        data["end_date_time"] = ocpi_datetime(session.stopped_at)
    reference = session_authorization_reference(session, booking)
    if reference:
        data["authorization_reference"] = reference
    if tariff is not None:
        cost = session_cost(tariff_terms(tariff), periods, location.zone).rounded()
        data["total_cost"] = price_object(cost)
    return data


# Output shape for the OpenAPI schema only.
class SessionOut(serializers.Serializer):
    country_code = serializers.CharField()
    party_id = serializers.CharField()
    id = serializers.CharField()
    start_date_time = serializers.DateTimeField()
    end_date_time = serializers.DateTimeField(required=False)
    kwh = serializers.FloatField()
    cdr_token = serializers.DictField()
    auth_method = serializers.ChoiceField(choices=["AUTH_REQUEST", "COMMAND", "WHITELIST"])
    authorization_reference = serializers.CharField(required=False)
    location_id = serializers.CharField()
    evse_uid = serializers.CharField()
    connector_id = serializers.CharField()
    currency = serializers.CharField()
    charging_periods = serializers.ListField(child=serializers.DictField())
    total_cost = serializers.DictField(required=False)
    status = serializers.ChoiceField(choices=["ACTIVE", "COMPLETED", "INVALID", "PENDING"])
    last_updated = serializers.DateTimeField()
