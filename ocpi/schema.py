"""OpenAPI helpers: every documented response is the OCPI envelope around a data shape."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers


def envelope_of(name: str, data=None, *, many: bool = False):
    fields = {
        "status_code": serializers.IntegerField(),
        "status_message": serializers.CharField(required=False),
        "timestamp": serializers.DateTimeField(),
    }
    if data is not None:
        fields["data"] = data(many=many, required=False) if isinstance(data, type) else data
    return inline_serializer(name=name, fields=fields)


ERROR = envelope_of("OcpiError")

PAGE_PARAMETERS = [
    OpenApiParameter("date_from", str, description="last_updated >= (inclusive), DateTime"),
    OpenApiParameter("date_to", str, description="last_updated < (exclusive), DateTime"),
    OpenApiParameter("offset", int),
    OpenApiParameter("limit", int),
]

AUTH_ERRORS = {400: ERROR, 401: ERROR, 404: ERROR, 405: ERROR}


class OcpiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "ocpi.authentication.TokenAuthentication"
    name = "ocpiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Token <base64 of the credentials token>",
        }


def ocpi_paths_only(endpoints: list, **kwargs) -> list:
    """Preprocessing hook (SPECTACULAR_SETTINGS): the default document describes OCPI only; the
    operator API has its own (api.schema)."""
    return [e for e in endpoints if e[0].startswith("/ocpi/")]
