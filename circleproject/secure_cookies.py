"""Secure cookies on HTTPS requests, whatever the settings say.

`CIRCLES_TLS=1` sets SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE for a site served only over
HTTPS. Without it, a request that arrived over HTTPS still gets every cookie marked `Secure`:
`request.is_secure()` is the ASGI scope's scheme, which `python -m circleproject.serve` takes from
`X-Forwarded-Proto` only when the peer is in `CIRCLES_TRUSTED_PROXIES` (uvicorn's proxy headers;
SECURE_PROXY_SSL_HEADER, which would believe any client, stays unset).
"""

from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin


class SecureCookiesOnHttpsMiddleware(MiddlewareMixin):
    """Marks the response's cookies `Secure` when the request came over HTTPS (sync and async alike)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Add `Secure` to every cookie set on an HTTPS request's response."""
        if request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        return response
