"""The sample project's URLs plus views that let tests see what the server did."""

import time

from django.http import HttpResponseRedirect, JsonResponse
from django.urls import include, path


def headers(request):
    """The request's HTTP_* environ keys and values, as JSON."""
    return JsonResponse({key: value for key, value in request.META.items() if key.startswith("HTTP_")})


def slow_redirect(request):
    """Sleep ``?seconds=`` then redirect: a response with an empty body."""
    time.sleep(float(request.GET.get("seconds", "0.3")))
    return HttpResponseRedirect("/")


urlpatterns = [
    path("test/headers/", headers),
    path("test/slow-redirect/", slow_redirect),
    path("", include("cherrytest.urls")),
]
