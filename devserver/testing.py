"""Live servers for tests that run cheroot with the same mounts and handlers as ``runcherrypy``.

``LiveServerTestCase`` and ``StaticLiveServerTestCase`` are drop-in counterparts of Django's (swap the import);
``LiveServer`` is what the ``cherrypy_live_server`` pytest fixture (``devserver.pytest_plugin``) returns.
"""

import time

from django.conf import settings
from django.contrib.staticfiles.testing import StaticLiveServerTestCase as DjangoStaticLiveServerTestCase
from django.core.servers.basehttp import get_internal_wsgi_application
from django.db import connections
from django.test import LiveServerTestCase as DjangoLiveServerTestCase
from django.test.testcases import LiveServerThread
from django.test.utils import modify_settings

from .mounts import file_mounts
from .server import Server, build_application

__all__ = [
    "CherootLiveServerThread",
    "LiveServer",
    "LiveServerTestCase",
    "StaticCherootLiveServerThread",
    "StaticLiveServerTestCase",
    "sqlite_memory_connections",
]


def sqlite_memory_connections():
    """The database connections a server thread must share with the tests: in-memory SQLite ones, whose data
    exists only in that connection (what Django's ``LiveServerTestCase`` passes as ``connections_override``)."""
    return {conn.alias: conn for conn in connections.all() if conn.vendor == "sqlite" and conn.is_in_memory_db()}


def _with_connections(app, overrides):
    """Wrap ``app`` so that each cheroot worker thread uses ``overrides`` (alias → connection)."""

    def application(environ, start_response):
        for alias, conn in overrides.items():
            connections[alias] = conn
        return app(environ, start_response)

    return application


class CherootLiveServerThread(LiveServerThread):
    """Django's ``LiveServerThread`` running cheroot: the project's WSGI application (``WSGI_APPLICATION``) with
    MEDIA_URL and STATIC_URL mounted as ``runcherrypy`` mounts them.

    ``insecure_static``: serve static files through the staticfiles finders (as under DEBUG) rather than from
    STATIC_ROOT. ``server_options``: keyword arguments for ``devserver.server.Server`` (``numthreads``, ``max``,
    ``shutdown_timeout``, ...). The ``static_handler`` argument of Django's thread is accepted and not used.
    """

    insecure_static = False
    server_options = {"shutdown_timeout": 1}

    def run(self):
        if self.connections_override:
            for alias, conn in self.connections_override.items():
                connections[alias] = conn
        try:
            mounts = file_mounts(serve_static=True, insecure=self.insecure_static)
            application = build_application(get_internal_wsgi_application(), mounts)
            if self.connections_override:
                application = _with_connections(application, self.connections_override)
            self.httpd = Server((self.host, self.port), application, **self.server_options)
            self.httpd.prepare()
            self.port = self.httpd.bind_addr[1]
            self.is_ready.set()
            self.httpd.serve()
        except Exception as error:
            self.error = error
            self.is_ready.set()
        finally:
            connections.close_all()

    def terminate(self):
        if hasattr(self, "httpd"):
            self.httpd.stop()
        self.join()


class StaticCherootLiveServerThread(CherootLiveServerThread):
    insecure_static = True


class LiveServerTestCase(DjangoLiveServerTestCase):
    """Django's ``LiveServerTestCase`` on cheroot: ``self.live_server_url`` is served by a multithreaded cheroot
    server with the media and static mounts of ``runcherrypy`` (static files from STATIC_ROOT, as with DEBUG
    off, which is how tests run)."""

    server_thread_class = CherootLiveServerThread


class StaticLiveServerTestCase(DjangoStaticLiveServerTestCase):
    """Django's ``StaticLiveServerTestCase`` on cheroot: static files through the staticfiles finders, no
    ``collectstatic`` needed."""

    server_thread_class = StaticCherootLiveServerThread


class LiveServer:
    """A cheroot live server in a thread of the test process, started at once; ``url`` is its base URL.

    ``host``: the address to bind (default ``localhost``); ``port``: 0 for a free one; ``static_files``:
    ``"finders"`` (default: the staticfiles finders when ``django.contrib.staticfiles`` is installed, as
    pytest-django's ``live_server`` does) or ``"root"`` (STATIC_ROOT). ``startup_seconds``: how long it took to be
    ready. Raises what the server thread raised (a port in use, say).
    """

    def __init__(self, host="localhost", port=0, *, static_files=None):
        if static_files is None:
            static_files = "finders" if "django.contrib.staticfiles" in settings.INSTALLED_APPS else "root"
        thread_class = StaticCherootLiveServerThread if static_files == "finders" else CherootLiveServerThread
        self.thread = thread_class(host, None, connections_override=sqlite_memory_connections(), port=port)
        self.thread.daemon = True
        self.modified_settings = modify_settings(ALLOWED_HOSTS={"append": host})
        started = time.monotonic()
        for conn in self.thread.connections_override.values():
            conn.inc_thread_sharing()
        self.thread.start()
        self.thread.is_ready.wait()
        self.startup_seconds = time.monotonic() - started
        if self.thread.error:
            error = self.thread.error
            self.stop()
            raise error

    @property
    def url(self):
        host = self.thread.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.thread.port}"

    @property
    def server(self):
        """The ``devserver.server.Server`` serving."""
        return self.thread.httpd

    def stop(self):
        self.thread.terminate()
        for conn in self.thread.connections_override.values():
            conn.dec_thread_sharing()

    def __str__(self):
        return self.url

    def __add__(self, other):
        return f"{self.url}{other}"

    def __repr__(self):
        return f"<LiveServer listening at {self.url}>"
