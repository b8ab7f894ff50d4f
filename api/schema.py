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


TOKEN_PATH = {
    "post": {
        "operationId": "oauth_token",
        "summary": "Get an access token (OAuth2 client credentials)",
        "description": (
            "Send the client's id and secret (HTTP Basic, or as form fields) with "
            "`grant_type=client_credentials` and, optionally, the scopes wanted (space separated; "
            "default: all the client has). Use the token as `Authorization: Bearer <token>` "
            "until `expires_in` seconds have passed, then ask again."
        ),
        "tags": ["oauth"],
        "security": [{"basicAuth": []}, {}],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["grant_type"],
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "scope": {"type": "string", "example": "read book"},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "A Bearer token",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "access_token": {"type": "string"},
                                "token_type": {"type": "string", "example": "Bearer"},
                                "expires_in": {"type": "integer"},
                                "scope": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "400": {"description": "Bad request (RFC 6749 error body, e.g. invalid_scope)"},
            "401": {"description": "Unknown client or wrong secret (invalid_client)"},
        },
    }
}


def add_token_endpoint(result: dict, generator, request, public) -> dict:
    """The OAuth2 token endpoint (django-oauth-toolkit's view, not a DRF one) in the paths."""
    result.setdefault("paths", {})["/api/v1/oauth/token"] = TOKEN_PATH
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault("basicAuth", {"type": "http", "scheme": "basic"})
    return result


API_SCHEMA_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "api.schema.add_token_endpoint",
]
