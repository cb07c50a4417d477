from django.urls import path

from messaging.webhooks.api.views import WebhookViewSet

urlpatterns = [
    path("webhooks", WebhookViewSet.as_view({"get": "list", "post": "create"}), name="webhook-list"),
    path("webhooks/<str:id>", WebhookViewSet.as_view({"get": "retrieve", "delete": "destroy"}), name="webhook-detail"),
    path("webhooks/<str:id>/deliveries", WebhookViewSet.as_view({"get": "deliveries"}), name="webhook-deliveries"),
]
