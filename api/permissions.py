"""Access to API views: a valid Bearer token whose scopes include the one the view asks for
the HTTP method (view.scopes, e.g. {"GET": "read", "POST": "book"}).

A TokenHasScope of the oauth toolkit, so that drf-spectacular documents each operation's scope.
"""

from __future__ import annotations

from oauth2_provider.contrib.rest_framework import TokenHasScope
from oauth2_provider.models import AccessToken
from rest_framework.exceptions import PermissionDenied


def required_scope(view, method: str) -> str:
    scopes = view.scopes
    return scopes.get(method) or scopes.get("GET", "read")


class HasScope(TokenHasScope):
    def get_scopes(self, request, view) -> list[str]:
        return [required_scope(view, request.method)]

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, AccessToken):
            return False  # DRF answers 401: no (valid) Bearer token
        scopes = self.get_scopes(request, view)
        if not token.is_valid(scopes):
            raise PermissionDenied(f"This needs the {scopes[0]!r} scope, which this token lacks.")
        return True
