import json
import os
import threading
import time

from django.conf import settings
from django.http import HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from .tiles import PICTURE_SIZE, grid

MAX_SLEEP = 5.0  # seconds; the sleep view is for concurrency tests, not for tying up workers


def tiles(request):
    """The picture, reassembled from its tiles, each one an <img> served from MEDIA_URL."""
    width, height = PICTURE_SIZE
    rows = grid()
    return render(
        request,
        "app/tiles.html",
        {
            "rows": rows,
            "tile_count": sum(len(row) for row in rows),
            "width": width,
            "height": height,
            "media_url": f"{settings.MEDIA_URL}app/",
        },
    )


AJAX_COUNT = 20
AJAX_SECONDS = 0.5
BROWSER_CONNECTIONS_PER_HOST = 6  # what Chromium and Firefox open to one host over HTTP/1.1


def ajax(request):
    """A page that fires 20 fetch() calls at once at the sleep view and shows how long they took in all."""
    waves = -(-AJAX_COUNT // BROWSER_CONNECTIONS_PER_HOST)
    return render(
        request,
        "app/ajax.html",
        {
            "count": AJAX_COUNT,
            "seconds": AJAX_SECONDS,
            "serial_seconds": f"{AJAX_COUNT * AJAX_SECONDS:g}",
            "best_seconds": f"{waves * AJAX_SECONDS:g}",
        },
    )


def video(request):
    """A page with a video from MEDIA_URL, to seek in: the browser asks for byte ranges."""
    return render(request, "app/video.html", {"src": f"{settings.MEDIA_URL}app/video/zoom.webm"})


def sleep(request):
    """Sleep ``?seconds=`` (0 to 5, default 0.5) and say so: a slow view for concurrency checks."""
    try:
        seconds = float(request.GET.get("seconds", "0.5"))
    except ValueError:
        return HttpResponseBadRequest("seconds must be a number\n", content_type="text/plain")
    if not 0 <= seconds <= MAX_SLEEP:
        return HttpResponseBadRequest(f"seconds must be between 0 and {MAX_SLEEP:g}\n", content_type="text/plain")
    started = time.monotonic()
    time.sleep(seconds)
    return JsonResponse({"slept": round(time.monotonic() - started, 3)})


def _seconds(request, name, default, least, most):
    """``?name=`` as seconds between ``least`` and ``most``, or an error response."""
    try:
        seconds = float(request.GET.get(name, default))
    except ValueError:
        return None, HttpResponseBadRequest(f"{name} must be a number\n", content_type="text/plain")
    if not least <= seconds <= most:
        return None, HttpResponseBadRequest(
            f"{name} must be between {least:g} and {most:g}\n", content_type="text/plain"
        )
    return seconds, None


def events(request):
    """Server-sent events (``text/event-stream``), one every ``?interval=`` seconds (0.05 to 10, default 1), for
    as long as the client listens: a stream that never ends by itself, as a live feed or django-browser-reload's
    is. Each event carries its number and the serving process's id, which changes at each reload."""
    interval, error = _seconds(request, "interval", "1", 0.05, 10)
    if error:
        return error

    def stream():
        yield b"retry: 500\n\n"  # reconnect after half a second, not the browser's default 3 s
        number = 0
        while True:
            number += 1
            yield f"data: {json.dumps({'n': number, 'pid': os.getpid()})}\n\n".encode()
            time.sleep(interval)

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


poll_event = threading.Event()
"""What a long poll waits for; nothing in the sample sets it, so each poll runs out its time."""


def poll(request):
    """A long poll: the answer comes when something happens, or after ``?seconds=`` (0 to 60, default 30) with
    nothing. Written as a stream, whose body starts once there is something to say, so that the server can tell it
    apart from a slow request (a stop or a reload ends it at once, with a 503 that asks the client to retry)."""
    seconds, error = _seconds(request, "seconds", "30", 0, 60)
    if error:
        return error

    def answer():
        happened = poll_event.wait(seconds)
        yield json.dumps({"happened": happened}).encode()

    return StreamingHttpResponse(answer(), content_type="application/json")
