"""Tokens module, Receiver interface (CPO): eMSPs PUT and PATCH their Tokens; GET one back.

The URL's country_code/party_id are the owning eMSP's and must be the caller's own: another
party's tokens are invisible (404) and cannot be written.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema

from ocpi import responses as r
from ocpi import services
from ocpi.base import OcpiApi
from ocpi.exceptions import OcpiError
from ocpi.models import Token
from ocpi.schema import AUTH_ERRORS, envelope_of
from ocpi.selectors import token_get

from .serializers import TokenSerializer, token_object

TYPE_PARAMETER = OpenApiParameter("type", str, description="TokenType, default RFID")


class TokenApi(OcpiApi):
    def _check_owner(self, country_code: str, party_id: str) -> None:
        if (country_code.upper(), party_id.upper()) != (
            self.party.country_code,
            self.party.party_id,
        ):
            raise OcpiError(
                r.UNKNOWN_TOKEN, "Tokens of another party are not visible.", http_status=404
            )

    def _type(self, request) -> str:
        value = request.query_params.get("type", "RFID")
        if not value or len(value) > 16 or not value.isascii() or not value.isprintable():
            raise OcpiError(r.INVALID_PARAMETERS, "type: not a TokenType.")
        return value

    def _get(self, request, country_code, party_id, token_uid) -> Token:
        self._check_owner(country_code, party_id)
        try:
            return token_get(
                party=self.party, country_code=country_code, party_id=party_id,
                uid=token_uid, type=self._type(request),
            )  # fmt: skip
        except Token.DoesNotExist:
            raise OcpiError(r.UNKNOWN_TOKEN, "Unknown token.", http_status=404) from None

    @extend_schema(
        parameters=[TYPE_PARAMETER],
        responses={200: envelope_of("TokenDetail", TokenSerializer), **AUTH_ERRORS},
    )
    def get(self, request, country_code: str, party_id: str, token_uid: str):
        return r.ocpi_response(token_object(self._get(request, country_code, party_id, token_uid)))

    @extend_schema(
        parameters=[TYPE_PARAMETER],
        request=TokenSerializer,
        responses={200: envelope_of("TokenPut"), 201: envelope_of("TokenCreated"), **AUTH_ERRORS},
    )
    def put(self, request, country_code: str, party_id: str, token_uid: str):
        self._check_owner(country_code, party_id)
        serializer = TokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        v = serializer.validated_data
        token_type = request.query_params.get("type") or v["type"]
        mismatch = [
            name
            for name, url_value in (("country_code", country_code), ("party_id", party_id),
                                    ("uid", token_uid), ("type", token_type))
            if str(v[name]).upper() != url_value.upper()
        ]  # fmt: skip
        if mismatch:
            raise OcpiError(r.INVALID_PARAMETERS, f"{mismatch[0]}: differs between URL and body.")
        _, created = services.token_put(party=self.party, data=v)
        return r.ocpi_response(http_status=201 if created else 200)

    @extend_schema(
        parameters=[TYPE_PARAMETER],
        request=TokenSerializer(partial=True),
        responses={200: envelope_of("TokenPatched"), **AUTH_ERRORS},
    )
    def patch(self, request, country_code: str, party_id: str, token_uid: str):
        token = self._get(request, country_code, party_id, token_uid)
        serializer = TokenSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        v = serializer.validated_data
        if "last_updated" not in v:
            raise OcpiError(r.INVALID_PARAMETERS, "last_updated: required in a PATCH.")
        for name in ("country_code", "party_id", "uid", "type"):
            if name in v and str(v[name]).upper() != str(getattr(token, name)).upper():
                raise OcpiError(r.INVALID_PARAMETERS, f"{name}: cannot change in a PATCH.")
        services.token_patch(token=token, data=v)
        return r.ocpi_response()
