"""Views that let tests see what the server did."""

import os
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import FileResponse, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import render

MAX_SLEEP = 10.0


def index(request):
    """A page with a picture from MEDIA_URL and a stylesheet from STATIC_URL."""
    return render(request, "project/index.html", {"media_url": settings.MEDIA_URL})


def sleep(request):
    """Sleep ``?seconds=`` (0 to 10, default 0.5) and say how long: a slow view for concurrency and stopping. With
    ``?say=WORD``, it first writes "sleeping: WORD" to standard error, for a test to wait on."""
    try:
        seconds = float(request.GET.get("seconds", "0.5"))
    except ValueError:
        return HttpResponseBadRequest("seconds must be a number\n", content_type="text/plain")
    if not 0 <= seconds <= MAX_SLEEP:
        return HttpResponseBadRequest("seconds out of range\n", content_type="text/plain")
    if "say" in request.GET:
        print(f"sleeping: {request.GET['say']}", file=sys.stderr, flush=True)
    started = time.monotonic()
    time.sleep(seconds)
    return JsonResponse({"slept": round(time.monotonic() - started, 3)})


def headers(request):
    """The request's HTTP_* environ keys and values, as JSON."""
    return JsonResponse({key: value for key, value in request.META.items() if key.startswith("HTTP_")})


def client(request):
    """Who the request came from, as Django sees it: address, scheme, host, and the forwarding headers left."""
    return JsonResponse(
        {
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "is_secure": request.is_secure(),
            "absolute_uri": request.build_absolute_uri("/x/"),
            "forwarded": sorted(key for key in request.META if "FORWARDED" in key),
        }
    )


def pid(request):
    """The process that answered, after ``?seconds=`` (default 0): which worker of ``--workers``."""
    time.sleep(min(float(request.GET.get("seconds", "0")), MAX_SLEEP))
    return JsonResponse({"pid": os.getpid()})


def slow_redirect(request):
    """Sleep ``?seconds=`` then redirect: a response with an empty body."""
    time.sleep(float(request.GET.get("seconds", "0.3")))
    return HttpResponseRedirect("/")


def file_response(request):
    """Django's FileResponse of a media file: it goes out through the server's wsgi.file_wrapper."""
    return FileResponse(open(Path(settings.MEDIA_ROOT) / "picture.png", "rb"))


def user_count(request):
    """How many users the database holds, as the server's thread sees it."""
    return JsonResponse({"users": get_user_model().objects.count()})
