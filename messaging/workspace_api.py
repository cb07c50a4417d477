"""Workspace-level API: `GET /v1/workspace` (here, not in pufferpost/, because it reports the quota messaging counts)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.selectors import monthly_quota_used
from pufferpost.serializers import TimestampField


class WorkspaceSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    default_locale = serializers.CharField()
    sending_paused = serializers.BooleanField()
    monthly_quota = serializers.IntegerField()
    monthly_quota_used = serializers.IntegerField()
    rate_limit_per_minute = serializers.IntegerField()
    open_tracking = serializers.BooleanField()
    click_tracking = serializers.BooleanField()
    created_at = TimestampField()


class WorkspaceView(APIView):
    required_scopes = {"GET": "workspace:read"}

    @extend_schema(summary="Get the workspace", responses=WorkspaceSerializer)
    def get(self, request):
        workspace = request.auth.workspace
        workspace.monthly_quota_used = monthly_quota_used(workspace_id=workspace.id)
        return Response(WorkspaceSerializer(workspace).data)
