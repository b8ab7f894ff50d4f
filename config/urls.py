from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ocpi/", include("ocpi.urls")),
    # The staff slot picker takes "/" (issue 6); until then the admin is the front door.
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
