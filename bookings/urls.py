from django.urls import path

from . import views

app_name = "bookings"

urlpatterns = [
    path("", views.location_list, name="location_list"),
    path("search/", views.search, name="search"),
    path("locations/<int:location_id>/", views.location_day, name="location_day"),
    path("locations/<int:location_id>/week/", views.location_week, name="location_week"),
    path(
        "locations/<int:location_id>/insights/",
        views.location_insights_view,
        name="location_insights",
    ),
    path("locations/<int:location_id>/arrivals/", views.location_arrivals, name="arrivals"),
    path("locations/<int:location_id>/attention/", views.location_attention, name="attention"),
    path(
        "locations/<int:location_id>/attention/count/",
        views.location_attention_count,
        name="attention_count",
    ),
    path("locations/<int:location_id>/day.csv", views.location_day_csv, name="day_csv"),
    path("locations/<int:location_id>/bookings/new/", views.booking_new, name="booking_new"),
    path(
        "locations/<int:location_id>/out-of-order/",
        views.charger_out_of_order_view,
        name="out_of_order",
    ),
    path("locations/<int:location_id>/quick-book/", views.quick_book, name="quick_book"),
    path("bookings/<uuid:uid>/", views.booking_detail, name="booking_detail"),
    path("bookings/<uuid:uid>/change/", views.booking_change_view, name="booking_change"),
    path("bookings/<uuid:uid>/cancel/", views.booking_cancel_view, name="booking_cancel"),
    path("bookings/<uuid:uid>/rebook/", views.booking_rebook_view, name="booking_rebook"),
    path("bookings/<uuid:uid>/check-in/", views.booking_check_in_view, name="booking_check_in"),
    path("bookings/<uuid:uid>/no-show/", views.booking_no_show_view, name="booking_no_show"),
]
