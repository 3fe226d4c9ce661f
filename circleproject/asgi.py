"""ASGI entry point: HTTP goes to Django, WebSockets through the origin check to the circles."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "circleproject.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from circleproject import log_filters  # noqa: E402
from circleproject.body_limits import BodyLimits, settings_cap  # noqa: E402
from circleproject.direct_routes import DirectRoutes  # noqa: E402
from circles import auth_views  # noqa: E402
from circles.admission import AdmissionControl  # noqa: E402
from circles.origin import CircleOriginValidator  # noqa: E402
from circles.routing import websocket_urlpatterns  # noqa: E402
from webhooks.processing import ensure_local_sweeper  # noqa: E402

log_filters.install()
# Embedded mode: due webhook retries run from the start, not from the first webhook request.
ensure_local_sweeper()

application = ProtocolTypeRouter(
    {
        # Body caps (413) and the body read timeout (408) are decided before Django reads a byte.
        # The sign-in nonce routes skip Django's thread-hopping middleware chain (a reconnect
        # storm fetches thousands at once; circleproject/direct_routes.py).
        "http": BodyLimits(
            DirectRoutes(
                django_asgi_app,
                {"/auth/nonce": auth_views.nonce, "/auth/health": auth_views.health},
            ),
            cap_for=settings_cap,
            timeout=settings.CIRCLES_HTTP_BODY_TIMEOUT_SECONDS,
        ),
        # Admission control first: a refused handshake costs neither the origin check nor a
        # channel-layer name (circles/admission.py).
        "websocket": AdmissionControl(
            CircleOriginValidator(
                # The channels stubs want their own URLPattern subclass, which `re_path` never returns.
                URLRouter(websocket_urlpatterns),  # type: ignore[arg-type]
                allowed_origins=settings.CIRCLES_ALLOWED_ORIGINS,
                allow_missing=settings.CIRCLES_ALLOW_MISSING_ORIGIN,
            )
        ),
    }
)

# What is loaded by now lives as long as the process: frozen out of the collector's sight, a full
# collection scans only what connections made since (it cost a fifth of a sign-in in the URL's
# server CPU, docs/benchmarks/ws_rpc.md).
gc.collect()
gc.freeze()
