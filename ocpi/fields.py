"""Strict OCPI field types for input serializers: wrong JSON types are refused (DRF would coerce
11 to "11" or "true" to True), CiStrings are printable ASCII with a maximum length, DateTimes are
RFC 3339 in UTC (no designator means UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .responses import ocpi_datetime

_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f")


def parse_ocpi_datetime(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1]
    elif len(text) > 19 and text[-6] in "+-" and text[-3] == ":":
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            return None
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class CiStringField(StrictCharField):
    """OCPI CiString(n): printable ASCII, at most n characters."""

    default_error_messages = {"ascii": "Only printable ASCII characters are allowed."}

    def __init__(self, max_length: int, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(max_length=max_length, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if any(not (" " <= ch <= "~") for ch in value):
            self.fail("ascii")
        return value


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictNumberField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.DATETIME)
class OcpiDateTimeField(serializers.Field):
    """OCPI DateTime: parses every form the spec lists, emits `YYYY-MM-DDTHH:MM:SSZ`."""

    default_error_messages = {
        "invalid": "Not an OCPI DateTime (e.g. 2025-09-02T08:00:00Z).",
        "range": "Year out of range.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) > 40:
            self.fail("invalid")
        value = parse_ocpi_datetime(data)
        if value is None:
            self.fail("invalid")
        if not 1970 <= value.year <= 9998:
            self.fail("range")
        return value

    def to_representation(self, value):
        return ocpi_datetime(value)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictURLField(serializers.URLField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictListField(serializers.ListField):
    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return super().to_internal_value(data)


class StrictDictMixin:
    """A nested serializer that refuses a JSON value that is not an object."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Expected a JSON object, got {type(data).__name__}."]}
            )
        return super().to_internal_value(data)


class InputSerializer(StrictDictMixin, serializers.Serializer):
    """Base for OCPI input shapes: a JSON object is required, and unknown fields are ignored
    (OCPI 2.3.0 forbids refusing them)."""
