"""The live servers for tests: the pytest fixture and the TestCase counterparts, on cheroot, in-process."""

import json
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.signals import request_finished

from devserver.server import Server
from devserver.testing import LiveServerTestCase, StaticLiveServerTestCase

from .http import fetch
from .waiting import eventually
from .wsgi import serving


def test_the_fixture_serves_the_project_media_and_static(cherrypy_live_server):
    assert cherrypy_live_server.startup_seconds < 1
    status, headers, body = fetch(cherrypy_live_server.url + "/")
    assert status == 200 and b"/media/picture.png" in body
    assert headers["Server"].startswith("Cheroot")
    status, headers, _ = fetch(cherrypy_live_server + "/media/picture.png")
    assert (status, headers["Content-Type"]) == (200, "image/png")
    status, headers, _ = fetch(cherrypy_live_server + "/static/admin/css/base.css")
    assert (status, headers["Content-Type"]) == (200, "text/css; charset=utf-8")


def test_the_fixture_is_one_server_per_session(cherrypy_live_server, request):
    assert request.getfixturevalue("cherrypy_live_server") is cherrypy_live_server
    assert isinstance(cherrypy_live_server.server, Server)


def test_headers_with_underscores_are_dropped(cherrypy_live_server):
    _, _, body = fetch(
        cherrypy_live_server + "/test/headers/",
        headers={"X-Forwarded-Proto": "http", "X_Forwarded_Proto": "https", "X-Custom_Thing": "1"},
    )
    seen = json.loads(body)
    assert seen["HTTP_X_FORWARDED_PROTO"] == "http"
    assert "HTTP_X_CUSTOM_THING" not in seen


def test_request_finished_fires_when_the_client_of_an_empty_response_is_gone(cherrypy_live_server):
    finished = threading.Event()

    def on_finished(**kwargs):
        finished.set()

    request_finished.connect(on_finished)
    try:
        port = cherrypy_live_server.thread.port
        with socket.create_connection((cherrypy_live_server.thread.host, port), timeout=5) as client:
            client.sendall(b"GET /test/slow-redirect/?seconds=0.3 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            # Close with a reset, at once: the 302 then meets a connection that is gone.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert finished.wait(5), "request_finished did not fire"
    finally:
        request_finished.disconnect(on_finished)


class TestLiveServerTestCase(LiveServerTestCase):
    def test_serves_the_page_and_media_on_cheroot(self):
        status, headers, body = fetch(self.live_server_url + "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Server"].startswith("Cheroot"))
        status, headers, _ = fetch(self.live_server_url + "/media/picture.png")
        self.assertEqual((status, headers["Content-Type"]), (200, "image/png"))

    def test_requests_overlap(self):
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = [status for status, _, _ in pool.map(fetch, [self.live_server_url + "/sleep/?seconds=0.5"] * 10)]
        self.assertEqual(statuses, [200] * 10)
        self.assertLess(time.monotonic() - started, 2.5)  # one at a time would take 5 s


class TestStaticLiveServerTestCase(StaticLiveServerTestCase):
    def test_static_files_come_from_the_finders(self):
        status, headers, _ = fetch(self.live_server_url + "/static/admin/css/base.css")
        self.assertEqual((status, headers["Content-Type"]), (200, "text/css; charset=utf-8"))


def sleeping_app(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.mark.slow
def test_the_pool_grows_to_max_then_retires_idle_workers():
    with serving(sleeping_app, numthreads=2, max=8) as server:
        server.pool_sizer.idle_timeout = 0.3
        url = f"http://127.0.0.1:{server.bind_addr[1]}/?0.5"
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = time.monotonic()
            results = list(pool.map(fetch, [url] * 8))
            elapsed = time.monotonic() - started
        assert [status for status, _, _ in results] == [200] * 8
        assert elapsed < 1.5  # 2 fixed workers would need 2 s
        assert server.pool_sizer.size == 8
        eventually(lambda: server.pool_sizer.size <= 2, interval=0.05)
        assert server.pool_sizer.size == 2
        # And it grows again: cheroot counted its exited workers against max, and the pool stayed at 2.
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = time.monotonic()
            results = list(pool.map(fetch, [url] * 8))
            elapsed = time.monotonic() - started
        assert [status for status, _, _ in results] == [200] * 8
        assert elapsed < 1.5, elapsed
        assert server.pool_sizer.size == 8


def admin_login(base_url, username, password):
    """Log in to the admin as a browser does (the login form, its CSRF token and cookie); return the final
    page's status and body."""
    import http.cookiejar
    import re
    import urllib.parse

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(base_url + "/admin/login/?next=/admin/", timeout=10) as response:
        form = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(base_url + "/admin/login/?next=/admin/", data=data)
    request.add_header("Referer", base_url + "/admin/login/")
    with opener.open(request, timeout=10) as response:
        return response.status, response.geturl(), response.read().decode()


def check_the_server_sees_the_tests_data(live_server_url, django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@example.test", "a-long-password-1")
    django_user_model.objects.create_user("other", "other@example.test", "a-long-password-2")
    status, url, page = admin_login(live_server_url, "admin", "a-long-password-1")
    assert (status, url) == (200, live_server_url + "/admin/"), page[:500]
    assert "Site administration" in page
    _, _, body = fetch(live_server_url + "/test/users/")
    assert json.loads(body) == {"users": 2}


def test_the_live_server_sees_the_tests_data(cherrypy_live_server, django_user_model):
    check_the_server_sees_the_tests_data(cherrypy_live_server.url, django_user_model)


def test_the_live_server_sees_the_tests_data_beside_the_db_fixture(cherrypy_live_server, db, django_user_model):
    check_the_server_sees_the_tests_data(cherrypy_live_server.url, django_user_model)


@pytest.mark.django_db
def test_the_live_server_sees_the_tests_data_under_the_django_db_mark(cherrypy_live_server, django_user_model):
    check_the_server_sees_the_tests_data(cherrypy_live_server.url, django_user_model)


def test_each_test_starts_with_an_empty_database(cherrypy_live_server):
    _, _, body = fetch(cherrypy_live_server + "/test/users/")
    assert json.loads(body) == {"users": 0}
