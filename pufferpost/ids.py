"""Prefixed ULID ids: `dom_01J9Z3K7Q2N8M4V6XB0R5T9AHC` (a type prefix plus 26 Crockford base32 chars)."""

import re

from django.db import models
from ulid import ULID

ULID_RE = r"[0-9A-HJKMNP-TV-Z]{26}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def is_valid(prefix: str, value: str) -> bool:
    return isinstance(value, str) and re.fullmatch(rf"{prefix}_{ULID_RE}", value) is not None


class PrefixedIdField(models.CharField):
    """Primary key holding a fresh prefixed ULID; ULIDs sort by creation time."""

    def __init__(self, *args, prefix: str, **kwargs):
        self.prefix = prefix
        kwargs.setdefault("max_length", len(prefix) + 27)
        kwargs.setdefault("primary_key", True)
        kwargs.setdefault("editable", False)
        kwargs.pop("default", None)
        super().__init__(*args, **kwargs)

    def get_default(self):
        return new_id(self.prefix)

    def has_default(self):
        return True

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["prefix"] = self.prefix
        kwargs.pop("max_length", None)
        return name, path, args, kwargs
