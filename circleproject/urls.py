"""HTTP routes: the Django admin and provider webhooks (WebSocket routes live in `circles.routing`)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("webhooks.urls")),
]
