"""OCPI URLs: /ocpi/versions, /ocpi/2.3.0/ (details, credentials), /ocpi/cpo/2.3.0/<module>."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from . import responses as r
from .base import OcpiApi
from .exceptions import OcpiError
from .modules.bookings import apis as bookings
from .modules.cdrs import apis as cdrs
from .modules.commands import apis as commands
from .modules.credentials import apis as credentials
from .modules.locations import apis as locations
from .modules.sessions import apis as sessions
from .modules.tariffs import apis as tariffs
from .modules.tokens import apis as tokens
from .modules.versions import apis as versions

app_name = "ocpi"
# This document describes OCPI only (the operator API has its own at /api/v1/schema/).
OCPI_SCHEMA_SETTINGS = {"PREPROCESSING_HOOKS": ["ocpi.urls.ocpi_paths_only"]}


def ocpi_paths_only(endpoints: list, **kwargs) -> list:
    return [e for e in endpoints if e[0].startswith("/ocpi/")]


class NotFoundApi(OcpiApi):
    """Any other path under /ocpi/: an OCPI 404 (after auth), never Django's HTML page."""

    token_a_allowed = True
    functional_module = False
    schema = None

    def _missing(self, request, *args, **kwargs):
        raise OcpiError(r.CLIENT_ERROR, "No such OCPI endpoint.", http_status=404)

    get = post = put = patch = delete = _missing


CPO = "cpo/2.3.0/"
urlpatterns = [
    path("versions", versions.VersionListApi.as_view(), name="versions"),
    path("2.3.0/", versions.VersionDetailsApi.as_view(), name="version_details"),
    path("2.3.0/credentials", credentials.CredentialsApi.as_view(), name="credentials"),
    path(f"{CPO}locations", locations.LocationListApi.as_view(), name="locations"),
    path(f"{CPO}locations/<str:location_id>", locations.LocationDetailApi.as_view(),
         name="location"),
    path(f"{CPO}locations/<str:location_id>/<str:evse_uid>", locations.EVSEDetailApi.as_view(),
         name="evse"),
    path(f"{CPO}locations/<str:location_id>/<str:evse_uid>/<str:connector_id>",
         locations.ConnectorDetailApi.as_view(), name="connector"),
    path(f"{CPO}sessions", sessions.SessionListApi.as_view(), name="sessions"),
    path(f"{CPO}tariffs", tariffs.TariffListApi.as_view(), name="tariffs"),
    path(f"{CPO}cdrs", cdrs.CdrListApi.as_view(), name="cdrs"),
    path(f"{CPO}tokens", NotFoundApi.as_view(), name="tokens_base"),
    path(f"{CPO}tokens/<str:country_code>/<str:party_id>/<str:token_uid>",
         tokens.TokenApi.as_view(), name="token"),
    path(f"{CPO}commands", NotFoundApi.as_view(), name="commands_base"),
    path(f"{CPO}commands/<str:command>", commands.CommandApi.as_view(), name="command"),
    path(f"{CPO}bookings", bookings.BookingListCreateApi.as_view(), name="bookings"),
    path(f"{CPO}bookings/booking_locations", bookings.BookingLocationListApi.as_view(),
         name="booking_locations"),
    path(f"{CPO}bookings/booking_locations/<str:booking_location_id>",
         bookings.BookingLocationDetailApi.as_view(), name="booking_location"),
    path(f"{CPO}bookings/booking_locations/<str:booking_location_id>/<str:calendar_id>",
         bookings.CalendarDetailApi.as_view(), name="calendar"),
    path(f"{CPO}bookings/<str:booking_id>", bookings.BookingDetailApi.as_view(), name="booking"),
    path("schema", SpectacularAPIView.as_view(custom_settings=OCPI_SCHEMA_SETTINGS),
         name="schema"),
    re_path(r"^.*$", NotFoundApi.as_view(), name="not_found"),
]  # fmt: skip
