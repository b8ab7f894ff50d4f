"""The base of every OCPI APIView: token auth, a rate limit per party, the one exception
handler, and the transport headers (X-Request-ID / X-Correlation-ID echoed, routing headers
on functional modules)."""

from __future__ import annotations

import uuid

from django.conf import settings
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from . import responses as r
from .authentication import PartyPermission, TokenAuthentication
from .exceptions import OcpiError, ocpi_exception_handler
from .models import Party
from .parsers import OcpiJSONParser
from .renderers import OcpiJSONRenderer
from .throttling import PartyThrottle


class OcpiNegotiation(DefaultContentNegotiation):
    """OCPI answers in JSON whatever the Accept header says: the one renderer, without DRF's
    media type matching on every request."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class OcpiApi(APIView):
    renderer_classes = [OcpiJSONRenderer]
    parser_classes = [OcpiJSONParser]
    content_negotiation_class = OcpiNegotiation
    authentication_classes = [TokenAuthentication]
    permission_classes = [PartyPermission]
    throttle_classes = [PartyThrottle]
    token_a_allowed = False
    functional_module = True  # routing headers apply to functional modules only (digest 1.9)

    def get_exception_handler(self):
        return ocpi_exception_handler

    @property
    def party(self) -> Party:
        return self.request.user

    def shape(self, kind: str, obj: dict) -> dict:
        """A Bookings object in this party's module version (1.0 or 1.1)."""
        from .modules.bookings.versions import for_party

        return for_party(self.party.booking_module_version, kind, obj)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for name, value in kwargs.items():
            # URL ids are CiString(36): printable ASCII (a NUL would even break the query).
            if len(value) > 36 or not all(" " <= ch <= "~" for ch in value):
                raise OcpiError(
                    r.INVALID_PARAMETERS, f"{name}: not a CiString(36).", http_status=400
                )
        if b"\\u0000" in request.body:
            raise OcpiError(r.INVALID_PARAMETERS, "body: NUL characters are not allowed.")

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        meta = request.META
        response["X-Request-ID"] = meta.get("HTTP_X_REQUEST_ID") or str(uuid.uuid4())
        response["X-Correlation-ID"] = meta.get("HTTP_X_CORRELATION_ID") or str(uuid.uuid4())
        if self.functional_module:
            response["OCPI-from-country-code"] = settings.OCPI_COUNTRY_CODE
            response["OCPI-from-party-id"] = settings.OCPI_PARTY_ID
            party = getattr(request, "ocpi_party", None)  # set by TokenAuthentication
            if isinstance(party, Party):
                response["OCPI-to-country-code"] = party.country_code
                response["OCPI-to-party-id"] = party.party_id
        return response
