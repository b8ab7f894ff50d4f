from django.contrib import admin

from config.celery import enqueue_on_commit

from .models import BookingRequest, Client, WebhookDelivery, WebhookSubscription
from .tasks import webhook_deliver_task
from .webhooks import new_secret, resend


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    """An API client: pick its OAuth2 application (Django OAuth Toolkit > Applications, grant
    "client credentials", copy the secret before saving), its scopes and location limits."""

    list_display = ["__str__", "client_id", "scopes", "rate_limit_per_minute", "created_at"]
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


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["id", "client", "url", "events", "active", "created_at"]
    list_filter = ["active", "client"]
    readonly_fields = ["secret", "created_at"]

    def save_model(self, request, obj, form, change):
        if not obj.secret:
            obj.secret = new_secret()
        super().save_model(request, obj, form, change)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "subscription", "event", "booking", "state", "attempts", "last_status",
                    "next_attempt_at", "sent_at"]  # fmt: skip
    list_filter = ["state", "event", "subscription__client"]
    search_fields = ["booking__uid"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Send again")
    def send_again(self, request, queryset) -> None:
        count = resend(delivery_ids=list(queryset.values_list("pk", flat=True)))
        for subscription_id in set(queryset.values_list("subscription_id", flat=True)):
            enqueue_on_commit(webhook_deliver_task, subscription_id=subscription_id)
        self.message_user(request, f"{count} deliveries queued again.")
