import time

from django.conf import settings
from django.http import HttpResponseBadRequest, JsonResponse
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
