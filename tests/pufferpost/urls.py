"""Test-only routes that misbehave on purpose, mounted beside the real ones."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from pufferpost.serializers import EmailField, StrictSerializer


class _Body(StrictSerializer):
    email = EmailField()
    cc = serializers.ListField(child=EmailField(), required=False, max_length=3)


class BoomView(APIView):
    required_scopes = {"GET": "workspace:read", "POST": "workspace:read"}

    def get(self, request):
        raise RuntimeError("kaboom")

    def post(self, request):
        body = _Body(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(body.validated_data)


urlpatterns = [
    path("v1/test/boom", BoomView.as_view()),
    path("", include("pufferpost.urls")),
]
