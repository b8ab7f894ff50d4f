"""`Authorization: Token <base64(token)>` credentials auth (OCPI 2.3.0 transport, digest 1.1).

The decoded token is stripped of trailing whitespace because the spec's own examples encode a
trailing newline; a party flagged `legacy_raw_token` may also send the token without Base64.
Token A opens only the versions and credentials modules.
"""

from __future__ import annotations

import base64
import binascii

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from .models import Party, token_digest

TOKEN_A = "A"
TOKEN_C = "C"


def _decode(credential: str) -> str | None:
    try:
        raw = base64.b64decode(credential.encode("ascii"), validate=True)
        text = raw.decode("ascii").rstrip()
    except (binascii.Error, UnicodeError, ValueError):
        return None
    if not text or any(not ("!" <= ch <= "~") for ch in text):
        return None
    return text


def _party_with_digest(digest: str) -> Party | None:
    # Every OCPI request runs this first: one explicit statement through Manager.raw(), which
    # builds the Party without compiling an ORM query
    # (docs/adr/0003-prepared-statements-and-hot-reads.md).
    found = Party.objects.raw(
        "SELECT * FROM ocpi_party WHERE (token_a_digest = %s OR token_c_digest = %s)"
        " AND state <> %s",
        [digest, digest, Party.State.UNREGISTERED],
    )
    return next(iter(found), None)


def _lookup(token: str) -> tuple[Party, str] | None:
    digest = token_digest(token)
    party = _party_with_digest(digest)
    if party is None:
        return None
    return party, (TOKEN_C if party.token_c_digest == digest else TOKEN_A)


def party_for_header(header: str) -> tuple[Party, str] | None:
    """The party and which of its tokens (A or C) the Authorization header carries."""
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "token" or not credential.strip():
        return None
    credential = credential.strip()
    decoded = _decode(credential)
    if decoded is not None:
        found = _lookup(decoded)
        if found is not None:
            return found
    found = _lookup(credential)
    if found is not None and found[0].legacy_raw_token:
        return found
    return None


def presented_token(header: str) -> str:
    """The credentials token as the caller meant it (decoded unless sent raw)."""
    credential = header.strip().partition(" ")[2].strip()
    decoded = _decode(credential)
    if decoded is not None and _lookup(decoded) is not None:
        return decoded
    return credential


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise exceptions.NotAuthenticated("Missing Authorization header (Token ...).")
        found = party_for_header(header)
        if found is None:
            raise exceptions.AuthenticationFailed("Unknown or invalid credentials token.")
        request.ocpi_party = found[0]  # for the routing headers of every answer (ocpi.base)
        return found

    def authenticate_header(self, request) -> str:
        return "Token"


class PartyPermission(BasePermission):
    """A known token; token A only where the view allows it (versions, credentials)."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, Party):
            raise exceptions.NotAuthenticated("Missing Authorization header (Token ...).")
        if request.auth == TOKEN_A and not getattr(view, "token_a_allowed", False):
            raise exceptions.AuthenticationFailed(
                "Token A only opens versions and credentials; register first."
            )
        return True
