"""HTTP routes: the admin, provider webhooks and the console (WebSockets: `circles.routing`)."""

from django.contrib import admin
from django.urls import include, path

from circleproject import health, metrics
from circles import auth_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("webhooks.urls")),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", metrics.metrics_view),
    path("auth/nonce", auth_views.nonce),
    path("auth/health", auth_views.health),
    path("", include("console.urls")),  # GET /{circle_pk}: last, so every other route wins
]
