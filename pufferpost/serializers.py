"""Serializer building blocks every app shares."""

from collections.abc import Mapping
from datetime import UTC

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know (a stray `subject` on a send is an error, not ignored)."""

    def to_internal_value(self, data):
        errors = {}
        if isinstance(data, Mapping):
            known = {field.field_name for field in self._writable_fields}
            for name in data:
                if name not in known:
                    errors[name] = [ErrorDetail("Unknown field.", code="unknown_field")]
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            if not isinstance(exc.detail, Mapping):
                raise
            errors = {**exc.detail, **errors}
            value = None
        if errors:
            raise ValidationError(errors)
        return value


@extend_schema_field({"type": "string", "format": "email"})
class EmailField(serializers.CharField):
    """An email address, trimmed and lowercased, refused with code `invalid_email`."""

    default_error_messages = {"invalid_email": "Enter a valid email address."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).strip().lower()
        try:
            validate_email(value)
        except DjangoValidationError:
            self.fail("invalid_email")
        return value


class TimestampField(serializers.DateTimeField):
    """ISO 8601 in UTC with an explicit offset, seconds precision: `2026-06-09T10:15:00+00:00`."""

    def to_representation(self, value):
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="seconds")
