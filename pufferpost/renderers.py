"""The JSON renderer of every response."""

import re

from rest_framework import renderers

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def renderable(value):
    """`value` with every lone surrogate (valid in JSON text, not in UTF-8) shown as its `\\udXXX`
    escape, in keys and values alike: an answer can always be encoded, even one that quotes the
    request back (a violation's field name, an unknown choice)."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if isinstance(value, dict):
        return {renderable(k): renderable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [renderable(v) for v in value]
    return value


class JSONRenderer(renderers.JSONRenderer):
    """DRF's renderer for every response. An answer that cannot be encoded as UTF-8 (a lone
    surrogate from the request echoed back) is rendered again through `renderable` instead of
    becoming a 500 after the work was done (a batch's accepted items were already committed)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return super().render(renderable(data), accepted_media_type, renderer_context)
