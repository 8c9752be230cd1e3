"""The sample's URLs, and ``/hello/``: the smallest Django view, for measuring the server rather than the page."""

from django.http import HttpResponse
from django.urls import include, path


def hello(request):
    return HttpResponse(b"Hello, world!\n", content_type="text/plain")


urlpatterns = [path("hello/", hello), path("", include("cherrytest.urls"))]
