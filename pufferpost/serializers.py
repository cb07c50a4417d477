"""Serializer building blocks every app shares."""

import math
import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from pufferpost.formats import normalise_address, utc_timestamp

MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_storable_json(value) -> None:
    """Refuse a parsed JSON value that PostgreSQL's jsonb cannot store or that is too deep to walk.

    DRF's CharField already refuses NUL and unpaired surrogates in plain strings; free-form JSON
    (render data, metadata) needs the same care, plus finite numbers and bounded nesting, or the
    insert fails in the database (a 500) instead of answering a 422. Iterative, so depth is safe.
    """
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or _SURROGATE.search(item):
                raise ValidationError(
                    ErrorDetail("Must not contain NUL characters or unpaired surrogates.", code="invalid_character")
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(ErrorDetail("Numbers must be finite.", code="invalid_number"))
        elif isinstance(item, (Mapping, list)):
            if depth >= MAX_JSON_DEPTH:
                raise ValidationError(ErrorDetail(f"At most {MAX_JSON_DEPTH} levels of nesting.", code="too_deep"))
            if isinstance(item, Mapping):
                stack.extend((key, depth + 1) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _unknown_field_message(name, known: set[str]) -> str:
    """`Unknown field.`, plus the field meant when `name` is a known one in another spelling
    (`reply_to` or `ReplyTo` for `replyTo`): request bodies are camelCase."""
    if isinstance(name, str):
        head, *rest = name.split("_")
        camel = head + "".join(part[:1].upper() + part[1:] for part in rest)
        for candidate in (camel, name.lower()):
            match = next((field for field in known if field.lower() == candidate.lower()), None)
            if match is not None and match != name:
                return f'Unknown field; did you mean "{match}"? Request fields are camelCase.'
    return "Unknown field."


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know (a stray `subject` on a send is an error, not ignored)."""

    def to_internal_value(self, data):
        errors = {}
        if isinstance(data, Mapping):
            known = {field.field_name for field in self._writable_fields}
            for name in data:
                if name not in known:
                    errors[name] = [ErrorDetail(_unknown_field_message(name, known), code="unknown_field")]
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


_ADDRESS_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@extend_schema_field({"type": "string", "format": "email"})
class EmailField(serializers.CharField):
    """An email address, trimmed and lowercased, refused with code `invalid_email`.

    Stricter than Django's validator where mail needs it: no control characters (Django allows
    them in a quoted local part, and no header or RCPT can carry them) and no address literals
    (`jane@[127.0.0.1]` would have the platform connect to an address the customer picks)."""

    default_error_messages = {"invalid_email": "Enter a valid email address."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = normalise_address(super().to_internal_value(data))
        if _ADDRESS_CONTROL_RE.search(value):
            self.fail("invalid_email")
        try:
            validate_email(value)
        except DjangoValidationError:
            self.fail("invalid_email")
        if value.rpartition("@")[2].startswith("["):
            raise ValidationError(
                ErrorDetail(
                    "Address literals such as jane@[192.0.2.1] are not accepted; use a domain name.",
                    code="invalid_email",
                )
            )
        return value


class TimestampField(serializers.DateTimeField):
    """ISO 8601 in UTC with an explicit offset, seconds precision: `2026-06-09T10:15:00+00:00`."""

    def to_representation(self, value):
        return utc_timestamp(value)
