"""App config for circles: circles, their members, and the WebSocket endpoint."""

from django.apps import AppConfig


class CirclesConfig(AppConfig):
    """The circles app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "circles"
