from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from messaging.webhooks import selectors, services
from messaging.webhooks.api.serializers import (
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
)
from messaging.webhooks.models import DeliveryStatus, WebhookEndpoint
from pufferpost.openapi import PAGE_PARAMETERS, error, page_of, path_id
from pufferpost.pagination import paginate
from pufferpost.tenancy import WorkspaceScopedViewSet

SCOPE = "webhooks:manage"
WEBHOOK_ID = path_id("The webhook endpoint's `whk_…` id.")
BAD_PAGE = error("`validation_failed`: a bad `limit` or `cursor`.")


@extend_schema_view(
    list=extend_schema(
        summary="List webhook endpoints",
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(WebhookSerializer, name="WebhookPage"), 422: BAD_PAGE},
    ),
    create=extend_schema(
        summary="Create a webhook endpoint",
        description="The answer is the only one that includes the signing `secret`.",
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer},
    ),
    retrieve=extend_schema(summary="Get a webhook endpoint", parameters=[WEBHOOK_ID], responses=WebhookSerializer),
    destroy=extend_schema(summary="Delete a webhook endpoint", parameters=[WEBHOOK_ID], responses={204: None}),
    deliveries=extend_schema(
        summary="An endpoint's deliveries and their attempts",
        parameters=[
            WEBHOOK_ID,
            *PAGE_PARAMETERS,
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=DeliveryStatus.values, description="Only deliveries in this status."
            ),
        ],
        responses={
            200: page_of(WebhookDeliverySerializer, name="WebhookDeliveryPage"),
            422: error("`validation_failed`: a bad `limit`, `cursor` or `status`."),
        },
    ),
)
class WebhookViewSet(WorkspaceScopedViewSet):
    not_found_code = "webhook_not_found"
    not_found_message = "No webhook with that id in this workspace."
    required_scopes = {"GET": SCOPE, "POST": SCOPE, "DELETE": SCOPE}

    def base_queryset(self):
        return WebhookEndpoint.objects.filter(disabled_at__isnull=True)

    def list(self, request):
        rows, next_cursor = paginate(self.get_queryset(), request.query_params, scope=f"webhooks:{self.workspace.pk}")
        return Response({"data": WebhookSerializer(rows, many=True).data, "next_cursor": next_cursor})

    def create(self, request):
        body = WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_create(
            workspace=self.workspace, url=body.validated_data["url"], events=body.validated_data.get("events") or []
        )
        return Response(WebhookCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, id=None):
        return Response(WebhookSerializer(self.get_object()).data)

    def destroy(self, request, id=None):
        services.webhook_endpoint_delete(endpoint=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"])
    def deliveries(self, request, id=None):
        rows, next_cursor = selectors.webhook_delivery_log(endpoint=self.get_object(), params=request.query_params)
        return Response({"data": WebhookDeliverySerializer(rows, many=True).data, "next_cursor": next_cursor})
