"""The browser console: a page at `GET /{circle_pk}` that talks to the same path's WebSocket."""

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Browser console"
