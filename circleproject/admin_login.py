"""The client address django-axes throttles admin sign-ins by.

`REMOTE_ADDR` as the ASGI server set it: `python -m circleproject.serve` puts the forwarded client
there only for peers in `CIRCLES_TRUSTED_PROXIES`. Named explicitly (AXES_CLIENT_IP_CALLABLE) so
that axes never reads `X-Forwarded-For` itself (it would through django-ipware, if installed).
"""

from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The request's peer address as the server resolved it (None when unknown)."""
    return request.META.get("REMOTE_ADDR") or None
