"""The project's routes plus `POST /bare/`: a DRF view that answers 200 and does nothing else."""

from django.urls import path
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from circleproject.urls import urlpatterns as project_urlpatterns


class BareView(APIView):
    """The baseline: the same DRF stack as the webhook view (no auth, JSON renderer), no work."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]

    def post(self, request, *args, **kwargs) -> Response:
        request.body  # read the body, as the webhook view does  # noqa: B018
        return Response({"status": "ok"})


urlpatterns = [path("bare/", BareView.as_view()), *project_urlpatterns]
