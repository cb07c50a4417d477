"""Public routes mail points at (built by messaging.tracking.links); mounted at the site root."""

from django.urls import path

from messaging.tracking import views

urlpatterns = [
    path("u/<str:token>", views.unsubscribe, name="tracking-unsubscribe"),
    path("t/o/<str:token>.gif", views.open_pixel, name="tracking-open"),
    path("t/c/<str:token>", views.click, name="tracking-click"),
]
