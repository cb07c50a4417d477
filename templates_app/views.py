"""`/v1/templates`: thin views over templates_app.services and templates_app.selectors."""

from dataclasses import asdict

from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from pufferpost.errors import ApiError
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


def _parse(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


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
        rendered = selectors.template_preview(
            version=version, data=body["data"], locale=locale, timezone=body.get("timezone") or "UTC"
        )
        payload = {**asdict(rendered), "version": version.version, "locale": locale}
        return Response(RenderedSerializer(payload).data)
