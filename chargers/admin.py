"""Read-only views of what the csms did: reservations placed at chargers, sessions, CDRs."""

from django.contrib import admin

from .models import ChargeDetailRecord, ChargingSession, MeterReading, RemoteCommand, Reservation


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "booking_id", "charge_point", "evse", "status", "is_current", "attempts",
        "expires_at", "next_attempt_at", "updated_at",
    ]  # fmt: skip
    list_filter = ["status", "is_current"]
    search_fields = ["=booking_id", "=id", "charge_point__identity", "evse__uid", "id_tag"]
    list_select_related = ["charge_point", "evse"]


class MeterReadingInline(admin.TabularInline):
    model = MeterReading
    fields = ["at", "energy_wh", "power_w", "current_a"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0  # the charger's readings, as they came

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChargingSession)
class ChargingSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "transaction_id", "charge_point", "evse", "id_tag", "booking_id", "started_at",
        "stopped_at", "energy_kwh",
    ]  # fmt: skip
    inlines = [MeterReadingInline]

    @admin.display(description="energy (kWh)")
    def energy_kwh(self, session: ChargingSession) -> str:
        energy = session.energy_wh
        return "–" if energy is None else f"{energy / 1000:.3f}"

    list_filter = ["charge_point__location"]
    search_fields = ["transaction_id", "id_tag", "charge_point__identity", "=booking_id"]
    list_select_related = ["charge_point", "evse"]


@admin.register(ChargeDetailRecord)
class ChargeDetailRecordAdmin(ReadOnlyAdmin):
    """Issued records, as eMSPs receive them (OCPI CDRs); never edited."""

    list_display = [
        "id", "kind", "location", "evse", "booking_id", "id_tag", "started_at", "ended_at",
        "energy_kwh", "before_taxes", "after_taxes", "currency", "created_at",
    ]  # fmt: skip
    list_filter = ["kind", "location", "currency"]
    search_fields = ["=id", "=booking_id", "id_tag", "authorization_reference", "tariff_id"]
    list_select_related = ["location", "evse"]
    date_hierarchy = "created_at"

    @admin.display(description="energy (kWh)")
    def energy_kwh(self, cdr: ChargeDetailRecord) -> str:
        return f"{cdr.energy_wh / 1000:.3f}"


@admin.register(RemoteCommand)
class RemoteCommandAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "action", "charge_point", "evse", "id_tag", "reply", "created_at", "answered_at",
    ]  # fmt: skip
    list_filter = ["action", "reply"]
    search_fields = ["=id", "charge_point__identity", "evse__uid", "id_tag", "transaction_id"]
    list_select_related = ["charge_point", "evse"]
