"""Request bodies of the send, suppression and unsubscribe-group endpoints.

The send body is camelCase exactly as the public guide's table; every limit here is a promise
in the guide (cc ≤ 25, metadata ≤ 50 keys of ≤ 500 chars, ≤ 3 attachments of ~1 MB).
"""

import base64
import binascii
import codecs
import re
from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from messaging.models import EventType, MessageStatus, SuppressionReason
from pufferpost.openapi import ViolationSerializer
from pufferpost.serializers import EmailField, StrictSerializer, TimestampField, check_storable_json
from templates_app.formatting import is_timezone, normalize_locale

MAX_CC = 25
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 100
MAX_METADATA_VALUE_LENGTH = 500
MAX_ATTACHMENTS = 3
MAX_ATTACHMENT_BYTES = 1_048_576
MAX_BATCH = 100

# A bare `type/subtype` (RFC 6838 restricted-name characters), no parameters.
CONTENT_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
# RFC 2978 mime-charset characters; the name must also be a charset Python can encode with.
CHARSET_RE = re.compile(r"[a-z0-9][a-z0-9!#$%&'+^_`{}~-]{0,39}")
# Characters no mail header can carry: C0 controls (CR, LF, TAB), DEL, C1, line/paragraph separators.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Longest base64 text that can decode to MAX_ATTACHMENT_BYTES, checked before decoding anything.
_MAX_BASE64_CHARS = 4 * ((MAX_ATTACHMENT_BYTES + 2) // 3)


def _error(message: str, code: str) -> list[ErrorDetail]:
    return [ErrorDetail(message, code=code)]


class StringField(serializers.CharField):
    """A JSON string, never a number or boolean coerced into one."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.OBJECT)
class ObjectField(serializers.Field):
    """A JSON object, passed through untouched (the template's render variables)."""

    default_error_messages = {"not_an_object": "Must be a JSON object."}

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            self.fail("not_an_object")
        check_storable_json(data)
        return dict(data)

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": MAX_METADATA_KEYS,
        "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_LENGTH},
    }
)
class MetadataField(serializers.Field):
    """An object of string → string: ≤ 50 keys, keys 1–100 chars, values ≤ 500 chars.

    Errors name the key (`metadata.order_id`), so a customer sees which entry is wrong.
    """

    default_error_messages = {
        "not_an_object": "Must be a JSON object of strings.",
        "too_many_keys": f"At most {MAX_METADATA_KEYS} keys.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            self.fail("not_an_object")
        if len(data) > MAX_METADATA_KEYS:
            self.fail("too_many_keys")
        errors = {}
        for key, value in data.items():
            if not 1 <= len(key) <= MAX_METADATA_KEY_LENGTH:
                errors[key] = _error(f"Keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters.", "invalid_key")
            elif not isinstance(value, str):
                errors[key] = _error("Must be a string.", "not_a_string")
            elif len(value) > MAX_METADATA_VALUE_LENGTH:
                errors[key] = _error(f"At most {MAX_METADATA_VALUE_LENGTH} characters.", "max_length")
            else:
                try:
                    check_storable_json([key, value])
                except ValidationError as exc:
                    errors[key] = exc.detail
        if errors:
            raise ValidationError(errors)
        return dict(data)

    def to_representation(self, value):
        return value


class LocaleField(StringField):
    default_error_messages = {"invalid_locale": "Use a BCP 47 language tag such as de or pt-BR."}

    def __init__(self, **kwargs):
        super().__init__(max_length=35, **kwargs)

    def to_internal_value(self, data):
        # The renderer's own check: a locale a send accepts is one the render understands.
        tag = normalize_locale(super().to_internal_value(data))
        if tag is None:
            self.fail("invalid_locale")
        return tag


class TimezoneField(StringField):
    default_error_messages = {"invalid_timezone": "Use an IANA time zone such as Europe/Berlin."}

    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not is_timezone(value):
            self.fail("invalid_timezone")
        return value


class FilenameField(StringField):
    default_error_messages = {
        "invalid_filename": "A file name, without / or \\, line breaks or other control characters.",
    }

    def __init__(self, **kwargs):
        super().__init__(max_length=255, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "/" in value or "\\" in value or CONTROL_RE.search(value) or value in (".", ".."):
            self.fail("invalid_filename")
        return value


class ContentTypeField(StringField):
    """`type/subtype`, plus `; charset=…` on text/* types; lowercased (`text/csv; charset=utf-8`).

    Refused: anything a mail part can never be (multipart/*, which needs parts of its own, and
    message/*, which must itself be a complete message that relays parse and may reject)."""

    default_error_messages = {
        "invalid_content_type": "A MIME type such as application/pdf (text/* may add ; charset=utf-8).",
        "invalid_charset": "An unknown charset; use a registered name such as utf-8 or iso-8859-1.",
        "undeliverable_content_type": "{media_type} cannot be sent as an attachment; "
        "use application/octet-stream (or application/pdf, text/csv, …) instead.",
    }

    def __init__(self, **kwargs):
        super().__init__(max_length=255, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        media_type, _, parameter = value.strip().lower().partition(";")
        media_type = media_type.strip()
        if not CONTENT_TYPE_RE.fullmatch(media_type):
            self.fail("invalid_content_type")
        if media_type.partition("/")[0] in ("multipart", "message"):
            self.fail("undeliverable_content_type", media_type=media_type)
        if not parameter.strip():
            return media_type
        attribute, equals, charset = (part.strip() for part in parameter.partition("="))
        charset = charset[1:-1] if len(charset) > 1 and charset[0] == charset[-1] == '"' else charset
        if not media_type.startswith("text/") or attribute != "charset" or not equals:
            self.fail("invalid_content_type")
        if not CHARSET_RE.fullmatch(charset) or not _known_charset(charset):
            self.fail("invalid_charset")
        return f"{media_type}; charset={charset}"


def _known_charset(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


@extend_schema_field({"type": "string", "format": "byte"})
class Base64ContentField(StringField):
    """Base64 text decoding to at most MAX_ATTACHMENT_BYTES; returns the bytes."""

    default_error_messages = {
        "invalid_base64": "Must be base64-encoded.",
        "too_large": f"At most {MAX_ATTACHMENT_BYTES} bytes once decoded.",
    }

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            # MIME-style base64 wraps lines; accept it, but only pay for the join when needed.
            compact = "".join(value.split())
            if len(compact) > _MAX_BASE64_CHARS:
                self.fail("too_large")
            try:
                raw = base64.b64decode(compact, validate=True)
            except (binascii.Error, ValueError):
                self.fail("invalid_base64")
        if len(raw) > MAX_ATTACHMENT_BYTES:
            self.fail("too_large")
        return raw

    def run_validation(self, data=serializers.empty):
        if isinstance(data, str) and len(data) > 2 * _MAX_BASE64_CHARS:
            self.fail("too_large")
        return super().run_validation(data)


class AttachmentSerializer(StrictSerializer):
    filename = FilenameField()
    contentType = ContentTypeField()  # the public body is camelCase
    content = Base64ContentField()


class SendSerializer(StrictSerializer):
    """One send. Reference the template by `templateId` (preferred) or its slug `template`."""

    # `from` is a Python keyword, hence the `locals()` spelling.
    locals()["from"] = EmailField()
    to = EmailField()
    templateId = StringField(required=False, allow_null=True, allow_blank=True, max_length=64)
    template = StringField(required=False, allow_null=True, allow_blank=True, max_length=200)
    data = ObjectField(required=False, allow_null=True)
    replyTo = EmailField(required=False, allow_null=True)
    cc = serializers.ListField(child=EmailField(), required=False, allow_null=True, max_length=MAX_CC)
    metadata = MetadataField(required=False, allow_null=True)
    unsubscribeGroup = StringField(required=False, allow_null=True, max_length=64)
    locale = LocaleField(required=False, allow_null=True)
    timezone = TimezoneField(required=False, allow_null=True)
    attachments = serializers.ListField(
        child=AttachmentSerializer(), required=False, allow_null=True, max_length=MAX_ATTACHMENTS
    )

    # Optional fields sent as null mean "not given", as they already did for replyTo, locale and
    # the other optional strings: SDKs often write every unset optional field as null. (These four
    # are dropped before validation, so the validated send never holds a None for them; allow_null
    # is what tells the OpenAPI schema.)
    ABSENT_WHEN_NULL = frozenset({"data", "cc", "metadata", "attachments"})

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and any(data.get(name, ...) is None for name in self.ABSENT_WHEN_NULL):
            data = {k: v for k, v in data.items() if not (v is None and k in self.ABSENT_WHEN_NULL)}
        return super().to_internal_value(data)


class BatchSerializer(StrictSerializer):
    """The batch envelope only; each item is validated on its own so one bad item fails alone."""

    messages = serializers.ListField(allow_empty=False, min_length=1, max_length=MAX_BATCH)


class SuppressionCreateSerializer(StrictSerializer):
    email = EmailField()
    reason = serializers.ChoiceField(choices=[SuppressionReason.MANUAL], default=SuppressionReason.MANUAL)


class UnsubscribeGroupCreateSerializer(StrictSerializer):
    name = StringField(max_length=200)
    description = StringField(required=False, allow_blank=True, max_length=1000, default="")


class UnsubscribeCreateSerializer(StrictSerializer):
    email = EmailField()


# --- response shapes --------------------------------------------------------------------------
# The views build these answers as plain dicts (the send path's CPU budget has no room for a
# serializer); these classes describe them for the OpenAPI schema and are never run.


class SendAcceptedSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The new message's `msg_…` id.")
    status = serializers.ChoiceField(choices=["accepted"])


class BatchItemErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    violations = ViolationSerializer(many=True, required=False)


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in `messages`.")
    status = serializers.ChoiceField(choices=["accepted", "error"])
    id = serializers.CharField(required=False, help_text="On accepted items: the `msg_…` id.")
    error = BatchItemErrorSerializer(required=False, help_text="On failed items: why.")


class BatchRequestSerializer(serializers.Serializer):
    messages = serializers.ListField(child=SendSerializer(), min_length=1, max_length=MAX_BATCH)


class AttachmentViewSerializer(serializers.Serializer):
    filename = serializers.CharField()
    content_type = serializers.CharField()


class MessageViewSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=MessageStatus.choices)
    to = serializers.CharField()
    locals()["from"] = serializers.CharField()
    reply_to = serializers.CharField(allow_null=True)
    cc = serializers.ListField(child=serializers.CharField())
    attachments = AttachmentViewSerializer(many=True)
    subject = serializers.CharField(help_text="The rendered subject; empty until the message is rendered.")
    template_id = serializers.CharField()
    template_name = serializers.CharField()
    template_version = serializers.IntegerField()
    data = serializers.DictField()
    metadata = serializers.DictField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField())
    locale = serializers.CharField()
    timezone = serializers.CharField()
    unsubscribe_group = serializers.CharField(allow_null=True, help_text="The `grp_…` id the send named, if any.")
    test = serializers.BooleanField(
        help_text="True when a test key (`key_test_…`) sent it: simulated, never delivered."
    )
    created_at = TimestampField()
    updated_at = TimestampField()


class MessageContentViewSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The message's `msg_…` id.")
    subject = serializers.CharField(help_text="The subject as delivered.")
    text = serializers.CharField(help_text="The text/plain part as delivered.")
    html = serializers.CharField(help_text="The text/html part as delivered, tracking links and pixel included.")
    attachments = AttachmentViewSerializer(many=True, help_text="Names and types only; content is never returned.")
    built_at = TimestampField(help_text="When delivery built the message (its latest attempt).")


class MessageEventViewSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(choices=EventType.choices)
    occurred_at = TimestampField()
    recorded_at = TimestampField()
    detail = serializers.DictField(
        help_text="What happened: SMTP code and response, bounce diagnostic, deferral reason, clicked URL. "
        "Empty for accepted and queued."
    )


class SuppressionViewSerializer(serializers.Serializer):
    email = serializers.CharField()
    reason = serializers.ChoiceField(choices=SuppressionReason.choices)
    created_at = TimestampField()
    source_message_id = serializers.CharField(
        allow_null=True, help_text="The message whose bounce or complaint added it."
    )
    detail = serializers.DictField(
        help_text="For a bounce: bounce_class, basic_code, enhanced_code, diagnostic, remote_mta, reporting_mta."
    )
    why = serializers.CharField(help_text="Why the address is suppressed and how to remove it, in one sentence.")
    remove = serializers.CharField(help_text="The request that removes this suppression.")


class UnsubscribeGroupViewSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = TimestampField()


class UnsubscribeViewSerializer(serializers.Serializer):
    email = serializers.CharField()
    group_id = serializers.CharField()
    created_at = TimestampField()


# How many events of each type occurred; `blocked` is the bounces of class `block` (part of `bounced`).
StatsCountsSerializer = type(
    "StatsCountsSerializer",
    (serializers.Serializer,),
    {
        **{name: serializers.IntegerField(min_value=0) for name in EventType.values},
        "blocked": serializers.IntegerField(min_value=0, help_text="Bounces of class `block` (part of `bounced`)."),
        "__doc__": "Events of each type in the bucket or period.",
        "__module__": __name__,
    },
)


class StatsRatesSerializer(serializers.Serializer):
    """Shares of the delivery outcomes (delivered + bounced); complaints per delivered. Null without outcomes."""

    delivery_rate = serializers.FloatField(allow_null=True, help_text="delivered / (delivered + bounced)")
    bounce_rate = serializers.FloatField(allow_null=True, help_text="bounces other than blocks / (delivered + bounced)")
    block_rate = serializers.FloatField(allow_null=True, help_text="bounces of class `block` / (delivered + bounced)")
    complaint_rate = serializers.FloatField(allow_null=True, help_text="complained / delivered")


class StatsTotalsSerializer(serializers.Serializer):
    counts = StatsCountsSerializer()
    rates = StatsRatesSerializer()


class StatsBucketSerializer(serializers.Serializer):
    start = TimestampField(help_text="The bucket's first instant.")
    end = TimestampField(help_text="The next bucket's start (exclusive).")
    counts = StatsCountsSerializer()
    rates = StatsRatesSerializer()


class StatsFiltersSerializer(serializers.Serializer):
    sender_id = serializers.CharField(allow_null=True)
    template_id = serializers.CharField(allow_null=True)
    unsubscribe_group_id = serializers.CharField(allow_null=True)


class StatsSerializer(serializers.Serializer):
    """The period as answered (widened to whole buckets), its totals, and every bucket in order (zeros included)."""

    to = TimestampField(help_text="End of the last bucket (`to` rounded up to a bucket edge), exclusive.")
    interval = serializers.ChoiceField(choices=["hour", "day"])
    timezone = serializers.CharField(help_text="The IANA zone whose days the buckets follow.")
    filters = StatsFiltersSerializer()
    totals = StatsTotalsSerializer()
    data = StatsBucketSerializer(many=True)

    def get_fields(self):
        # `from` is a Python keyword, so it cannot be a class attribute; it leads the body.
        since = TimestampField(help_text="Start of the first bucket (`from` rounded down to a bucket edge).")
        return {"from": since, **super().get_fields()}
