"""Each OpenAPI document describes one interface: these preprocessing hooks keep its paths."""

from __future__ import annotations

from api.models import BookingRequest
from bookings.models import Status, TokenType
from locations.models import ConnectorStandard, EVSEStatus


def api_paths_only(endpoints: list, **kwargs) -> list:
    return [e for e in endpoints if e[0].startswith("/api/v1/")]


API_SCHEMA_SETTINGS = {
    "TITLE": "Chargebook operator API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Locations, availability, booking requests, bookings, drivers and connector "
        "reservations for fleets, depot schedulers, partner and driver apps. OAuth2 client "
        "credentials: POST /api/v1/oauth/token, then `Authorization: Bearer <token>`. "
        "JSON in camelCase; every list is cursor-paginated (`per_page` 1-100, `links.next`)."
    ),
    "PREPROCESSING_HOOKS": ["api.schema.api_paths_only"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # One name per choice set used by several fields.
    "ENUM_NAME_OVERRIDES": {
        "BookingStatusEnum": [v.lower() for v in Status.values],
        "EVSEStatusEnum": [v.lower() for v in EVSEStatus.values],
        "RequestStatusEnum": BookingRequest.Status.values,
        "RequestTypeEnum": BookingRequest.Type.values,
        "ConnectorTypeEnum": ConnectorStandard.values,
        "TokenTypeEnum": TokenType.values,
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "OAUTH2_FLOWS": ["clientCredentials"],
    "OAUTH2_TOKEN_URL": "/api/v1/oauth/token",
    "OAUTH2_SCOPES": {
        "read": "Read locations, availability, own requests, bookings and drivers",
        "book": "Send booking requests and connector reservations",
        "drivers": "Create drivers and see every driver",
        "webhooks": "Manage webhook subscriptions",
    },
}
