import json
from urllib.parse import urlsplit

from django.conf import settings
from rest_framework import serializers

from messaging.webhooks.services import EVENT_TYPES
from pufferpost import http
from pufferpost.serializers import StrictSerializer, TimestampField


class WebhookCreateSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, trim_whitespace=True)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), required=False, allow_empty=True, max_length=50
    )

    def validate_url(self, value):
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise serializers.ValidationError("Enter a valid http(s) URL.", code="invalid_url")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise serializers.ValidationError("Enter a valid http(s) URL.", code="invalid_url")
        try:
            http.request_parts(value)
        except http.OutboundError:
            raise serializers.ValidationError("Enter a valid http(s) URL.", code="invalid_url") from None
        if parts.username is not None or parts.password is not None:
            raise serializers.ValidationError("Credentials in the URL are not supported.", code="invalid_url")
        allow_private = settings.PUFFERPOST_WEBHOOKS_ALLOW_PRIVATE
        if parts.scheme != "https" and not (settings.DEBUG or allow_private):
            raise serializers.ValidationError("Webhook URLs must use https.", code="https_required")
        literal = http.literal_address(parts.hostname)
        private = parts.hostname == "localhost" or parts.hostname.endswith(".localhost")
        if not allow_private and (private or (literal and not http.address_allowed(literal))):
            raise serializers.ValidationError(
                "Webhook URLs may not point at private, loopback or link-local addresses.", code="private_address"
            )
        return value


class WebhookSerializer(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    created_at = TimestampField()


class WebhookCreatedSerializer(WebhookSerializer):
    """The only rendering that includes the secret: the answer to the create call."""

    secret = serializers.CharField()


class WebhookAttemptSerializer(serializers.Serializer):
    started_at = TimestampField()
    duration_ms = serializers.IntegerField()
    response_status = serializers.IntegerField(allow_null=True)
    response_body = serializers.CharField()
    error = serializers.CharField()


class WebhookDeliverySerializer(serializers.Serializer):
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    status = serializers.CharField()
    attempt_count = serializers.IntegerField(source="attempts")
    next_attempt_at = TimestampField(allow_null=True)
    last_response_status = serializers.IntegerField(allow_null=True)
    payload = serializers.SerializerMethodField()
    attempts = WebhookAttemptSerializer(source="attempt_log", many=True)
    created_at = TimestampField()
    updated_at = TimestampField()

    def get_payload(self, delivery) -> dict:
        return json.loads(delivery.payload)
