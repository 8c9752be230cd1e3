"""Live servers for tests that run cheroot with the same mounts and handlers as ``runcherrypy``.

``LiveServerTestCase`` and ``StaticLiveServerTestCase`` are drop-in counterparts of Django's (swap the import);
``LiveServer`` is what the ``cherrypy_live_server`` pytest fixture (``devserver.pytest_plugin``) returns.
"""

import time

from django.conf import settings
from django.contrib.staticfiles.testing import StaticLiveServerTestCase as DjangoStaticLiveServerTestCase
from django.db import connections
from django.test import LiveServerTestCase as DjangoLiveServerTestCase
from django.test.utils import modify_settings

from .http.tls import load_adapter, self_signed
from .mounts import project_application
from .server import ServingThread, create_server

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


class CherootLiveServerThread(ServingThread):
    """The counterpart of Django's ``LiveServerThread`` (same constructor, ``host``, ``port``, ``is_ready``,
    ``error``, ``terminate()``), serving the project's application with MEDIA_URL and STATIC_URL mounted as
    ``runcherrypy`` mounts them, on a ``devserver.server.Server``.

    ``insecure_static``: serve static files through the staticfiles finders (as under DEBUG) rather than from
    STATIC_ROOT. ``server_options``: keyword arguments for ``devserver.server.create_server`` (``numthreads``,
    ``max``, ``shutdown_timeout``, ...). ``ssl_adapter``: serve HTTPS with it (``devserver.http.tls.load_adapter``).
    The ``static_handler`` argument of Django's thread is accepted and not used. ``connections_override`` (alias
    → connection) is used by every worker thread.
    """

    insecure_static = False
    server_options = {"shutdown_timeout": 1}

    def __init__(self, host, static_handler=None, connections_override=None, port=0, *, ssl_adapter=None):
        self.host = host
        self.connections_override = connections_override or {}
        application, self.mounts = project_application(serve_static=True, insecure=self.insecure_static)
        if self.connections_override:
            application = _with_connections(application, self.connections_override)
        server = create_server((host, port), application, ssl_adapter=ssl_adapter, **self.server_options)
        super().__init__(server, name="cheroot-live-server")

    @property
    def port(self):
        return self.server.bind_addr[1]

    @property
    def httpd(self):
        return self.server


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

    ``host``: the address to bind (default ``localhost``); ``port``: 0 for a free one; ``static_files``: ``"finders"``
    (default: the staticfiles finders when ``django.contrib.staticfiles`` is installed, as pytest-django's
    ``live_server`` does) or ``"root"`` (STATIC_ROOT). ``startup_seconds``: how long it took to be ready. ``https``:
    serve HTTPS with a certificate from the local authority of ``--self-signed`` for ``host``, ``localhost`` and the
    loopback addresses (needs ``trustme``), for pages that need a secure origin; ``authority`` is then the file of the
    certificate authority a client must trust (``None`` otherwise). Raises what the server thread raised (a port in use,
    say).
    """

    def __init__(self, host="localhost", port=0, *, static_files=None, https=False):
        if static_files is None:
            static_files = "finders" if "django.contrib.staticfiles" in settings.INSTALLED_APPS else "root"
        thread_class = StaticCherootLiveServerThread if static_files == "finders" else CherootLiveServerThread
        started = time.monotonic()
        self.authority, ssl_adapter = None, None
        if https:
            made = self_signed([host, "localhost", "127.0.0.1", "::1"])
            self.authority, ssl_adapter = made.authority, load_adapter(made.certificate, made.private_key)
        self.thread = thread_class(
            host, None, connections_override=sqlite_memory_connections(), port=port, ssl_adapter=ssl_adapter
        )
        self.modified_settings = modify_settings(ALLOWED_HOSTS={"append": host})
        for conn in self.thread.connections_override.values():
            conn.inc_thread_sharing()
        try:
            self.thread.start_serving()
        except BaseException:
            self._release_connections()
            raise
        self.startup_seconds = time.monotonic() - started

    @property
    def url(self):
        host = self.thread.host
        scheme = "https" if self.authority else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.thread.port}"

    @property
    def server(self):
        """The ``devserver.server.Server`` serving."""
        return self.thread.httpd

    def stop(self):
        self.thread.terminate()
        self._release_connections()

    def _release_connections(self):
        for conn in self.thread.connections_override.values():
            conn.dec_thread_sharing()

    def __str__(self):
        return self.url

    def __add__(self, other):
        return f"{self.url}{other}"

    def __repr__(self):
        return f"<LiveServer listening at {self.url}>"
