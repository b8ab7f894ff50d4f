"""Versions module: our versions list and the 2.3.0 details (token A works here)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from ocpi import responses as r
from ocpi.base import OcpiApi
from ocpi.schema import AUTH_ERRORS, envelope_of
from ocpi.services import public_url


class VersionOut(serializers.Serializer):
    version = serializers.CharField()
    url = serializers.URLField()


class EndpointOut(serializers.Serializer):
    identifier = serializers.CharField()
    role = serializers.CharField()
    url = serializers.URLField()


class VersionDetailsOut(serializers.Serializer):
    version = serializers.CharField()
    endpoints = EndpointOut(many=True)


class VersionListApi(OcpiApi):
    token_a_allowed = True
    functional_module = False

    @extend_schema(responses={200: envelope_of("Versions", VersionOut, many=True), **AUTH_ERRORS})
    def get(self, request):
        return r.ocpi_response([{"version": "2.3.0", "url": public_url("ocpi:version_details")}])


class VersionDetailsApi(OcpiApi):
    token_a_allowed = True
    functional_module = False

    @extend_schema(responses={200: envelope_of("VersionDetails", VersionDetailsOut), **AUTH_ERRORS})
    def get(self, request):
        booking_id = self.party.booking_module_id or "Booking"  # A1: configurable per party
        return r.ocpi_response(
            {
                "version": "2.3.0",
                "endpoints": [
                    {"identifier": "credentials", "role": "SENDER",
                     "url": public_url("ocpi:credentials")},
                    {"identifier": "locations", "role": "SENDER",
                     "url": public_url("ocpi:locations")},
                    {"identifier": "sessions", "role": "SENDER",
                     "url": public_url("ocpi:sessions")},
                    {"identifier": "tariffs", "role": "SENDER",
                     "url": public_url("ocpi:tariffs")},
                    {"identifier": "cdrs", "role": "SENDER", "url": public_url("ocpi:cdrs")},
                    {"identifier": "tokens", "role": "RECEIVER",
                     "url": public_url("ocpi:tokens_base")},
                    {"identifier": "commands", "role": "RECEIVER",
                     "url": public_url("ocpi:commands_base")},
                    {"identifier": booking_id, "role": "SENDER",
                     "url": public_url("ocpi:bookings")},
                ],
            }
        )  # fmt: skip
