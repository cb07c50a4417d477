"""Changelist columns that stay readable at 1280 px: each text cell is cut to a width, on one line,
with the whole value in its `title` (hover to read it), and times are shown compactly.

A ModelAdmin lists `column_widths` ({list_display name: width in `ch`}); every name there is
rendered through `cut()`. Datetime fields in `list_display` are shown as `2026-12-01 15:41` (UTC),
with the full ISO timestamp as their title. The column keeps its name (its `field-<name>` CSS
class), header and sort order, so filters, links and tests that find cells by class still work.
"""

from datetime import UTC

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.html import format_html, strip_tags

from pufferpost.formats import utc_timestamp

EMPTY = "-"


def cut(value, width: int):
    """`value` on one line, at most `width` characters wide, the whole of it in the title."""
    if value is None or value == "":
        return EMPTY
    text = strip_tags(str(value))
    return format_html('<span class="pp-cut" style="max-width: {}ch" title="{}">{}</span>', width, text, value)


def compact_time(value):
    if value is None:
        return EMPTY
    return format_html(
        '<time class="pp-time" datetime="{}" title="{}">{}</time>',
        utc_timestamp(value),
        utc_timestamp(value),
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
    )


class ReadableColumnsMixin:
    column_widths: dict[str, int] = {}

    def get_list_display(self, request):
        return [self._readable_column(name) for name in super().get_list_display(request)]

    def _readable_column(self, name):
        if not isinstance(name, str):
            return name
        cache = self.__dict__.setdefault("_readable_columns", {})
        if name not in cache:
            cache[name] = self._build_column(name)
        return cache[name]

    def _build_column(self, name):
        try:
            field = self.model._meta.get_field(name)
        except FieldDoesNotExist:
            field = None
        width = self.column_widths.get(name)
        is_time = isinstance(field, models.DateTimeField)
        if width is None and not is_time:
            return name
        method = getattr(self, name, None) if field is None else None
        if field is None and method is None:
            return name

        def value_of(obj):
            if method is not None:
                return method(obj)
            value = getattr(obj, name)
            return ", ".join(value) if isinstance(value, list | tuple) else value

        def column(obj):
            value = value_of(obj)
            return compact_time(value) if is_time else cut(value, width)

        column.__name__ = name
        if method is not None:
            description = getattr(method, "short_description", name.replace("_", " "))
            ordering = getattr(method, "admin_order_field", None)
        else:
            description = field.verbose_name
            ordering = name
        return admin.display(description=description, ordering=ordering)(column)
