"""`/v1/senders`: register and read senders. Approval is staff-only (admin, review_sender)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from pufferpost.openapi import error, page_of, path_id
from pufferpost.tenancy import WorkspaceScopedViewSet
from senders.models import Sender
from senders.serializers import SenderCreateSerializer, SenderSerializer
from senders.services import sender_create


@extend_schema_view(
    list=extend_schema(summary="List senders", responses=page_of(SenderSerializer, name="SenderList", paginated=False)),
    create=extend_schema(
        summary="Register a sender",
        description="The new sender starts `under_review`; staff approval moves it to `active`.",
        request=SenderCreateSerializer,
        responses={201: SenderSerializer, 409: error("`sender_exists`: a sender for that address already exists.")},
    ),
    retrieve=extend_schema(
        summary="Get a sender", parameters=[path_id("The sender's `snd_…` id.")], responses=SenderSerializer
    ),
)
class SenderViewSet(WorkspaceScopedViewSet):
    queryset = Sender.objects.all()
    not_found_code = "sender_not_found"
    not_found_message = "No such sender."
    required_scopes = {"list": "senders:read", "retrieve": "senders:read", "create": "senders:manage"}

    def list(self, request):
        return Response({"data": SenderSerializer(self.get_queryset(), many=True).data})

    def retrieve(self, request, id=None):
        return Response(SenderSerializer(self.get_object()).data)

    def create(self, request):
        body = SenderCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sender = sender_create(
            workspace=self.workspace,
            from_address=body.validated_data["fromAddress"],
            display_name=body.validated_data.get("displayName") or None,
        )
        return Response(SenderSerializer(sender).data, status=status.HTTP_201_CREATED)
