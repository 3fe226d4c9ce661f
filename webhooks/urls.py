"""Webhook routes: `POST /webhooks/{provider}/{circle_pk}` (a trailing slash is accepted too)."""

from django.urls import re_path

from webhooks.views import WebhookView

urlpatterns = [
    re_path(
        r"^webhooks/(?P<provider>[a-z0-9_-]{1,32})/(?P<circle_pk>[0-9a-zA-Z]{1,140})/?\Z",
        WebhookView.as_view(),
    ),
]
