"""Access to API views: a valid Bearer token whose scopes include the one the view asks for
the HTTP method (view.scopes, e.g. {"GET": "read", "POST": "book"})."""

from __future__ import annotations

from oauth2_provider.models import AccessToken
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission


def required_scope(view, method: str) -> str:
    scopes = view.scopes
    return scopes.get(method) or scopes.get("GET", "read")


class HasScope(BasePermission):
    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, AccessToken):
            return False  # DRF answers 401: no (valid) Bearer token
        scope = required_scope(view, request.method)
        if not token.allow_scopes([scope]):
            raise PermissionDenied(f"This needs the {scope!r} scope, which this token lacks.")
        return True
