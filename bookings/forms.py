"""Staff slot-picker input (the HTML side). Forms parse and check shape only; the booking rules
live in bookings.services, whose errors the views add to these forms."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.utils import timezone

from locations.models import EVSE, BookingPolicy, ConnectorStandard

from .availability import FIRST_DAY, LAST_DAY, wall_instants, zone_label
from .models import CanceledReason, Driver
from .selectors import Criteria
from .services import WalkIn

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


DAY_RANGE_MESSAGE = f"Choose a date between {FIRST_DAY:%d %b %Y} and {LAST_DAY:%d %b %Y}."


def parse_instant(value: str, tz: ZoneInfo, offset: str = "") -> datetime:
    """One instant from what a page sends: ISO 8601 with an offset (or Z), or a wall time in tz
    with the UTC offset the user chose when that wall time happens twice (the repeated hour).

    Raises forms.ValidationError with a message for the user.
    """
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise forms.ValidationError("Enter a date and time.", code="invalid") from None
    if not FIRST_DAY <= moment.date() <= LAST_DAY:
        raise forms.ValidationError(DAY_RANGE_MESSAGE, code="out_of_range")
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    instants = wall_instants(moment, tz)
    if not instants:
        raise forms.ValidationError(
            f"{moment:%H:%M} does not exist on {moment:%d %b %Y} in {tz.key}: the clocks "
            "skip that hour. Choose a time before or after it.",
            code="nonexistent",
        )
    if len(instants) == 1:
        return instants[0]
    for instant in instants:
        if offset and offset_value(instant, tz) == offset:
            return instant
    first, second = (zone_label(i, tz) for i in instants)
    raise forms.ValidationError(
        f"{moment:%H:%M} happens twice on {moment:%d %b %Y} in {tz.key}: choose {first} "
        f"or {second}.",
        code="ambiguous",
    )


def offset_value(moment: datetime, tz: ZoneInfo) -> str:
    """The UTC offset of moment in tz as the offset select sends it, e.g. "+02:00"."""
    return moment.astimezone(tz).isoformat()[-6:]


class InstantWidget(forms.MultiWidget):
    """A datetime-local picker (wall time in the location's zone) and the UTC offset meant, which
    only matters in the repeated hour of a fall-back day; both go out as `start` and
    `start_offset`. A value sent as one ISO string with an offset (hidden inputs, links) is read
    as is."""

    def __init__(self, step_minutes: int = 15):
        widgets = {
            "": forms.DateTimeInput(
                format="%Y-%m-%dT%H:%M",
                attrs={"type": "datetime-local", "step": step_minutes * 60},
            ),
            "offset": forms.Select(),
        }
        super().__init__(widgets)

    def decompress(self, value):
        if not isinstance(value, datetime):
            return [value, ""]
        tz = timezone.get_current_timezone()
        local = value.astimezone(tz)
        return [local.replace(tzinfo=None), offset_value(local, tz)]

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_0" if id_ else id_

    def get_context(self, name, value, attrs):
        # The offset is asked only where the wall time shown happens twice; elsewhere the wall
        # time alone names one instant and the select would only be noise.
        tz = timezone.get_current_timezone()
        if isinstance(value, list | tuple):
            # A start sent back as one instant (a resize button's) shows as its wall time.
            sent = _instant_of(value[0])
            if sent is not None:
                value = self.decompress(sent)
        else:
            value = self.decompress(value)
        wall = value[0]
        instants = _wall_instants_of(wall, tz)
        self.widgets[1].choices = [
            ("", "Choose the clock"),
            *((offset_value(i, tz), zone_label(i, tz)) for i in instants),
        ]
        context = super().get_context(name, value, attrs)
        subwidgets = context["widget"]["subwidgets"]
        if len(instants) < 2:
            del subwidgets[1:]
        else:
            subwidgets[1]["attrs"]["aria-label"] = "Which clock: this time happens twice"
        return context


def _instant_of(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None or not FIRST_DAY <= moment.date() <= LAST_DAY:
        return None
    return moment


def _wall_instants_of(wall: object, tz: ZoneInfo) -> list[datetime]:
    if isinstance(wall, str):
        try:
            wall = datetime.fromisoformat(wall)
        except ValueError:
            return []
    if not isinstance(wall, datetime) or wall.tzinfo is not None:
        return []
    if not FIRST_DAY <= wall.date() <= LAST_DAY:
        return []
    return wall_instants(wall, tz)


class InstantField(forms.Field):
    """A start time that names one instant (see parse_instant); cleans to an aware UTC datetime
    read in the active time zone (the views activate the location's)."""

    def __init__(self, *, step_minutes: int, **kwargs):
        super().__init__(widget=InstantWidget(step_minutes), **kwargs)

    def to_python(self, value):
        if isinstance(value, datetime):
            return value
        text, offset = value if isinstance(value, list | tuple) else (value, "")
        if not text:
            return None
        return parse_instant(str(text), timezone.get_current_timezone(), offset or "")


class TimelineFilterForm(forms.Form):
    """The day/week view's date and EVSE filters, all optional (GET parameters)."""

    CURRENT_CHOICES = [("", "AC or DC"), ("AC", "AC"), ("DC", "DC")]

    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_date(self) -> date | None:
        day = self.cleaned_data["date"]
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise forms.ValidationError(DAY_RANGE_MESSAGE, code="out_of_range")
        return day

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

    # The day view shows its opening hours (widened to every booking and to now) unless asked
    # for the whole day: ?hours=all.
    hours = forms.ChoiceField(
        required=False, label="Hours shown", choices=[("", "Opening hours"), ("all", "All 24 h")]
    )

    def valid_data(self) -> dict:
        """The fields that are valid: one bad filter in a URL keeps the others."""
        self.is_valid()
        return self.cleaned_data

    def criteria(self) -> Criteria:
        data = self.valid_data()
        return Criteria(
            power_type=data.get("current") or None,
            standards=(data["standard"],) if data.get("standard") else (),
            min_power_kw=data.get("min_kw") or None,
        )

    def query(self, **override) -> str:
        """The filters as a query string (for links that keep them), with overrides."""
        from django.http import QueryDict

        values = {k: v for k, v in self.valid_data().items() if v} | override
        qd = QueryDict(mutable=True)
        for key, value in values.items():
            if value not in (None, ""):
                qd[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return qd.urlencode()


class QuickBookForm(forms.Form):
    """Quick book: what to find the next free slot for (all GET parameters)."""

    current = forms.ChoiceField(
        required=False, label="Current", choices=TimelineFilterForm.CURRENT_CHOICES
    )
    min_kw = forms.IntegerField(
        required=False, min_value=0, max_value=1000, label="Minimum power (kW)"
    )
    duration = forms.TypedChoiceField(
        label="For",
        coerce=int,
        initial=60,
        choices=[(m, format_minutes(m)) for m in (30, 60, 90, 120, 180)],
    )


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
        self.fields["start"] = InstantField(label="Start", step_minutes=policy.slot_step_minutes)
        self.fields["duration"] = forms.TypedChoiceField(
            label="Duration",
            coerce=int,
            choices=duration_choices(policy, every_step=self.every_step),
            widget=self.duration_widget,
        )
        self.order_fields(["evse", "start", "duration"])

    @property
    def end(self) -> datetime:
        # Elapsed time: 2 h from 01:30 on a spring-forward day ends at 04:30 local.
        return self.cleaned_data["start"].astimezone(UTC) + timedelta(
            minutes=self.cleaned_data["duration"]
        )


WALK_IN = "new"  # the driver choice that books for a walk-in driver (not in the system)


class BookingForm(_SlotForm):
    """A new booking: for a driver found by search, or for a walk-in driver taken down here
    (driver=new with a name and a plate and/or phone; bookings.services.WalkIn)."""

    duration_widget = forms.RadioSelect  # presets as one-tap buttons
    every_step = False
    driver = forms.CharField(required=False)
    guest_name = forms.CharField(required=False, max_length=120, label="Driver's name")
    guest_plate = forms.CharField(required=False, max_length=16, label="Licence plate")
    guest_phone = forms.CharField(required=False, max_length=32, label="Phone")
    guest_token = forms.CharField(
        required=False, max_length=36, label="Charging card uid (optional)"
    )
    notes = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )

    def clean_driver(self) -> Driver | str | None:
        value = self.cleaned_data["driver"].strip()
        if value in ("", WALK_IN):
            return value or None
        driver = Driver.objects.filter(pk=int(value)).first() if value.isdigit() else None
        if driver is None:
            raise forms.ValidationError("That driver no longer exists; search again.")
        return driver

    def clean(self) -> dict:
        data = super().clean()
        driver = data.get("driver")
        if driver is None and "driver" not in self.errors and data.get("guest_name", "").strip():
            driver = data["driver"] = WALK_IN  # a name typed in: the walk-in is meant
        if driver is None and "driver" not in self.errors:
            self.add_error(
                "driver",
                "Choose a driver: search by email, name or token uid. Or book for a walk-in "
                "driver below.",
            )
        if driver == WALK_IN:
            if not data.get("guest_name", "").strip():
                self.add_error("guest_name", "Give the walk-in driver's name.")
            if not (data.get("guest_plate", "").strip() or data.get("guest_phone", "").strip()):
                self.add_error("guest_plate", "Give a licence plate or a phone number (or both).")
        return data

    @property
    def walk_in(self) -> WalkIn | None:
        """The walk-in driver to create with the booking, when one is meant."""
        if self.cleaned_data.get("driver") != WALK_IN:
            return None
        data = self.cleaned_data
        return WalkIn(
            name=data["guest_name"], license_plate=data["guest_plate"],
            phone=data["guest_phone"], token_uid=data["guest_token"],
        )  # fmt: skip


class BookingChangeForm(_SlotForm):
    """Move (time and/or EVSE), extend or shorten: one booking_change call."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "chg-%s")  # shares the panel with the cancel form
        super().__init__(*args, **kwargs)
        # A drag on the timeline sends the new end as an instant instead of a duration (a
        # resize may land on any step, not only on the duration choices).
        self.fields["end"] = InstantField(label="End", step_minutes=1, required=False)
        self.fields["duration"].required = False
        self.fields["duration"].empty_value = None

    def clean(self):
        data = super().clean()
        given = data.get("end") is not None or data.get("duration") is not None
        if not given and "end" not in self.errors and "duration" not in self.errors:
            self.add_error("duration", forms.Field.default_error_messages["required"])
        return data

    @property
    def end(self) -> datetime:
        if self.cleaned_data.get("end") is not None:
            return self.cleaned_data["end"].astimezone(UTC)
        return super().end

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


class OutOfOrderForm(forms.Form):
    """A charger out of order: which charge point, move or cancel, over what time, and why."""

    def __init__(self, *args, charge_points: Iterable = (), **kwargs):
        kwargs.setdefault("auto_id", "ooo-%s")
        super().__init__(*args, **kwargs)
        self.fields["charge_point"].choices = [("", "Choose a charge point")] + [
            (cp.pk, cp.identity) for cp in charge_points
        ]

    charge_point = forms.TypedChoiceField(coerce=int, label="Charge point")
    action = forms.ChoiceField(
        choices=[
            ("move", "Move each booking to a free EVSE (same current), else cancel it"),
            ("cancel", "Cancel every booking"),
        ],
        initial="move",
        widget=forms.RadioSelect,
        label="What to do with its bookings",
    )
    days = forms.TypedChoiceField(
        coerce=int,
        choices=[(1, "For the rest of today"), (7, "For the next 7 days")],
        initial=1,
        widget=forms.RadioSelect,
        label="Bookings",
    )
    reason = forms.CharField(
        max_length=200,
        label="Reason (recorded on every booking, told to drivers' providers as broken charger)",
    )
