"""Tokens module object (core 2.3.0 Token; TokenType is an OpenEnum)."""

from __future__ import annotations

from typing import Any

from bookings.models import TOKEN_TYPE_MAX_LENGTH
from ocpi.fields import (
    CiStringField,
    InputSerializer,
    OcpiDateTimeField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
)
from ocpi.models import Token
from ocpi.responses import ocpi_datetime

WHITELIST = ["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"]
PROFILE_TYPES = ["CHEAP", "FAST", "GREEN", "REGULAR"]


class EnergyContractSerializer(InputSerializer):
    supplier_name = StrictCharField(max_length=64)
    contract_id = StrictCharField(max_length=64, required=False, allow_null=True)


class TokenSerializer(InputSerializer):
    country_code = CiStringField(2)
    party_id = CiStringField(3)
    uid = CiStringField(36)
    type = CiStringField(TOKEN_TYPE_MAX_LENGTH)  # an OpenEnum: unknown values are accepted
    contract_id = CiStringField(36)
    visual_number = StrictCharField(max_length=64, required=False, allow_null=True)
    issuer = StrictCharField(max_length=64)
    group_id = CiStringField(36, required=False, allow_null=True)
    valid = StrictBooleanField()
    whitelist = StrictChoiceField(choices=WHITELIST)
    language = StrictCharField(max_length=2, required=False, allow_null=True)
    default_profile_type = StrictChoiceField(choices=PROFILE_TYPES, required=False, allow_null=True)
    energy_contract = EnergyContractSerializer(required=False, allow_null=True)
    last_updated = OcpiDateTimeField()


def token_object(t: Token) -> dict[str, Any]:
    data: dict[str, Any] = {
        "country_code": t.country_code,
        "party_id": t.party_id,
        "uid": t.uid,
        "type": t.type,
        "contract_id": t.contract_id,
        "issuer": t.issuer,
        "valid": t.valid,
        "whitelist": t.whitelist,
        "last_updated": ocpi_datetime(t.last_updated),
    }
    for name in ("visual_number", "group_id", "language", "default_profile_type"):
        if getattr(t, name):
            data[name] = getattr(t, name)
    if t.energy_contract:
        data["energy_contract"] = t.energy_contract
    return data
