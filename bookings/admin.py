from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from .availability import zone_label
from .exceptions import BookingError
from .models import (
    Booking,
    BookingRequest,
    BookingToken,
    BookingTransition,
    CanceledReason,
    Driver,
    DriverToken,
)
from .services import Actor, booking_cancel


def local_time(moment: datetime, tz: ZoneInfo) -> str:
    """A moment on the location's clock with the clock named: "2027-10-31 02:30 (CET, UTC+1)"."""
    local = moment.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} ({zone_label(local, tz)})"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TransitionInline(ReadOnlyInline):
    model = BookingTransition
    fields = ["at", "event", "from_status", "to_status", "actor_type", "actor_label", "code",
              "reason"]  # fmt: skip
    ordering = ["at", "id"]
    verbose_name = "audit entry"
    verbose_name_plural = "audit trail"


class RequestInline(ReadOnlyInline):
    model = BookingRequest
    fields = ["received_at", "request_status", "reason_code", "reason", "payload"]
    verbose_name_plural = "OCPI booking requests"


class TokenInline(ReadOnlyInline):
    model = BookingToken
    fields = ["type", "uid", "contract_id", "country_code", "party_id"]


class CancelForm(forms.Form):
    reason = forms.ChoiceField(choices=CanceledReason.choices, initial=CanceledReason.UNKNOWN)
    note = forms.CharField(required=False, max_length=200, help_text="Recorded in the audit trail.")
    override_reason = forms.CharField(
        required=False,
        max_length=200,
        help_text="Needed only past the terms' cancel deadline: why the deadline is overridden.",
    )


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = [
        "short_id", "start", "end", "location", "evse", "status", "channel", "who",
        "charger_reservation", "needs_attention",
    ]  # fmt: skip
    list_filter = ["status", "channel", "charger_reservation", "needs_attention", "location"]
    date_hierarchy = "created_at"
    search_fields = [
        "uid", "request_id", "authorization_reference", "tokens__uid", "driver__name",
        "driver__email", "emsp_party_id", "evse__uid",
    ]  # fmt: skip
    list_select_related = ["location", "evse", "driver", "created_by"]
    inlines = [TokenInline, RequestInline, TransitionInline]
    actions = ["cancel_bookings"]
    readonly_fields = [
        "uid", "location", "evse", "connector", "local_period", "period", "blocked_period",
        "status", "channel",
        "created_by", "driver", "emsp_country_code", "emsp_party_id", "request_id",
        "authorization_reference", "power_required_kw", "terms", "access_methods",
        "canceled_reason", "canceled_by_role", "canceled_by", "canceled_at",
        "charger_reservation", "charger_reservation_detail", "charger_reservation_updated_at",
        "fulfilled_at", "created_at", "last_updated",
    ]  # fmt: skip
    fields = [*readonly_fields[:9], "notes", *readonly_fields[9:], "needs_attention"]

    def has_add_permission(self, request) -> bool:
        return False  # bookings are made through the staff UI or OCPI, where the rules run

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # cancel instead: the audit trail must stay whole

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False

    @admin.display(description="booking", ordering="uid")
    def short_id(self, obj: Booking) -> str:
        return str(obj.uid)[:8]

    @admin.display(ordering="period")
    def start(self, obj: Booking) -> str:
        return local_time(obj.period.lower, obj.location.zone)

    @admin.display()
    def end(self, obj: Booking) -> str:
        return local_time(obj.period.upper, obj.location.zone)

    @admin.display(description="period (location time)")
    def local_period(self, obj: Booking) -> str:
        tz = obj.location.zone
        return f"{local_time(obj.period.lower, tz)} – {local_time(obj.period.upper, tz)}"

    @admin.display(description="booked by")
    def who(self, obj: Booking) -> str:
        if obj.emsp_party_id:
            return f"{obj.emsp_country_code}*{obj.emsp_party_id}"
        return str(obj.driver or obj.created_by or "")

    @admin.action(description="Cancel selected bookings (with a reason)")
    def cancel_bookings(self, request, queryset):
        if "apply" in request.POST:
            form = CancelForm(request.POST)
            if form.is_valid():
                done, refused = 0, []
                actor = Actor.staff(request.user)
                for booking in queryset:
                    try:
                        booking_cancel(
                            booking=booking,
                            actor=actor,
                            reason=form.cleaned_data["reason"],
                            note=form.cleaned_data["note"],
                            override_reason=form.cleaned_data["override_reason"],
                        )
                        done += 1
                    except BookingError as error:
                        refused.append(f"{str(booking.uid)[:8]}: {error.message}")
                if done:
                    self.message_user(request, f"Canceled {done} booking(s).", messages.SUCCESS)
                for line in refused:
                    self.message_user(request, line, messages.ERROR)
                return None
        else:
            form = CancelForm()
        return TemplateResponse(
            request,
            "admin/bookings/cancel_bookings.html",
            {
                **self.admin_site.each_context(request),
                "title": "Cancel bookings",
                "form": form,
                "bookings": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


class DriverTokenInline(admin.TabularInline):
    model = DriverToken
    extra = 0


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "phone", "license_plate"]
    search_fields = ["name", "email", "phone", "license_plate", "tokens__uid"]
    inlines = [DriverTokenInline]


@admin.register(BookingTransition)
class BookingTransitionAdmin(admin.ModelAdmin):
    list_display = ["at", "booking", "event", "from_status", "to_status", "actor_type",
                    "actor_label", "code"]  # fmt: skip
    list_filter = ["event", "to_status", "actor_type"]
    date_hierarchy = "at"
    search_fields = ["booking__uid", "actor_label", "code"]
    list_select_related = ["booking"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
