"""WebSocket routes: one endpoint per circle, addressed by its public key."""

from django.urls import re_path

from circles.consumer import CircleConsumer

# Every path reaches the consumer, which canonicalises the key and closes 4404 for anything
# that is not an active circle (a router miss would be an opaque HTTP 500 instead).
websocket_urlpatterns = [
    # django-stubs types the view as an HTTP view; channels' URLRouter takes an ASGI app there.
    re_path(r"^(?P<circle_pk>.*)$", CircleConsumer.as_asgi()),  # type: ignore[arg-type]
]
