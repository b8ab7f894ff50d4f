"""Credentials module: registration (POST), update (PUT), read (GET), unregister (DELETE)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from ocpi import responses as r
from ocpi import services
from ocpi.authentication import presented_token
from ocpi.base import OcpiApi
from ocpi.exceptions import NotRegistered
from ocpi.schema import AUTH_ERRORS, envelope_of

from .serializers import CredentialsSerializer


class CredentialsApi(OcpiApi):
    token_a_allowed = True
    functional_module = False

    @extend_schema(responses={200: envelope_of("CredentialsRead", CredentialsSerializer),
                              **AUTH_ERRORS})  # fmt: skip
    def get(self, request):
        if not self.party.is_registered:
            raise NotRegistered()
        # Only the digest is stored: the token they called with is the one to show.
        token = presented_token(request.META.get("HTTP_AUTHORIZATION", ""))
        return r.ocpi_response(services.our_credentials(token))

    @extend_schema(
        request=CredentialsSerializer,
        responses={200: envelope_of("CredentialsRegistered", CredentialsSerializer),
                   **AUTH_ERRORS},
    )  # fmt: skip
    def post(self, request):
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ours = services.credentials_register(
            party=self.party, credentials=serializer.validated_data
        )
        return r.ocpi_response(ours)

    @extend_schema(
        request=CredentialsSerializer,
        responses={200: envelope_of("CredentialsUpdated", CredentialsSerializer), **AUTH_ERRORS},
    )
    def put(self, request):
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ours = services.credentials_update(party=self.party, credentials=serializer.validated_data)
        return r.ocpi_response(ours)

    @extend_schema(responses={200: envelope_of("CredentialsDeleted"), **AUTH_ERRORS})
    def delete(self, request):
        services.credentials_delete(party=self.party)
        return r.ocpi_response()
