from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from pufferpost import health, metrics
from pufferpost.admin_shaping import shaping_admin_view

urlpatterns = [
    path("admin/shaping/", shaping_admin_view, name="admin-shaping"),
    # A newcomer opening the server's address lands on the API docs, not a bare 404.
    path("", RedirectView.as_view(pattern_name="api-docs", permanent=False), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("v1/", include("domains.urls")),
    path("v1/", include("senders.urls")),
    path("v1/", include("templates_app.urls")),
    path("v1/", include("messaging.urls")),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("", include("messaging.tracking.urls")),
]
if settings.PUFFERPOST_SERVE_STATIC:
    # Collected files only (STATIC_ROOT), with serve()'s own path checks; see PUFFERPOST_SERVE_STATIC.
    urlpatterns.insert(
        0, re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}, name="static")
    )

handler400 = "pufferpost.errors.bad_request_view"
handler404 = "pufferpost.errors.not_found_view"
handler500 = "pufferpost.errors.server_error_view"
