"""The operator REST API under /api/v1/, its token endpoint, schema and docs page."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from oauth2_provider.views import TokenView

from . import apis
from .schema import API_SCHEMA_SETTINGS

app_name = "api"

V1 = "v1/"
urlpatterns = [
    path(f"{V1}oauth/token", TokenView.as_view(), name="token"),
    path(f"{V1}locations", apis.LocationListApi.as_view(), name="locations"),
    path(f"{V1}locations/<str:location_id>", apis.LocationDetailApi.as_view(), name="location"),
    path(f"{V1}locations/<str:location_id>/availability", apis.AvailabilityApi.as_view(),
         name="availability"),
    path(f"{V1}charge-points", apis.ChargePointListApi.as_view(), name="charge_points"),
    path(f"{V1}charge-points/<str:charge_point_id>", apis.ChargePointDetailApi.as_view(),
         name="charge_point"),
    path(f"{V1}charge-points/<str:charge_point_id>/evses", apis.ChargePointEVSEListApi.as_view(),
         name="charge_point_evses"),
    path(f"{V1}evses", apis.EVSEListApi.as_view(), name="evses"),
    path(f"{V1}evses/<str:evse_id>", apis.EVSEDetailApi.as_view(), name="evse"),
    path(f"{V1}booking-requests", apis.BookingRequestListCreateApi.as_view(),
         name="booking_requests"),
    path(f"{V1}booking-requests/<int:request_id>", apis.BookingRequestDetailApi.as_view(),
         name="booking_request"),
    path(f"{V1}bookings", apis.BookingListApi.as_view(), name="bookings"),
    path(f"{V1}bookings/<str:booking_id>", apis.BookingDetailApi.as_view(), name="booking"),
    path(f"{V1}drivers", apis.DriverListCreateApi.as_view(), name="drivers"),
    path(f"{V1}drivers/<int:driver_id>", apis.DriverDetailApi.as_view(), name="driver"),
    path(f"{V1}reservations/chargers/<str:charger_id>/connectors/<int:connector_id>",
         apis.ReservationCreateApi.as_view(), name="reservation_create"),
    path(f"{V1}reservations/<str:reservation_id>", apis.ReservationDeleteApi.as_view(),
         name="reservation"),
    path(f"{V1}webhooks", apis.WebhookListCreateApi.as_view(), name="webhooks"),
    path(f"{V1}webhooks/<int:webhook_id>", apis.WebhookDetailApi.as_view(), name="webhook"),
    path(f"{V1}schema/", SpectacularAPIView.as_view(custom_settings=API_SCHEMA_SETTINGS),
         name="schema"),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"^.*$", apis.NotFoundApi.as_view(), name="not_found"),
]  # fmt: skip
