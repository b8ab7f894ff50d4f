"""Staff slot-picker input (the HTML side). Forms parse and check shape only; the booking rules
live in bookings.services, whose errors the views add to these forms."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django import forms

from locations.models import EVSE, BookingPolicy, ConnectorStandard

from .models import CanceledReason, Driver
from .selectors import Criteria

DURATION_PRESETS_MINUTES = (15, 30, 45, 60, 90, 120, 180, 240, 360, 480)


def duration_choices(policy: BookingPolicy, *, every_step: bool = False) -> list[tuple[int, str]]:
    """Preset durations inside the policy's limits and on its step (the limits themselves too);
    with every_step, every multiple of the step between the limits (when that list stays short).
    """
    low, high, step = (
        policy.min_duration_minutes,
        policy.max_duration_minutes,
        policy.slot_step_minutes,
    )
    minutes = {low, high} | {
        m for m in DURATION_PRESETS_MINUTES if low <= m <= high and m % step == 0
    }
    if every_step and (high - low) // step <= 64:
        minutes |= set(range(low, high + 1, step))
    return [(m, format_minutes(m)) for m in sorted(minutes)]


def format_minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


class LocalDateTimeInput(forms.DateTimeInput):
    """A datetime-local picker; the view activates the location's zone, so the wall time typed
    is read in that zone (Django refuses a time that does not exist or is ambiguous there)."""

    input_type = "datetime-local"

    def __init__(self, step_minutes: int = 15, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", attrs={"step": step_minutes * 60}, **kwargs)


class TimelineFilterForm(forms.Form):
    """The day/week view's date and EVSE filters, all optional (GET parameters)."""

    CURRENT_CHOICES = [("", "AC or DC"), ("AC", "AC"), ("DC", "DC")]

    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    standard = forms.ChoiceField(
        required=False,
        label="Connector",
        choices=[("", "Any connector"), *ConnectorStandard.choices],
    )
    current = forms.ChoiceField(required=False, label="Current", choices=CURRENT_CHOICES)
    min_kw = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=1000,
        label="Minimum power (kW)",
        widget=forms.NumberInput(attrs={"step": 1, "inputmode": "numeric", "placeholder": "any"}),
    )

    def criteria(self) -> Criteria:
        data = self.cleaned_data if self.is_valid() else {}
        return Criteria(
            power_type=data.get("current") or None,
            standards=(data["standard"],) if data.get("standard") else (),
            min_power_kw=data.get("min_kw") or None,
        )

    def query(self, **override) -> str:
        """The filters as a query string (for links that keep them), with overrides."""
        from django.http import QueryDict

        values = {
            k: v for k, v in (self.cleaned_data if self.is_valid() else {}).items() if v
        } | override
        qd = QueryDict(mutable=True)
        for key, value in values.items():
            if value not in (None, ""):
                qd[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return qd.urlencode()


class EVSEChoiceField(forms.ChoiceField):
    def __init__(self, evses: Iterable[EVSE], **kwargs):
        self.evses = {e.uid: e for e in evses}
        super().__init__(
            choices=[(uid, evse_label(e)) for uid, e in self.evses.items()], label="EVSE", **kwargs
        )

    def clean(self, value):
        return self.evses[super().clean(value)]


def evse_label(evse: EVSE) -> str:
    kinds = ", ".join(
        f"{c.get_standard_display()} {c.power_kw:g} kW" for c in evse.connector_list()
    )
    return f"{evse} ({kinds})" if kinds else str(evse)


class _SlotForm(forms.Form):
    """EVSE, start and duration: where and when a booking lies."""

    duration_widget: type[forms.Widget] = forms.Select
    every_step = True  # moving and resizing go step by step

    def __init__(self, *args, evses: Iterable[EVSE], policy: BookingPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["evse"] = EVSEChoiceField(evses)
        self.fields["start"] = forms.DateTimeField(
            label="Start", widget=LocalDateTimeInput(step_minutes=policy.slot_step_minutes)
        )
        self.fields["duration"] = forms.TypedChoiceField(
            label="Duration",
            coerce=int,
            choices=duration_choices(policy, every_step=self.every_step),
            widget=self.duration_widget,
        )
        self.order_fields(["evse", "start", "duration"])

    @property
    def end(self) -> datetime:
        return self.cleaned_data["start"] + timedelta(minutes=self.cleaned_data["duration"])


class BookingForm(_SlotForm):
    duration_widget = forms.RadioSelect  # presets as one-tap buttons
    every_step = False
    driver = forms.ModelChoiceField(
        queryset=Driver.objects.all(),
        error_messages={
            "required": "Choose a driver: search by email, name or token uid.",
            "invalid_choice": "That driver no longer exists; search again.",
        },
    )
    notes = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )


class BookingChangeForm(_SlotForm):
    """Move (time and/or EVSE), extend or shorten: one booking_change call."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "chg-%s")  # shares the panel with the cancel form
        super().__init__(*args, **kwargs)

    override_reason = forms.CharField(
        required=False,
        max_length=200,
        label="Override reason",
    )


class BookingCancelForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "cxl-%s")
        super().__init__(*args, **kwargs)

    reason = forms.ChoiceField(
        choices=CanceledReason.choices, initial=CanceledReason.UNKNOWN, label="Reason"
    )
    note = forms.CharField(required=False, max_length=200, label="Note")
    override_reason = forms.CharField(
        required=False,
        max_length=200,
        label="Override reason",
    )


class LocationSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search by name or city")
