"""The console's one route, included last by `circleproject.urls` so `admin/` and `webhooks/` win."""

from django.urls import re_path

from console.views import circle_console

urlpatterns = [
    re_path(r"^(?P<circle_pk>[^/]+)/?$", circle_console, name="circle-console"),
]
