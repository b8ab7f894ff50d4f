from django.contrib import admin

from .models import BookingRequest, Client


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    """An API client: pick its OAuth2 application (Django OAuth Toolkit > Applications, grant
    "client credentials", copy the secret before saving), its scopes and location limits."""

    list_display = ["__str__", "client_id", "scopes", "created_at"]
    search_fields = ["application__name", "application__client_id"]
    filter_horizontal = ["locations"]
    raw_id_fields = ["application"]

    @admin.display(description="client id")
    def client_id(self, obj: Client) -> str:
        return obj.application.client_id


@admin.register(BookingRequest)
class BookingRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "client", "type", "status", "external_id", "booking", "reason_code",
                    "created_at"]  # fmt: skip
    list_filter = ["type", "status", "client"]
    search_fields = ["external_id", "booking__uid"]
    readonly_fields = [f.name for f in BookingRequest._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
