"""`/v1/templates`: thin views over templates_app.services and templates_app.selectors."""

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from pufferpost.errors import ApiError
from pufferpost.openapi import PAGE_PARAMETERS, error, page_of, path_id
from pufferpost.pagination import paginate
from pufferpost.tenancy import WorkspaceScopedViewSet
from templates_app import selectors, services
from templates_app.formatting import normalize_locale
from templates_app.models import Template
from templates_app.serializers import (
    RenderedSerializer,
    RenderSerializer,
    TemplateCreateSerializer,
    TemplateSerializer,
    TemplateUpdateSerializer,
    VersionCreateSerializer,
    VersionSerializer,
)

READ, MANAGE = "templates:read", "templates:manage"

TEMPLATE_REF = path_id("The template's `tpl_…` id or its slug.")
VERSION_NUMBER = OpenApiParameter(
    "number", OpenApiTypes.INT, OpenApiParameter.PATH, description="The version number (1, 2, …)."
)
TEMPLATE_EXISTS = error("`template_exists`: another template in the workspace has this slug.")


def _parse(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema_view(
    list=extend_schema(
        summary="List templates",
        parameters=[
            *PAGE_PARAMETERS,
            OpenApiParameter(
                "include_archived", OpenApiTypes.BOOL, description="Include archived templates (`true` or `1`)."
            ),
        ],
        responses={
            200: page_of(TemplateSerializer, name="TemplatePage"),
            422: error("`validation_failed`: a bad `limit` or `cursor`."),
        },
    ),
    create=extend_schema(
        summary="Create a template",
        request=TemplateCreateSerializer,
        responses={201: TemplateSerializer, 409: TEMPLATE_EXISTS},
    ),
    retrieve=extend_schema(summary="Get a template", parameters=[TEMPLATE_REF], responses=TemplateSerializer),
    partial_update=extend_schema(
        summary="Rename a template or change its slug",
        parameters=[TEMPLATE_REF],
        request=TemplateUpdateSerializer,
        responses={200: TemplateSerializer, 409: TEMPLATE_EXISTS},
    ),
    destroy=extend_schema(summary="Archive a template", parameters=[TEMPLATE_REF], responses={204: None}),
    versions=extend_schema(
        summary="List a template's versions",
        parameters=[TEMPLATE_REF, *PAGE_PARAMETERS],
        responses={
            200: page_of(VersionSerializer, name="TemplateVersionPage"),
            422: error("`validation_failed`: a bad `limit` or `cursor`."),
        },
    ),
    version_detail=extend_schema(
        summary="Get one version",
        parameters=[TEMPLATE_REF, VERSION_NUMBER],
        responses={
            200: VersionSerializer,
            404: error("`template_not_found` or `template_version_not_found`."),
        },
    ),
    render=extend_schema(
        summary="Preview a rendering",
        description="Renders the latest (or the given) version with `data`, without sending.",
        parameters=[TEMPLATE_REF],
        request=RenderSerializer,
        responses={
            200: RenderedSerializer,
            422: error(
                "`validation_failed`, `template_has_no_version`, `template_version_not_found`, "
                "`template_render_failed` or `template_variables_missing` (a strict template; the envelope "
                "lists `missing_variables`)."
            ),
        },
    ),
)
class TemplateViewSet(WorkspaceScopedViewSet):
    queryset = Template.objects.all()
    not_found_code = "template_not_found"
    not_found_message = "No such template."
    required_scopes = {
        "list": READ,
        "retrieve": READ,
        "create": MANAGE,
        "partial_update": MANAGE,
        "destroy": MANAGE,
        "versions": READ,
        "version_create": MANAGE,
        "version_detail": READ,
        "render": READ,
    }

    def get_object(self):
        template = selectors.template_from_ref(self.get_queryset(), self.kwargs["id"])
        if template is None:
            raise NotFound()
        return template

    def list(self, request):
        include_archived = request.query_params.get("include_archived") in ("true", "1")
        queryset = self.get_queryset() if include_archived else self.get_queryset().active()
        scope = f"templates:{self.workspace.pk}:{int(include_archived)}"
        rows, next_cursor = paginate(queryset, request.query_params, scope=scope)
        return Response({"data": TemplateSerializer(rows, many=True).data, "next_cursor": next_cursor})

    def create(self, request):
        body = _parse(TemplateCreateSerializer, request)
        template = services.template_create(workspace=self.workspace, **body)
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, id=None):
        return Response(TemplateSerializer(self.get_object()).data)

    def partial_update(self, request, id=None):
        template = self.get_object()
        body = _parse(TemplateUpdateSerializer, request)
        template = services.template_update(template=template, **body)
        return Response(TemplateSerializer(template).data)

    def destroy(self, request, id=None):
        services.template_archive(template=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"], url_path="versions")
    def versions(self, request, id=None):
        template = self.get_object()
        rows, next_cursor = paginate(template.versions.all(), request.query_params, scope=f"versions:{template.pk}")
        for row in rows:
            row.template = template
        return Response({"data": VersionSerializer(rows, many=True).data, "next_cursor": next_cursor})

    @extend_schema(
        summary="Save a new version",
        description="Versions are immutable and numbered 1, 2, …; a syntax error is a 422 naming the field and line.",
        parameters=[TEMPLATE_REF],
        request=VersionCreateSerializer,
        responses={
            201: VersionSerializer,
            409: error("`template_archived`: the template is archived; it takes no new versions."),
        },
    )
    @versions.mapping.post
    def version_create(self, request, id=None):
        template = self.get_object()
        body = _parse(VersionCreateSerializer, request)
        version = services.template_version_create(template=template, **body)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]{1,9})")
    def version_detail(self, request, id=None, number=None):
        version = selectors.template_version_get(template=self.get_object(), version=int(number))
        if version is None:
            raise ApiError(status_code=404, code="template_version_not_found", message="No such template version.")
        return Response(VersionSerializer(version).data)

    @action(detail=True, methods=["post"], url_path="render")
    def render(self, request, id=None):
        template = self.get_object()
        body = _parse(RenderSerializer, request)
        version = selectors.template_version_get(template=template, version=body.get("version"))
        if version is None and body.get("version") is None:
            raise ApiError(
                status_code=422, code="template_has_no_version", message="The template has no saved version yet."
            )
        if version is None:
            raise ApiError(
                status_code=422, code="template_version_not_found", message="The template has no such version."
            )
        locale = body.get("locale") or normalize_locale(self.workspace.default_locale) or "en"
        rendered, missing = selectors.template_preview(
            version=version, data=body["data"], locale=locale, timezone=body.get("timezone") or "UTC"
        )
        payload = {**asdict(rendered), "version": version.version, "locale": locale, "missing_variables": missing}
        return Response(RenderedSerializer(payload).data)
