from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from pufferpost.serializers import StrictSerializer, TimestampField, check_storable_json
from templates_app.formatting import is_locale_tag, is_timezone, normalize_locale
from templates_app.services import SLUG_MAX, SLUG_RE

SUBJECT_MAX = 998  # one RFC 5322 header line
BODY_MAX_BYTES = 512 * 1024
TRANSLATIONS_MAX = 100
# Every part of a version, translations included: the worker loads the whole row for each message.
VERSION_MAX_BYTES = 2 * 1024 * 1024


def _max_bytes(value: str):
    if len(value.encode("utf-8", "surrogatepass")) > BODY_MAX_BYTES:  # the surrogate check runs after
        raise ValidationError(
            ErrorDetail(f"Ensure this field is no larger than {BODY_MAX_BYTES // 1024} KB.", code="too_long")
        )


class SlugField(serializers.CharField):
    default_error_messages = {
        "invalid_slug": "Use lowercase letters, digits, '-' and '_', starting with a letter or digit."
    }

    def __init__(self, **kwargs):
        super().__init__(max_length=SLUG_MAX, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not SLUG_RE.match(value):
            self.fail("invalid_slug")
        return value


def _strict_field():
    return serializers.BooleanField(
        source="strict_variables",
        required=False,
        help_text="Refuse (422 `template_variables_missing`) a send or preview whose `data` lacks a variable "
        "the template uses, instead of rendering it empty.",
    )


class TemplateCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    slug = SlugField(required=False)
    strictVariables = _strict_field()  # request bodies are camelCase


class TemplateUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    slug = SlugField(required=False)
    strictVariables = _strict_field()


class TemplateSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    slug = serializers.CharField()
    latest_version = serializers.IntegerField(allow_null=True)
    strict_variables = serializers.BooleanField()
    archived = serializers.SerializerMethodField()
    created_at = TimestampField()
    updated_at = TimestampField()

    def get_archived(self, template) -> bool:
        return template.archived_at is not None


def _subject_field(**kwargs):
    return serializers.CharField(max_length=SUBJECT_MAX, trim_whitespace=False, **kwargs)


def _body_field(**kwargs):
    return serializers.CharField(trim_whitespace=False, validators=[_max_bytes], **kwargs)


class TranslationSerializer(StrictSerializer):
    subject = _subject_field()
    html = _body_field()
    text = _body_field(required=False, allow_blank=True, default="")


class VersionCreateSerializer(StrictSerializer):
    subject = _subject_field()
    html = _body_field()
    text = _body_field(required=False, allow_blank=True, default="")
    translations = serializers.DictField(child=TranslationSerializer(), required=False, default=dict)

    def validate_translations(self, translations):
        if len(translations) > TRANSLATIONS_MAX:
            raise ValidationError(ErrorDetail(f"At most {TRANSLATIONS_MAX} translations per version.", code="too_many"))
        bad = {
            key: [ErrorDetail("Use a locale tag such as 'de' or 'pt-BR'.", code="invalid_locale")]
            for key in translations
            if not is_locale_tag(key)
        }
        if bad:
            raise ValidationError(bad)
        return {key: dict(value) for key, value in translations.items()}

    def validate(self, attrs):
        parts = [attrs["subject"], attrs["html"], attrs.get("text", "")]
        for translation in attrs.get("translations", {}).values():
            parts += [translation["subject"], translation["html"], translation.get("text", "")]
        if sum(len(part.encode("utf-8")) for part in parts) > VERSION_MAX_BYTES:
            raise ValidationError(
                {
                    "translations": [
                        ErrorDetail(
                            f"A version, translations included, is limited to {VERSION_MAX_BYTES // 2**20} MB.",
                            code="too_long",
                        )
                    ]
                }
            )
        return attrs


class VersionSerializer(serializers.Serializer):
    template_id = serializers.CharField()
    version = serializers.IntegerField()
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()
    translations = serializers.DictField(child=TranslationSerializer())
    created_at = TimestampField()


class RenderDataField(serializers.DictField):
    def to_internal_value(self, data):
        # Before DictField walks it: deeply nested data would exhaust the stack there (a 500).
        if isinstance(data, dict):
            check_storable_json(data)
        return super().to_internal_value(data)


class RenderSerializer(StrictSerializer):
    data = RenderDataField(required=False, default=dict)
    locale = serializers.CharField(required=False, max_length=35)
    timezone = serializers.CharField(required=False, max_length=64)
    version = serializers.IntegerField(required=False, min_value=1)

    def validate_locale(self, value):
        tag = normalize_locale(value)
        if tag is None:
            raise ValidationError(ErrorDetail("Use a locale tag such as 'de' or 'pt-BR'.", code="invalid_locale"))
        return tag

    def validate_timezone(self, value):
        if not is_timezone(value):
            raise ValidationError(ErrorDetail("Use an IANA timezone such as 'Europe/Berlin'.", code="invalid_timezone"))
        return value


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()
    version = serializers.IntegerField()
    locale = serializers.CharField()
    missing_variables = serializers.ListField(
        child=serializers.CharField(),
        help_text="Variables the template uses that `data` does not give (they render as empty text).",
    )
