from django.urls import path

from bench.ceiling import CeilingView
from pufferpost.urls import handler400, handler404, handler500, urlpatterns as app_urlpatterns  # noqa: F401

urlpatterns = [path("bench/ceiling", CeilingView.as_view()), *app_urlpatterns]
