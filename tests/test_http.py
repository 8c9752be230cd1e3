"""runcherrypy over real HTTP on loopback: the sample's page and its tiles; on the tests' project, static files,
validators, safety, concurrency and a graceful stop."""

import json
import re
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cherrytest.app.tiles import grid

from .http import fetch, fetch_at_once
from .process import ROOT
from .waiting import eventually


def png_size(data):
    """``(width, height)`` from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def tile_sources(page):
    return re.findall(r'<img src="([^"]+)" width="(\d+)" height="(\d+)"', page)


def test_the_sample_page_lists_36_tiles(sample_server):
    status, headers, body = fetch(sample_server, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    sources = tile_sources(body.decode())
    assert len(sources) == 36
    assert all(src.startswith("/media/app/tiles/") for src, _, _ in sources)


def test_all_36_tiles_of_the_sample_load_at_once_with_their_sizes(sample_server):
    server = sample_server
    _, _, body = fetch(server, "/")
    sources = tile_sources(body.decode())
    expected = [(tile.width, tile.height) for row in grid() for tile in row]
    assert [(int(w), int(h)) for _, w, h in sources] == expected

    # As a browser does: every tile requested at once.
    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        responses = list(pool.map(lambda source: fetch(server, source[0]), sources))
    for (src, width, height), (status, headers, data) in zip(sources, responses, strict=True):
        assert status == 200, src
        assert headers["Content-Type"] == "image/png"
        assert int(headers["Content-Length"]) == len(data)
        assert png_size(data) == (int(width), int(height)), src
    assert {png_size(data)[0] for _, _, data in responses} == {100, 70}
    assert {png_size(data)[1] for _, _, data in responses} == {100, 62}


def test_each_response_is_in_the_access_log(server):
    status, _, body = fetch(server, "/media/picture.png?log=1")
    assert status == 200
    assert server.wait_for(f'"GET /media/picture.png?log=1 HTTP/1.1" 200 {len(body)}')


def test_the_admin_is_styled(server):
    status, _, body = fetch(server, "/admin/login/")
    assert status == 200
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', body.decode())
    assert "/static/admin/css/base.css" in stylesheets
    for href in stylesheets:
        status, headers, css = fetch(server, href)
        assert status == 200, href
        assert headers["Content-Type"] == "text/css; charset=utf-8"
        assert len(css) == int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("path", ["/media/picture.png", "/static/admin/css/base.css"])
def test_a_repeated_request_gets_304_by_etag_and_by_date(server, path):
    status, headers, _ = fetch(server, path)
    assert status == 200
    etag, last_modified = headers["ETag"], headers["Last-Modified"]

    status, headers, body = fetch(server, path, headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers["ETag"] == etag

    status, headers, body = fetch(server, path, headers={"If-Modified-Since": last_modified})
    assert (status, body) == (304, b"")
    assert headers["Last-Modified"] == last_modified

    assert fetch(server, path, headers={"If-None-Match": '"other"'})[0] == 200


def test_head_has_the_headers_and_no_body(server):
    _, get_headers, get_body = fetch(server, "/media/picture.png")
    status, headers, body = fetch(server, "/media/picture.png", method="HEAD")
    assert status == 200
    assert body == b""
    assert headers["Content-Length"] == str(len(get_body))
    for name in ("Content-Type", "ETag", "Last-Modified"):
        assert headers[name] == get_headers[name]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_get_405(server, method):
    status, headers, _ = fetch(server, "/media/picture.png", method=method, body=b"x")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/media/../manage.py",
        "/media/docs/../../manage.py",
        "/media/docs/../../tests/project/settings.py",
        "/media/%2e%2e/manage.py",
        "/media/%2E%2E/%2E%2E/etc/passwd",
        "/media/..%2fmanage.py",
        "/media/docs/..%2f..%2fmanage.py",
        "/media/%2fetc%2fpasswd",
        "/media//etc/passwd",
        "/media/picture.png%00.txt",
        "/media/%00",
        "/media/..",
        "/media/docs",
        "/media/docs/",
        "/static/../cherrytest/settings.py",
        "/static/%2e%2e/cherrytest/settings.py",
        "/static/admin/../../../../../../etc/passwd",
        "/static/admin/css/",
    ],
)
def test_traversal_and_directories_get_404_without_paths(server, path):
    status, headers, body = fetch(server, path)
    assert status == 404
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    text = body.decode("utf-8", "replace")
    assert str(ROOT) not in text
    assert "Traceback" not in text
    assert "SECRET_KEY" not in text and "root:" not in text


def test_a_percent_encoded_name_is_decoded(server):
    status, _, body = fetch(server, "/media/pictur%65.png")  # %65 is "e"
    assert status == 200
    assert png_size(body) == (40, 30)


def test_concurrent_slow_requests_overlap(server):
    count, seconds = 20, 0.5
    statuses, elapsed = fetch_at_once(server, f"/sleep/?seconds={seconds}", count)
    assert statuses == [200] * count
    # A server that serialises requests needs count * seconds = 10 s; 10 threads need about 1 s.
    assert elapsed < count * seconds / 2, f"{count} requests of {seconds} s took {elapsed:.1f} s"


def refuses_connections(server, timeout=2.0):
    """Whether new connections are refused within ``timeout`` seconds (the listening socket is closed)."""

    def refused():
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    try:
        return eventually(refused, timeout=timeout, interval=0.05)
    except AssertionError:
        return False


@pytest.mark.slow
def test_sigterm_lets_the_request_in_flight_finish(start_server):
    server = start_server("127.0.0.1:0", "--noreload")
    result = {}

    def slow_request():
        result["response"] = fetch(server, "/sleep/?seconds=1.5")

    client = threading.Thread(target=slow_request)
    client.start()
    assert server.wait_for('"GET /sleep/', timeout=0.5) is None  # not logged yet: still in flight
    stop_started = time.monotonic()
    server.signal()
    assert server.wait_for("Stopping")
    assert refuses_connections(server)
    client.join(10)
    status, _, body = result["response"]
    assert status == 200
    assert json.loads(body)["slept"] >= 1.5
    assert server.process.wait(10) == 0
    assert time.monotonic() - stop_started < 5
    assert "Server stopped." in server.output


@pytest.mark.slow
def test_the_pool_grows_for_100_slow_requests(server):
    count, seconds = 100, 1.0
    statuses, elapsed = fetch_at_once(server, f"/sleep/?seconds={seconds}", count)
    assert statuses == [200] * count
    # The 10 workers it starts with would need 10 s; grown to 100, about 1 s.
    assert elapsed < 5, f"{count} requests of {seconds} s took {elapsed:.1f} s"


@pytest.mark.slow
def test_at_max_threads_the_log_says_requests_are_waiting(start_server):
    server = start_server("127.0.0.1:0", "--noreload", "--threads", "2", "--max-threads", "4")
    assert "with 2 to 4 worker threads" in server.output
    statuses, elapsed = fetch_at_once(server, "/sleep/?seconds=1", 8)
    assert statuses == [200] * 8
    assert elapsed >= 2  # 4 workers at most: two rounds
    assert server.wait_for(re.compile(r"All 4 worker threads are busy and \d+ requests are waiting"))


@pytest.mark.slow
def test_a_request_past_request_timeout_is_logged_once_with_its_stack(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--request-timeout", "0.3")
    status, _, _ = fetch(running.url, "/sleep/?seconds=1.5")
    assert status == 200  # reported, not cut off
    line = running.wait_for(re.compile(r"A request has run for \S+ s \(--request-timeout 0.3\): (.*)"))
    assert line[1].startswith(f"GET /sleep/?seconds=1.5 from 127.0.0.1, in worker {running.process.pid}, thread ")
    output = running.output
    assert re.search(r'tests/project/views\.py", line \d+, in sleep\n\s+time\.sleep\(seconds\)', output), output
    assert output.count("A request has run for") == 1  # once, however long it runs
    fetch(running.url, "/sleep/?seconds=0")
    assert running.stop() == 0
    assert running.output.count("A request has run for") == 1
