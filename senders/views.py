"""`/v1/senders`: register and read senders. Approval is staff-only (admin, review_sender)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from pufferpost.openapi import OPT_IN_PAGE_PARAMETERS, error, page_of, path_id
from pufferpost.pagination import page_response_parts, paginate_opt_in
from pufferpost.tenancy import WorkspaceScopedViewSet
from senders.models import Sender
from senders.serializers import SenderCreateSerializer, SenderSerializer
from senders.services import sender_create


@extend_schema_view(
    list=extend_schema(
        summary="List senders",
        parameters=OPT_IN_PAGE_PARAMETERS,
        responses={
            200: page_of(SenderSerializer, name="SenderList", paginated="opt-in"),
            422: error("`validation_failed`: a bad `limit` or `cursor`."),
        },
    ),
    create=extend_schema(
        summary="Register a sender",
        description="The new sender starts `under_review`; staff approval moves it to `active`.",
        request=SenderCreateSerializer,
        responses={
            201: SenderSerializer,
            409: error(
                "`sender_exists`: a sender for that address already exists; `sender_limit_reached`: the "
                "workspace has as many senders as staff allow it."
            ),
        },
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
        rows, next_cursor, paginated = paginate_opt_in(
            self.get_queryset(), request.query_params, scope=f"senders:{self.workspace.pk}"
        )
        body, headers = page_response_parts(request, SenderSerializer(rows, many=True).data, next_cursor, paginated)
        return Response(body, headers=headers)

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
