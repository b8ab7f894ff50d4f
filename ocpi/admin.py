from django.contrib import admin, messages

from . import push
from .models import Command, Party, Push, Token


@admin.register(Party)
class PartyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "role", "state", "version", "registered_at", "legacy_raw_token",
                    "rate_limit_per_minute"]  # fmt: skip
    list_filter = ["state", "role"]
    search_fields = ["country_code", "party_id", "name"]
    readonly_fields = ["state", "versions_url", "version", "endpoints", "roles", "registered_at",
                       "created_at", "last_updated", "push_lease_until"]  # fmt: skip
    fields = ["country_code", "party_id", "role", "name", "legacy_raw_token", "booking_module_id",
              "booking_module_version",
              "rate_limit_per_minute", *readonly_fields]  # fmt: skip
    # Tokens are shown nowhere: A and C exist only as digests, B only for outbound calls.


@admin.register(Push)
class PushAdmin(admin.ModelAdmin):
    list_display = ["id", "party", "kind", "booking", "evse", "state", "attempts",
                    "next_attempt_at", "last_status", "created_at", "sent_at"]  # fmt: skip
    list_filter = ["state", "kind", "party"]
    search_fields = ["last_error", "booking__uid"]
    list_select_related = ["party", "booking", "evse"]
    readonly_fields = [f.name for f in Push._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry the selected pushes now")
    def retry_now(self, request, queryset):
        count = push.retry_now(push_ids=list(queryset.values_list("pk", flat=True)))
        from .signals import nudge

        nudge()
        self.message_user(request, f"{count} push(es) queued again.", messages.SUCCESS)


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["uid", "type", "country_code", "party_id", "contract_id", "valid",
                    "whitelist", "last_updated"]  # fmt: skip
    list_filter = ["valid", "type", "whitelist"]
    search_fields = ["uid", "contract_id", "visual_number"]
    readonly_fields = [f.name for f in Token._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # eMSPs own their tokens; they arrive over OCPI


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = ["id", "party", "type", "reservation_id", "booking", "result", "result_sent_at",
                    "attempts", "received_at"]  # fmt: skip
    list_filter = ["type", "result"]
    search_fields = ["reservation_id"]
    readonly_fields = [f.name for f in Command._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
