from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from domains import services
from domains.models import Domain
from domains.serializers import DomainCreateSerializer, DomainSerializer, RefreshSerializer
from pufferpost.openapi import EMPTY_BODY, OPT_IN_PAGE_PARAMETERS, error, page_of, path_id
from pufferpost.pagination import page_response_parts, paginate_opt_in
from pufferpost.tenancy import WorkspaceScopedViewSet

DOMAIN_ID = path_id("The domain's `dom_…` id.")


@extend_schema_view(
    list=extend_schema(
        summary="List domains",
        parameters=OPT_IN_PAGE_PARAMETERS,
        responses={
            200: page_of(DomainSerializer, name="DomainList", paginated="opt-in"),
            422: error("`validation_failed`: a bad `limit` or `cursor`."),
        },
    ),
    create=extend_schema(
        summary="Add a sending domain",
        request=DomainCreateSerializer,
        responses={
            201: OpenApiResponse(DomainSerializer, description="Created."),
            200: OpenApiResponse(DomainSerializer, description="The domain already exists: its current record."),
            409: error("`domain_limit_reached`: the workspace has as many domains as staff allow it."),
        },
    ),
    retrieve=extend_schema(summary="Get a domain", parameters=[DOMAIN_ID]),
    destroy=extend_schema(summary="Delete a domain", parameters=[DOMAIN_ID], responses={204: None}),
    rotate_dkim=extend_schema(
        summary="Rotate the DKIM key",
        description=(
            "Issues a new signing key under a new selector. `dns_records` lists its record as `pending` beside "
            "the `active` one; signing switches to the new key only once its record verifies (refresh), and the "
            "old record is then listed as `retiring` until `keep_until`. Webhook events "
            "`domain.dkim_rotation_started` and `domain.dkim_rotation_completed` mark both steps."
        ),
        parameters=[DOMAIN_ID],
        request=EMPTY_BODY,
        responses={
            200: DomainSerializer,
            409: error("`dkim_rotation_in_progress` (one rotation at a time) or `dkim_key_not_issued`."),
        },
    ),
    refresh=extend_schema(
        summary="Re-check DKIM and DMARC",
        parameters=[DOMAIN_ID],
        request=EMPTY_BODY,
        responses={200: DomainSerializer},
    ),
)
class DomainViewSet(mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    serializer_class = DomainSerializer
    not_found_code = "domain_not_found"
    not_found_message = "No such domain."
    required_scopes = {
        "list": "domains:read",
        "retrieve": "domains:read",
        "create": "domains:manage",
        "destroy": "domains:manage",
        "refresh": "domains:manage",
        "rotate_dkim": "domains:manage",
    }

    def base_queryset(self):
        return Domain.objects.defer("dkim_private_key")

    def list(self, request):
        rows, next_cursor, paginated = paginate_opt_in(
            self.get_queryset(), request.query_params, scope=f"domains:{self.workspace.pk}"
        )
        body, headers = page_response_parts(request, DomainSerializer(rows, many=True).data, next_cursor, paginated)
        return Response(body, headers=headers)

    def create(self, request):
        body = DomainCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        domain, created = services.domain_create(workspace=self.workspace, domain=body.validated_data["domain"])
        return Response(
            DomainSerializer(domain).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    def destroy(self, request, id=None):
        services.domain_delete(domain=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def refresh(self, request, id=None):
        domain = self.get_object()
        RefreshSerializer(data=request.data).is_valid(raise_exception=True)
        return Response(DomainSerializer(services.domain_refresh(domain=domain)).data)

    @action(detail=True, methods=["post"], url_path="dkim/rotate")
    def rotate_dkim(self, request, id=None):
        domain = self.get_object()
        RefreshSerializer(data=request.data).is_valid(raise_exception=True)
        return Response(DomainSerializer(services.domain_dkim_rotate(domain=domain)).data)
