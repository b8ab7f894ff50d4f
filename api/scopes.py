"""The oauth toolkit's scopes back-end: a client may ask for, and gets by default, the scopes of
its api.Client row (OAUTH2_PROVIDER["SCOPES_BACKEND_CLASS"])."""

from __future__ import annotations

from oauth2_provider.scopes import SettingsScopes

from .models import Client


def _client_scopes(application) -> list[str]:
    if application is None:
        return []
    try:
        return list(Client.objects.get(application=application).scopes)
    except Client.DoesNotExist:
        return []


class ClientScopes(SettingsScopes):
    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return _client_scopes(application)

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return _client_scopes(application)
