"""Commands module shapes (core 2.3.0): ReserveNow, CancelReservation, StartSession,
StopSession, UnlockConnector, CommandResponse."""

from __future__ import annotations

from rest_framework import serializers

from ocpi.fields import CiStringField, InputSerializer, OcpiDateTimeField, StrictURLField
from ocpi.modules.tokens.serializers import TokenSerializer


class ReserveNowSerializer(InputSerializer):
    response_url = StrictURLField(max_length=255)
    token = TokenSerializer()
    expiry_date = OcpiDateTimeField()
    reservation_id = CiStringField(36)
    location_id = CiStringField(36)
    evse_uid = CiStringField(36, required=False, allow_null=True)
    authorization_reference = CiStringField(36, required=False, allow_null=True)


class CancelReservationSerializer(InputSerializer):
    response_url = StrictURLField(max_length=255)
    reservation_id = CiStringField(36)


class StartSessionSerializer(InputSerializer):
    response_url = StrictURLField(max_length=255)
    token = TokenSerializer()
    location_id = CiStringField(36)
    evse_uid = CiStringField(36, required=False, allow_null=True)
    connector_id = CiStringField(36, required=False, allow_null=True)
    authorization_reference = CiStringField(36, required=False, allow_null=True)

    def validate(self, attrs):
        if attrs.get("connector_id") and not attrs.get("evse_uid"):
            raise serializers.ValidationError({"evse_uid": "required when connector_id is set."})
        return attrs


class StopSessionSerializer(InputSerializer):
    response_url = StrictURLField(max_length=255)
    session_id = CiStringField(36)


class UnlockConnectorSerializer(InputSerializer):
    response_url = StrictURLField(max_length=255)
    location_id = CiStringField(36)
    evse_uid = CiStringField(36)
    connector_id = CiStringField(36)


class CommandResponseOut(serializers.Serializer):
    result = serializers.ChoiceField(["ACCEPTED", "REJECTED", "NOT_SUPPORTED", "UNKNOWN_SESSION"])
    timeout = serializers.IntegerField()
    message = serializers.ListField(child=serializers.DictField(), required=False)
