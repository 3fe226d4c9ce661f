"""`GET /auth/nonce` and `GET /auth/health` served on the event loop, outside Django's middleware chain.

Why: through Django's ASGI handler every HTTP request hops between threads a dozen times (a
sync-only middleware, WhiteNoise, runs in a thread of the request's own, and every
`MiddlewareMixin` hook goes through `sync_to_async`), and each request starts a thread and a
second one to join it. Under a reconnect storm the event loop is never idle, so each hop waits
for the GIL's switch interval: a process then served a handful of these requests per second,
its Redis replies were read too late for their timeouts, clients timed out and came back, and
the storm never ended (docs/benchmarks/reconnect.md). These two routes need no session, CSRF,
user, message or static file: they are answered here with the same views, the same host check
(ALLOWED_HOSTS, 400) and the same response headers, taken from the header-only middleware
themselves (`HEADER_MIDDLEWARE`, called directly: they do no I/O), so nothing hops.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable

from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from circleproject.body_limits import App, Receive, Scope, Send
from circleproject.csp import ContentSecurityPolicyMiddleware

View = Callable[[HttpRequest], Awaitable[HttpResponse]]

# The middleware of settings.MIDDLEWARE that touch a JSON response to a GET: headers (and
# SecurityMiddleware's HTTPS redirect when configured). The others (sessions, CSRF, auth,
# messages, WhiteNoise, axes) do nothing for these routes.
HEADER_MIDDLEWARE = (SecurityMiddleware, XFrameOptionsMiddleware, ContentSecurityPolicyMiddleware)


def _unused(request: HttpRequest) -> HttpResponse:  # the middleware's get_response, never called
    raise AssertionError("direct routes call the middleware hooks themselves")


class DirectRoutes:
    """Wraps an ASGI HTTP app: `routes` (exact paths) are answered by their async views here."""

    def __init__(self, app: App, routes: dict[str, View]) -> None:
        self.app = app
        self.routes = routes
        self.middleware = [cls(_unused) for cls in HEADER_MIDDLEWARE]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve `scope`: one of our routes here, anything else by the wrapped app."""
        view = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if view is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away
            return
        response = await self.respond(ASGIRequest(scope, io.BytesIO(body)), view)
        await send_response(response, send)

    async def respond(self, request: ASGIRequest, view: View) -> HttpResponse:
        """The view's response with the headers Django's middleware would add."""
        try:
            request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it
        except DisallowedHost:
            response: HttpResponse = JsonResponse({"error": "host not allowed"}, status=400)
        else:
            response = self._before(request) or await view(request)
        for middleware in reversed(self.middleware):
            response = middleware.process_response(request, response)  # type: ignore[assignment]
        return response

    def _before(self, request: HttpRequest) -> HttpResponse | None:
        for middleware in self.middleware:
            hook = getattr(middleware, "process_request", None)
            answer = hook(request) if hook is not None else None
            if answer is not None:
                return answer
        return None


async def read_body(receive: Receive) -> bytes | None:
    """The request body (BodyLimits has bounded it already); None when the client disconnected."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_response(response: HttpResponse, send: Send) -> None:
    """Send a non-streaming Django response as ASGI messages (with Content-Length, as CommonMiddleware)."""
    content = response.content
    if not response.has_header("Content-Length"):
        response["Content-Length"] = str(len(content))
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"set-cookie", cookie.output(header="").strip().encode("latin-1")))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": content})
