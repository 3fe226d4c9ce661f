"""HTTP routes: the admin, provider webhooks and the console (WebSockets: `circles.routing`)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("webhooks.urls")),
    path("", include("console.urls")),  # GET /{circle_pk}: last, so every other route wins
]
