"""Calling a WSGI application in-process, as a server would, or serving it from a thread of the test process."""

from contextlib import contextmanager
from dataclasses import dataclass
from wsgiref.util import setup_testing_defaults


@dataclass
class Response:
    status: str
    headers: list
    body: bytes

    @property
    def status_code(self):
        return int(self.status[:3])

    def header(self, name):
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None


def wsgi_path(path):
    """PATH_INFO as PEP 3333 has it: the decoded bytes of the URL path as latin-1 text."""
    return path.encode("utf-8").decode("latin-1")


def environ_for(path, method="GET", **headers):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": wsgi_path(path), "SCRIPT_NAME": ""}
    environ.update((f"HTTP_{name.upper()}", value) for name, value in headers.items())
    setup_testing_defaults(environ)
    return environ


def call(app, path, method="GET", **headers):
    """Run one request through ``app`` and return its ``Response``; the body is consumed and closed."""
    started = {}

    def start_response(status, response_headers, exc_info=None):
        assert "status" not in started, "start_response called twice"
        started.update(status=status, headers=response_headers)

    body = app(environ_for(path, method, **headers), start_response)
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return Response(started["status"], started["headers"], data)


@contextmanager
def serving(app, ssl_adapter=None, bind_addr=("127.0.0.1", 0), **options):
    """A ``devserver.server.Server`` running ``app`` (on a free loopback port by default) in a thread of this
    process, for the ``with`` block; ``options`` are the Server's keyword arguments."""
    from devserver.server import ServingThread, create_server

    thread = ServingThread(create_server(bind_addr, app, ssl_adapter=ssl_adapter, **{"shutdown_timeout": 1, **options}))
    server = thread.start_serving()
    try:
        yield server
    finally:
        thread.terminate(5)
