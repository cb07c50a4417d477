from django.urls import path

from bench.ceiling import CeilingView
from pufferpost.urls import handler400, handler404, handler500  # noqa: F401
from pufferpost.urls import urlpatterns as app_urlpatterns

urlpatterns = [path("bench/ceiling", CeilingView.as_view()), *app_urlpatterns]
