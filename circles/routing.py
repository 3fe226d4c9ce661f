"""WebSocket routes: one endpoint per circle, addressed by its public key."""

from django.urls import re_path

from circles.consumer import CircleConsumer

# Anything up to the first slash; the consumer canonicalises the key and closes 4404 if unknown.
websocket_urlpatterns = [
    re_path(r"^(?P<circle_pk>[^/]+)/?$", CircleConsumer.as_asgi()),
]
