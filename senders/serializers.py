from rest_framework import serializers

from pufferpost.serializers import EmailField, StrictSerializer, TimestampField
from senders.models import SenderState


class SenderCreateSerializer(StrictSerializer):
    """`POST /v1/senders` body, camelCase as the guide shows it."""

    fromAddress = EmailField()
    displayName = serializers.CharField(max_length=255, required=False, allow_null=True, allow_blank=True)


class SenderSerializer(serializers.Serializer):
    id = serializers.CharField()
    workspace_id = serializers.CharField()
    from_address = serializers.CharField()
    display_name = serializers.CharField(allow_null=True)
    state = serializers.ChoiceField(choices=SenderState.choices)
    state_reason = serializers.CharField()
    created_at = TimestampField()
    updated_at = TimestampField()
