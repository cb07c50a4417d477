"""`/v1/senders`: register and read senders. Approval is staff-only (admin, review_sender)."""

from rest_framework import status
from rest_framework.response import Response

from pufferpost.tenancy import WorkspaceScopedViewSet
from senders.models import Sender
from senders.serializers import SenderCreateSerializer, SenderSerializer
from senders.services import sender_create


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
