from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from .models import (
    EVSE,
    BookingPolicy,
    ChargePoint,
    Connector,
    ExceptionalPeriod,
    Location,
    PriceComponent,
    RegularHours,
    Tariff,
    TariffElement,
    Weekday,
    unlock_capability_refusal,
)
from .signals import ActiveBooking, OutsideRules, active_bookings_wanted, outside_rules_wanted

CONFIRM_OUTSIDE_RULES = "_confirm_outside_rules"
EVSE_KEPT = (
    "An EVSE that has ever been booked keeps its bookings for the records (the audit trail, "
    "the eMSPs' bookings and charge records), so it cannot be deleted. To take it out of use, "
    "set its status to Removed: it then takes no bookings, and eMSPs see it removed."
)


@dataclass(frozen=True)
class DeleteEffect:
    """What deleting some objects would do to active bookings, for the delete page."""

    # Active bookings on the EVSEs the delete would remove: the delete is refused (the
    # database's PROTECT on Booking.evse), and these are what to cancel or move first.
    held: list[ActiveBooking] = field(default_factory=list)
    # Active bookings the delete would leave outside the rules: asked, as for a save.
    outside: list[OutsideRules] = field(default_factory=list)
    already: int = 0  # bookings outside the rules before the delete
    then: str = ""  # what follows from the delete, in words
    instead: str = ""  # what to do when the database keeps the object, in words

    @property
    def confirm_value(self) -> str:
        """The bookings the operator was shown, sent back with "Delete anyway"."""
        return " ".join(sorted(answer.key for answer in self.outside))


def active_bookings_on(sender: type, evse_ids: Sequence[int]) -> list[ActiveBooking]:
    """The active bookings on these EVSEs (the bookings app's answer), by start."""
    found: dict[str, ActiveBooking] = {}
    for _, answers in active_bookings_wanted.send(sender=sender, evse_ids=list(evse_ids)):
        for answer in answers or ():
            found[answer.key] = answer
    return list(found.values())


NOT_CONFIRMED = (
    "Nothing was deleted: the delete would leave active bookings outside the rules that the "
    "page you confirmed did not list. {}"
)


def delete_selected_checked(
    modeladmin: DeleteCheck, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    """Django's "Delete selected", with what the delete would do to active bookings on its
    page; a delete that would leave bookings outside the rules happens only when the page that
    listed them is confirmed."""
    effect = modeladmin.delete_effect(list(queryset))
    if request.POST.get("post") and modeladmin.unconfirmed(request, effect):
        again = "Select them again and delete to see them."
        modeladmin.message_user(request, NOT_CONFIRMED.format(again), messages.ERROR)
        return None
    response = modeladmin.admin_site.get_action("delete_selected")(modeladmin, request, queryset)
    if isinstance(response, TemplateResponse):
        response.context_data["effect"] = effect
    return response


class DeleteCheck(admin.ModelAdmin):
    """Delete pages (one object's, and "Delete selected") that say in the operator's words what
    the delete would do to active bookings (delete_effect): the bookings on an EVSE that would
    go, listed with a link to each one's panel on the desk, where it is moved or cancelled
    (the database refuses such a delete: Booking.evse is PROTECT); or the bookings it would
    leave outside the rules, listed, and deleted only on "Delete anyway"."""

    delete_confirmation_template = "admin/locations/delete_confirmation.html"
    delete_selected_confirmation_template = "admin/locations/delete_selected_confirmation.html"

    def delete_effect(self, objs: Sequence[Model]) -> DeleteEffect:
        return DeleteEffect()

    def unconfirmed(self, request: HttpRequest, effect: DeleteEffect) -> bool:
        """Whether the delete would leave bookings outside the rules that the confirmed page
        did not list."""
        confirmed = set(request.POST.get(CONFIRM_OUTSIDE_RULES, "").split())
        return not {answer.key for answer in effect.outside} <= confirmed

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        effect = None
        if request.method == "POST":
            obj = self.get_object(request, object_id)
            if obj is not None and self.has_delete_permission(request, obj):
                effect = self.delete_effect([obj])
                if self.unconfirmed(request, effect):
                    again = "They are listed below: delete again if it is still right."
                    self.message_user(request, NOT_CONFIRMED.format(again), messages.ERROR)
                    return HttpResponseRedirect(request.get_full_path())
        response = super().delete_view(request, object_id, extra_context)
        if isinstance(response, TemplateResponse) and "object" in (response.context_data or {}):
            obj = response.context_data["object"]
            response.context_data["effect"] = effect or self.delete_effect([obj])
        return response

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (delete_selected_checked, name, description)
        return actions

    def held_by(self, evse_ids: Sequence[int]) -> list[ActiveBooking]:
        return active_bookings_on(self.model, evse_ids)


class RulesChangeCheck(DeleteCheck):
    """Asks before saving a change to a location's rules (hours, closings, a policy, an EVSE's
    bookability) that would leave active bookings outside them, naming each with a link to its
    booking panel. The change is saved inside the admin's transaction, the bookings are read
    again, and when new ones fall outside the rules the transaction is rolled back
    (transaction.set_rollback) and a confirmation page sends the same form again with "save
    anyway". What is outside the rules is the booking app's answer (signals.outside_rules_wanted):
    locations does not know bookings."""

    def rules_location(self, obj) -> Location | None:
        raise NotImplementedError

    def _outside(self, location_id: int) -> dict[str, OutsideRules]:
        location = Location.objects.with_rules().filter(pk=location_id).first()  # as stored
        found: dict[str, OutsideRules] = {}
        if location is None:  # deleted itself: no bookings there (Booking.location is PROTECT)
            return found
        for _, answers in outside_rules_wanted.send(sender=self.model, location=location):
            for answer in answers or ():
                found[answer.key] = answer
        return found

    def _tell_outside(self, request: HttpRequest, done: str, new: list[OutsideRules]) -> None:
        self.message_user(
            request,
            format_html(
                "{}. {} active booking{} now outside the rules; move or cancel "
                "{} on the staff desk: {}",
                done, len(new), "s are" if len(new) > 1 else " is",
                "them" if len(new) > 1 else "it",
                format_html_join("; ", '<a href="{}">{}</a>', ((a.url, a.text) for a in new)),
            ),
            messages.WARNING,
        )  # fmt: skip

    def _outside_by_location(self, objs: Sequence[Model]) -> dict[int, dict[str, OutsideRules]]:
        location_ids = {
            location.pk
            for obj in objs
            if (location := self.rules_location(obj)) is not None and location.pk is not None
        }
        return {pk: self._outside(pk) for pk in location_ids}

    def outside_if_deleted(self, objs: Sequence[Model]) -> tuple[list[OutsideRules], int]:
        """The active bookings that deleting `objs` would newly leave outside the rules, and how
        many were outside them already. The objects are deleted in a savepoint that is rolled
        back, and the bookings app judges the rules as they would then stand, as for a save."""
        before = self._outside_by_location(objs)
        if not before:
            return [], 0
        with transaction.atomic(using=router.db_for_write(self.model)):
            self.model._default_manager.filter(pk__in=[obj.pk for obj in objs]).delete()
            after = {pk: self._outside(pk) for pk in before}
            transaction.set_rollback(True)  # nothing of this delete is kept
        new = [
            a for pk, found in after.items() for key, a in found.items() if key not in before[pk]
        ]
        return new, sum(len(found) for found in before.values())

    def _tell_new(self, request: HttpRequest, before: dict[int, dict[str, OutsideRules]]) -> None:
        new = [
            answer
            for pk, known in before.items()
            for key, answer in self._outside(pk).items()
            if key not in known
        ]
        if new:
            self._tell_outside(request, "Deleted", new)

    def delete_model(self, request: HttpRequest, obj) -> None:
        before = self._outside_by_location([obj])
        super().delete_model(request, obj)
        self._tell_new(request, before)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        before = self._outside_by_location(list(queryset))
        super().delete_queryset(request, queryset)
        self._tell_new(request, before)

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        location = self.rules_location(obj)
        if location is not None and location.pk is not None:
            # Before anything is written: the inlines are saved after this, in save_related.
            request.outside_rules_before = (location.pk, set(self._outside(location.pk)))
        super().save_model(request, obj, form, change)

    def _ask_first(self, request: HttpRequest, obj) -> HttpResponse | None:
        before = getattr(request, "outside_rules_before", None)
        if before is None:
            return None
        location_id, known = before
        after = self._outside(location_id)
        new = [answer for key, answer in after.items() if key not in known]
        if not new:
            return None
        if request.POST.get(CONFIRM_OUTSIDE_RULES):
            self._tell_outside(request, "Saved", new)
            return None
        transaction.set_rollback(True)  # nothing of this save is kept until it is confirmed
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": "Save this change?",
            "subtitle": str(obj),
            "opts": opts,
            "object": obj,
            "bookings": new,
            "already": len(known),
            "posted": [
                (name, value)
                for name in request.POST
                if name != "csrfmiddlewaretoken"
                for value in request.POST.getlist(name)
            ],
            "confirm_name": CONFIRM_OUTSIDE_RULES,
        }
        return TemplateResponse(request, "admin/locations/confirm_outside_rules.html", context)

    def response_change(self, request: HttpRequest, obj) -> HttpResponse:
        return self._ask_first(request, obj) or super().response_change(request, obj)

    def response_add(
        self, request: HttpRequest, obj, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self._ask_first(request, obj) or super().response_add(
            request, obj, post_url_continue
        )


class RegularHoursInline(admin.TabularInline):
    model = RegularHours
    extra = 0


class ExceptionalPeriodInline(admin.TabularInline):
    model = ExceptionalPeriod
    extra = 0


class ChargePointInline(admin.TabularInline):
    model = ChargePoint
    extra = 0
    fields = ["identity", "ocpp_version", "vendor", "model", "is_connected", "last_seen"]
    readonly_fields = ["is_connected", "last_seen"]
    show_change_link = True


class LocationPolicyInline(admin.StackedInline):
    model = BookingPolicy
    fk_name = "location"
    extra = 0
    max_num = 1
    exclude = ["evse"]


@admin.register(Location)
class LocationAdmin(RulesChangeCheck):
    list_display = [
        "name", "ocpi_id", "city", "country", "time_zone", "evse_count", "publish", "last_updated",
    ]  # fmt: skip
    list_filter = ["country", "publish", "time_zone"]
    search_fields = ["name", "city", "ocpi_id", "address", "postal_code"]
    readonly_fields = ["created_at", "last_updated"]
    inlines = [LocationPolicyInline, RegularHoursInline, ExceptionalPeriodInline, ChargePointInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(evse_total=Count("charge_points__evses"))

    def rules_location(self, obj: Location) -> Location | None:
        return obj

    def delete_effect(self, objs: Sequence[Location]) -> DeleteEffect:
        evse_ids = EVSE.objects.filter(charge_point__location__in=objs).values_list("pk", flat=True)
        return DeleteEffect(
            held=self.held_by(list(evse_ids)),
            instead="A location keeps its charge points, and the records of the bookings made "
            "there, so it cannot be deleted while it has any. To take it off the eMSPs' maps, "
            "untick “Publish” instead.",
        )

    @admin.display(description="EVSEs", ordering="evse_total")
    def evse_count(self, obj: Location) -> int:
        return obj.evse_total


class EVSEInlineFormSet(forms.BaseInlineFormSet):
    """A charge point's EVSEs: capabilities checked against each EVSE's saved connectors."""

    def clean(self) -> None:
        # Before the admin's own check of a delete (in super().clean()), which names every
        # booking kept for the records in the database's words: the active ones, in the desk's.
        going = [
            form.instance.pk
            for form in self.forms
            if form.instance.pk is not None and form.cleaned_data.get("DELETE")
        ]
        held = active_bookings_on(EVSE, going) if going else []
        if held:
            raise forms.ValidationError(
                format_html(
                    "Nothing is deleted: {} active booking{} EVSEs marked for deletion. Cancel "
                    "{} first (a cancel is sent to the booking's eMSP) or move {} to another "
                    "EVSE, on the staff desk: {}",
                    len(held), " holds one of the" if len(held) == 1 else "s hold the",
                    "it" if len(held) == 1 else "each one", "it",
                    format_html_join("; ", '<a href="{}">{}</a>', ((b.url, b.text) for b in held)),
                )
            )  # fmt: skip
        super().clean()
        for form in self.forms:
            evse = form.instance
            if not form.has_changed() or evse.pk is None or form.cleaned_data.get("DELETE"):
                continue
            capabilities = form.cleaned_data.get("capabilities") or []
            formats = list(evse.connectors.values_list("format", flat=True))
            refusal = unlock_capability_refusal(capabilities, formats)
            if refusal:
                form.add_error("capabilities", refusal)


class EVSEInline(admin.StackedInline):
    model = EVSE
    formset = EVSEInlineFormSet
    extra = 0
    fields = [
        ("uid", "evse_id", "ocpp_evse_id"),
        ("status", "booking_enabled"),
        "capabilities",
        ("physical_reference", "floor_level"),
    ]
    show_change_link = True


class ChargePointForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Set a new OCPP Basic-auth password (leave empty to keep the current one).",
    )
    clear_password = forms.BooleanField(
        required=False,
        help_text="Remove the password: the csms then refuses the charger (unless "
        "CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD is on, in development).",
    )

    class Meta:
        model = ChargePoint
        fields = [
            "location", "identity", "ocpp_version", "vendor", "model", "serial_number",
            "firmware_version",
        ]  # fmt: skip

    def save(self, commit: bool = True):
        cp = super().save(commit=False)
        if self.cleaned_data.get("clear_password"):
            cp.set_password(None)
        elif self.cleaned_data.get("password"):
            cp.set_password(self.cleaned_data["password"])
        if commit:
            cp.save()
        return cp


@admin.register(ChargePoint)
class ChargePointAdmin(RulesChangeCheck):
    form = ChargePointForm
    list_display = [
        "identity", "location", "ocpp_version", "vendor", "model", "is_connected", "last_seen",
    ]  # fmt: skip
    list_filter = ["ocpp_version", "is_connected", "location__country"]
    search_fields = ["identity", "location__name", "location__city", "vendor", "model"]
    list_select_related = ["location"]
    readonly_fields = [
        "is_connected", "station_down_at", "last_seen", "last_boot", "created_at", "last_updated",
    ]  # fmt: skip
    inlines = [EVSEInline]

    def rules_location(self, obj: ChargePoint) -> Location | None:
        return obj.location if obj.location_id else None

    def delete_effect(self, objs: Sequence[ChargePoint]) -> DeleteEffect:
        evse_ids = EVSE.objects.filter(charge_point__in=objs).values_list("pk", flat=True)
        return DeleteEffect(
            held=self.held_by(list(evse_ids)),
            instead=f"A charge point's EVSEs go first, each on its own page. {EVSE_KEPT}",
        )


class ConnectorInlineFormSet(forms.BaseInlineFormSet):
    """An EVSE's connectors, checked together with the EVSE's capabilities as posted."""

    def clean(self) -> None:
        super().clean()
        formats = [
            form.cleaned_data["format"]
            for form in self.forms
            if form.cleaned_data.get("format") and not form.cleaned_data.get("DELETE")
        ]
        refusal = unlock_capability_refusal(self.instance.capabilities or [], formats)
        if refusal:
            raise forms.ValidationError(refusal)


class ConnectorInline(admin.TabularInline):
    model = Connector
    formset = ConnectorInlineFormSet
    extra = 0


class EVSEPolicyInline(admin.StackedInline):
    model = BookingPolicy
    fk_name = "evse"
    extra = 0
    max_num = 1
    exclude = ["location"]
    verbose_name = "booking policy override"


@admin.register(EVSE)
class EVSEAdmin(RulesChangeCheck):
    list_display = [
        "uid", "evse_id", "charge_point", "location_name", "status", "booking_enabled",
        "reservable",
    ]  # fmt: skip
    list_filter = ["status", "booking_enabled", "charge_point__location__country"]
    search_fields = ["uid", "evse_id", "charge_point__identity", "charge_point__location__name"]
    list_select_related = ["charge_point__location"]
    readonly_fields = ["status_updated_at", "last_updated"]
    inlines = [ConnectorInline, EVSEPolicyInline]

    @admin.display(description="Location", ordering="charge_point__location__name")
    def location_name(self, obj: EVSE) -> str:
        return obj.charge_point.location.name

    @admin.display(boolean=True)
    def reservable(self, obj: EVSE) -> bool:
        return obj.reservable

    def rules_location(self, obj: EVSE) -> Location | None:
        return obj.charge_point.location if obj.charge_point_id else None

    def delete_effect(self, objs: Sequence[EVSE]) -> DeleteEffect:
        return DeleteEffect(held=self.held_by([evse.pk for evse in objs]), instead=EVSE_KEPT)


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    list_display = ["__str__", "evse", "connector_id", "standard", "power_type", "format"]
    list_filter = ["standard", "power_type", "format"]
    search_fields = ["evse__uid", "evse__evse_id"]
    list_select_related = ["evse"]


@admin.register(BookingPolicy)
class BookingPolicyAdmin(RulesChangeCheck):
    list_display = [
        "__str__", "slot_step_minutes", "min_duration_minutes", "max_duration_minutes",
        "buffer_minutes", "horizon_days", "cancel_until_minutes", "noshow_timeout_minutes",
    ]  # fmt: skip
    list_select_related = ["location", "evse"]
    search_fields = ["location__name", "evse__uid"]

    def rules_location(self, obj: BookingPolicy) -> Location | None:
        if obj.location_id:
            return obj.location
        return obj.evse.charge_point.location if obj.evse_id else None

    def delete_effect(self, objs: Sequence[BookingPolicy]) -> DeleteEffect:
        outside, already = self.outside_if_deleted(objs)
        going = {policy.pk for policy in objs}
        then = []
        for policy in objs:
            location = self.rules_location(policy)
            if policy.evse_id:
                own = BookingPolicy.objects.filter(location=location).exclude(pk__in=going).exists()
                rules = f"the booking policy of {location.name}" if own else "the default rules"
                then.append(f"EVSE {policy.evse} then follows {rules}.")
            else:
                then.append(
                    f"The EVSEs of {location.name} without a policy of their own then follow "
                    "the default rules."
                )
        return DeleteEffect(outside=outside, already=already, then=" ".join(then))


class TariffElementForm(forms.ModelForm):
    day_of_week = forms.MultipleChoiceField(
        choices=Weekday.choices, widget=forms.CheckboxSelectMultiple, required=False,
        help_text="None ticked: every day.",
    )  # fmt: skip

    class Meta:
        model = TariffElement
        fields = ["tariff", "position", "reservation", "start_time", "end_time", "start_date",
                  "end_date", "day_of_week", "min_kwh", "max_kwh", "min_current", "max_current",
                  "min_power", "max_power", "min_duration", "max_duration"]  # fmt: skip


class EVSEChoices(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: EVSE) -> str:
        return f"{obj.charge_point.location.name} · {obj} ({obj.uid})"


class TariffElementInline(admin.TabularInline):
    model = TariffElement
    form = TariffElementForm
    extra = 0
    fields = ["position", "reservation", "start_time", "end_time", "day_of_week", "min_kwh",
              "max_kwh", "min_duration", "max_duration"]  # fmt: skip
    show_change_link = True  # its price components are edited on the element's own page


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin):
    list_display = ["ocpi_id", "name", "currency", "tax_included", "start_date_time",
                    "end_date_time", "last_updated"]  # fmt: skip
    search_fields = ["ocpi_id", "name"]
    filter_horizontal = ["locations", "evses"]
    inlines = [TariffElementInline]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "evses":  # "1A" alone is ambiguous across locations
            kwargs["queryset"] = EVSE.objects.select_related("charge_point__location").order_by(
                "charge_point__location__name", "charge_point__identity", "ocpp_evse_id"
            )
            kwargs["form_class"] = EVSEChoices
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    fieldsets = [
        (None, {"fields": ["ocpi_id", "name", "currency", "type"]}),
        ("Taxes", {"fields": ["tax_included", "tax_name", "tax_percentage"]}),
        ("Applies to", {
            "fields": ["locations", "evses"],
            "description": "An EVSE's own tariffs replace those of its location.",
        }),
        ("Limits and validity", {"fields": ["min_price", "max_price", "start_date_time",
                                            "end_date_time"]}),
        ("For drivers", {"fields": ["alt_text", "alt_text_language", "alt_url"]}),
    ]  # fmt: skip


class PriceComponentInline(admin.TabularInline):
    model = PriceComponent
    extra = 1


@admin.register(TariffElement)
class TariffElementAdmin(admin.ModelAdmin):
    form = TariffElementForm
    list_display = ["__str__", "tariff", "position", "reservation"]
    list_select_related = ["tariff"]
    inlines = [PriceComponentInline]
