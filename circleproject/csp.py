"""`Content-Security-Policy` on every response (Django 5.2 has no CSP of its own).

The console (`console/`) and the admin load scripts and styles only from their own static files,
with no inline script, inline style attribute or `eval`, so the policy allows `'self'` and
nothing else; the console's WebSocket is `connect-src 'self'` (same host and port, ws or wss).
The policy is `CIRCLES_CONTENT_SECURITY_POLICY`; empty sends none. A response that already
carries the header keeps its own.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds the configured policy to responses that have none (sync and async alike)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Set the header unless the policy is empty or the response set its own."""
        policy = settings.CIRCLES_CONTENT_SECURITY_POLICY
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response
