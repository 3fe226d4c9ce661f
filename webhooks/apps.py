"""App config for webhooks: provider endpoints, received events and their processing."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """The webhooks app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"
