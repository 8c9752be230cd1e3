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


def user_count(request):
    """How many users the database holds, as the server's thread sees it."""
    from django.contrib.auth import get_user_model

    return JsonResponse({"users": get_user_model().objects.count()})


urlpatterns = [
    path("test/users/", user_count),
    path("test/headers/", headers),
    path("test/slow-redirect/", slow_redirect),
    path("", include("cherrytest.urls")),
]


def file_response(request):
    """Django's FileResponse of the sample picture: it goes out through the server's wsgi.file_wrapper."""
    from django.conf import settings
    from django.http import FileResponse

    return FileResponse(open(settings.BASE_DIR / "cherrytest/app/media/picture.png", "rb"))


urlpatterns.insert(0, path("test/file-response/", file_response))
