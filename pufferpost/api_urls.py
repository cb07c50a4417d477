from django.urls import path

from pufferpost.api import WorkspaceView

urlpatterns = [
    path("workspace", WorkspaceView.as_view(), name="workspace"),
]
