"""End to end: headless Chromium, driven by Playwright, against the cheroot live server.

Needs the distribution's Chromium (``apt-get install chromium``) and the ``playwright`` package; without them the
tests skip on a developer's machine and fail under CI (CI is set), where ``.ci/run`` installs both.
"""

import os
import re
import shutil

import pytest

from cherrytest.app.tiles import grid

from .tools import unavailable
from .waiting import eventually

pytestmark = pytest.mark.slow  # drives Chromium

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox as root; no background traffic to Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package (requirements-test.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    # Opened and closed within each test: Playwright's event loop must not be running on this thread when
    # pytest-django flushes the database afterwards (Django refuses database calls from an async context).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_the_live_server_serves_a_page_with_its_picture_and_stylesheet(page, cherrypy_live_server):
    page.goto(cherrypy_live_server + "/", wait_until="load")
    assert page.evaluate("Array.from(document.images, image => [image.complete, image.naturalWidth])") == [[True, 40]]
    assert page.evaluate("getComputedStyle(document.body).marginTop") == "0px"  # site.css applied


def test_the_sample_tile_page_shows_all_36_tiles(page, sample_server, tmp_path):
    page.goto(sample_server.url, wait_until="load")
    images = page.evaluate(
        "Array.from(document.images, image => [image.complete, image.naturalWidth, image.naturalHeight])"
    )
    expected = [(True, tile.width, tile.height) for row in grid() for tile in row]
    assert [tuple(image) for image in images] == expected
    page.screenshot(path=tmp_path / "tiles.png")


def test_the_sample_ajax_page_answers_20_slow_requests_at_once(page, sample_server):
    page.goto(sample_server.url + "ajax/")
    result = page.wait_for_selector('#result:is([data-state="done"], [data-state="failed"])', timeout=20_000)
    assert result.get_attribute("data-state") == "done", result.inner_text()
    seconds = float(result.get_attribute("data-seconds"))
    # 20 requests of 0.5 s: 10 s one at a time; about 2 s over the browser's six connections.
    assert seconds < 3, result.inner_text()


def test_the_sample_video_can_be_seeked(page, sample_server):
    page.goto(sample_server.url + "video/")
    state = page.evaluate(
        """async () => {
            const video = document.getElementById("video");
            if (video.readyState < 1) {
                await new Promise((resolve, reject) => {
                    video.addEventListener("loadedmetadata", resolve, {once: true});
                    video.addEventListener("error", () => reject(new Error("video error")), {once: true});
                });
            }
            const seeked = new Promise(resolve => video.addEventListener("seeked", resolve, {once: true}));
            video.currentTime = 7.5;
            await seeked;
            await video.play();
            await new Promise(resolve => setTimeout(resolve, 300));
            video.pause();
            return {duration: video.duration, time: video.currentTime, readyState: video.readyState};
        }"""
    )
    assert state["duration"] == pytest.approx(10, abs=0.1)
    assert 7.5 <= state["time"] < 9.5  # it seeked, then played on from there
    assert state["readyState"] >= 2  # HAVE_CURRENT_DATA: the frame at 7.5 s arrived
    partial = sample_server.wait_for(re.compile(r'"GET /media/app/video/zoom\.webm HTTP/1\.1" 206 '), timeout=5)
    assert partial, "the browser's byte-range requests were not answered with 206"


def test_django_browser_reload_reloads_the_page_after_a_code_change(page, project, reloading):
    # The sample enables django-browser-reload (a test requirement): the page's worker holds an event stream open,
    # which the reload ends cleanly; the worker reconnects, and the new process's version makes it reload the page.
    from .test_reload import replace

    server = reloading("--shutdown-timeout", "30")
    page.goto(server.url, wait_until="load")
    page.evaluate("window.beforeTheReload = true")
    views = project / "cherrytest/app/views.py"
    original = views.read_text()
    edits = iter(range(1000))

    def reloaded():
        if page.evaluate("window.beforeTheReload === true"):
            # Not yet: the worker may not have been connected when the file was saved; save again.
            number = next(edits)
            replace(views, original.replace('{"slept":', f'{{"edit": {number}, "slept":'))
            page.wait_for_timeout(1000)  # Playwright's own wait, which lets the page run
            return False
        return True

    eventually(reloaded, timeout=30, interval=0)
    page.wait_for_load_state("load")
    assert page.evaluate("document.images.length") == 36
    assert server.process.poll() is None and "Traceback" not in server.output
