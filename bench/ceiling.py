"""The send path's ceiling: a bare DRF endpoint that validates a similar body, INSERTs one row and
enqueues one Celery task — the least any accept-then-deliver endpoint must do.

No authentication, no rate limit, no template/sender checks: the gap between this and
POST /v1/messages is what PufferPost's own logic costs.
"""

import json

from celery import shared_task
from django.db import connection, transaction
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

TABLE = "bench_ceiling"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    from_address text NOT NULL,
    "to" text NOT NULL,
    template_id text NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class CeilingSerializer(serializers.Serializer):
    locals()["from"] = serializers.EmailField()
    to = serializers.EmailField()
    templateId = serializers.CharField(max_length=64)
    data = serializers.DictField(required=False)
    metadata = serializers.DictField(child=serializers.CharField(max_length=500), required=False)
    locale = serializers.CharField(max_length=35, required=False)
    timezone = serializers.CharField(max_length=64, required=False)


@shared_task(name="bench.ceiling.accepted", ignore_result=True)
def accepted(row_id: int) -> None:
    """Never run during the bench (no worker consumes the queue); the queue is purged afterwards."""


class CeilingView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        serializer = CeilingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        body = serializer.validated_data
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f'INSERT INTO {TABLE} (from_address, "to", template_id, data, metadata) '
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    [
                        body["from"],
                        body["to"],
                        body["templateId"],
                        json.dumps(body.get("data") or {}),
                        json.dumps(body.get("metadata") or {}),
                    ],
                )
                row_id = cursor.fetchone()[0]
            transaction.on_commit(lambda: accepted.delay(row_id))
        return Response({"id": row_id, "status": "accepted"}, status=202)
