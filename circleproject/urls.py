"""HTTP routes: the Django admin (WebSocket routes live in `circles.routing`)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
