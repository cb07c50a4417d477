from django.urls import include, path
from rest_framework.routers import SimpleRouter

from messaging.views import MessageViewSet, StatsView, SuppressionViewSet, UnsubscribeGroupViewSet
from messaging.workspace_api import WorkspaceView

router = SimpleRouter(trailing_slash=False)
router.register("messages", MessageViewSet, basename="message")
router.register("suppressions", SuppressionViewSet, basename="suppression")
router.register("unsubscribe-groups", UnsubscribeGroupViewSet, basename="unsubscribe-group")

urlpatterns = [
    *router.urls,
    path("", include("messaging.webhooks.urls")),
    path("workspace", WorkspaceView.as_view(), name="workspace"),
    path("stats", StatsView.as_view(), name="stats"),
]
