"""`GET /{circle_pk}`: the console page of an active circle, or a 404 page that says why.

The WebSocket upgrade on the same path never reaches Django (the ASGI router sends it to the
consumer), so this view only ever serves the HTML; the page does everything else in JS.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from auth_secp import InvalidPublicKey, canonical_public_key
from circles.models import Circle


@require_GET
def circle_console(request: HttpRequest, circle_pk: str) -> HttpResponse:
    """The console for the circle `circle_pk` (any accepted key form); 404 if there is no such circle."""
    try:
        key = canonical_public_key(circle_pk)
    except InvalidPublicKey:
        key = None
    circle = Circle.objects.filter(public_key=key, is_active=True).first() if key else None
    if circle is None:
        return render(request, "console/not_found.html", {"circle_pk": circle_pk[:200]}, status=404)
    return render(request, "console/console.html", {"circle": circle})
