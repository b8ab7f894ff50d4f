"""Credentials module shapes (core 2.3.0, digest 3.3/3.4)."""

from __future__ import annotations

from rest_framework import serializers

from ocpi.fields import (
    CiStringField,
    InputSerializer,
    StrictCharField,
    StrictChoiceField,
    StrictURLField,
)

ROLES = ["CPO", "EMSP", "NAP", "NSP", "OTHER", "SCSP"]


class BusinessDetailsSerializer(InputSerializer):
    name = StrictCharField(max_length=100)
    website = StrictURLField(max_length=255, required=False, allow_null=True)
    logo = serializers.DictField(required=False, allow_null=True)


class CredentialsRoleSerializer(InputSerializer):
    role = StrictChoiceField(choices=ROLES)
    business_details = BusinessDetailsSerializer()
    party_id = CiStringField(3)
    country_code = CiStringField(2)


class CredentialsSerializer(InputSerializer):
    token = StrictCharField(max_length=64, trim_whitespace=False)
    url = StrictURLField(max_length=255)
    hub_party_id = CiStringField(5, required=False, allow_null=True)
    roles = CredentialsRoleSerializer(many=True, allow_empty=False)

    def validate_token(self, value: str) -> str:
        if any(not ("!" <= ch <= "~") for ch in value):
            raise serializers.ValidationError("Only printable, non-whitespace ASCII is allowed.")
        return value
