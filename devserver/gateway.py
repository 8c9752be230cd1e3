"""The project behind the standard gateways, CGI and SCGI, with the same application tree as ``runcherrypy``.

The response is written by the standard library's ``wsgiref.handlers``: ``CGIHandler`` for CGI, ``BaseCGIHandler``
for SCGI, whose response is a CGI one too (RFC 3875 §6: a ``Status:`` line, the header fields, a blank line, the
body). ``GatewayHandler`` adds to them what a serving gateway needs and wsgiref leaves out:

- no body for HEAD (RFC 9110 §9.3.2; wsgiref writes whatever the application yields);
- ``wsgi.file_wrapper`` is ``devserver.http.file_wrapper.FileIterator``, so a file is streamed in ``BLOCK_SIZE``
  blocks (constant memory), and sent with ``socket.sendfile`` when the output is a socket (SCGI);
- an error that escapes the application is logged to the ``devserver.gateway`` logger (the front server's error
  log, for CGI: standard error) and answered 500 with wsgiref's plain body, no traceback; a client that went away
  is not an error;
- ``os.environ`` is not copied into a request's environ (wsgiref's ``BaseHandler`` does): ``request.META`` holds
  what the front server sent, not the server's environment.

``application()`` builds the tree (``devserver.mounts.project_application``) on its first request, so that a
project that fails to load is answered 500 and logged, rather than ending the process with a traceback before any
response (``Premature end of script headers`` in Apache's log, and nothing for the user). The tree is dispatched by
``PathDispatcher``, which does what ``cheroot.wsgi.PathInfoDispatcher`` does without importing cheroot: 65 ms of
a CGI request's 630 (``python -X importtime``); ``tests/test_gateways.py`` checks that both dispatch alike.
"""

import gc
import logging
import sys
import threading
import wsgiref.handlers

from .media import FileIterator

__all__ = ["CGIHandler", "GatewayHandler", "PathDispatcher", "application", "run_cgi"]

logger = logging.getLogger("devserver.gateway")

_DISCONNECTED = (ConnectionError, TimeoutError)


class GatewayHandler:
    """What ``wsgiref.handlers.BaseHandler`` subclasses get from this mixin: see the module's docstring. ``socket``:
    the connection the response is written to, when it is a socket (``socket.sendfile``), else ``None``."""

    wsgi_file_wrapper = FileIterator
    os_environ = {}
    error_body = b"A server error occurred."
    socket = None

    def write(self, data):
        if self.environ.get("REQUEST_METHOD") != "HEAD":
            return super().write(data)
        # BaseHandler.write's bookkeeping, so that Content-Length is set as for GET; the data is not sent.
        if not self.status:
            raise AssertionError("write() before start_response()")
        if not self.headers_sent:
            self.bytes_sent = len(data)
            self.send_headers()
        else:
            self.bytes_sent += len(data)

    def sendfile(self):
        result = self.result
        if self.socket is None:  # a HEAD never gets here: finish_response has dropped its file
            return False
        try:
            offset = result.file.tell()
            result.file.fileno()
        except (AttributeError, OSError):  # no descriptor: block by block
            return False
        if not self.headers_sent:
            self.send_headers()
        self._flush()
        if result.remaining is None or result.remaining > 0:
            self.socket.sendfile(result.file, offset, result.remaining)
        return True

    def finish_response(self):
        # A HEAD needs no body read: a FileIterator is not iterated, so a large file costs no reads.
        if self.environ.get("REQUEST_METHOD") == "HEAD" and isinstance(self.result, FileIterator):
            self.result.close()
            self.result = [b""]
        super().finish_response()

    def run(self, application):
        try:
            super().run(application)
        except _DISCONNECTED:  # raised from handle_error when the client left before the 500 could be sent
            self.close()

    def handle_error(self):
        error = sys.exc_info()[1]
        if isinstance(error, _DISCONNECTED):
            logger.info("The client went away: %s", error)
            self.close()
            return
        super().handle_error()

    def log_exception(self, exc_info):
        logger.error(
            "Error answering %s %s", self.environ.get("REQUEST_METHOD"), _path(self.environ), exc_info=exc_info
        )


def _path(environ):
    return (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"


class CGIHandler(GatewayHandler, wsgiref.handlers.CGIHandler):
    """``wsgiref.handlers.CGIHandler`` (standard input and output, ``os.environ``) with ``GatewayHandler``'s
    additions; the response goes to standard output, so no ``sendfile``."""


class PathDispatcher:
    """``cheroot.wsgi.PathInfoDispatcher``'s dispatch: ``apps`` is a list of ``(prefix, application)``; the longest
    prefix that ``PATH_INFO`` equals or continues with ``/`` gets the request, with the prefix moved from
    ``PATH_INFO`` to ``SCRIPT_NAME``. The tree always has the project at ``""``, so every path matches one."""

    def __init__(self, apps):
        self.apps = sorted(((prefix.rstrip("/"), app) for prefix, app in apps), key=lambda item: -len(item[0]))

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"] or "/"
        for prefix, app in self.apps:
            if path.startswith(prefix + "/") or path == prefix:
                environ = {**environ, "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + prefix}
                environ["PATH_INFO"] = path[len(prefix) :]
                return app(environ, start_response)
        raise LookupError(f"nothing is mounted at {path!r}")


_application = None
_lock = threading.Lock()


def application(environ, start_response):
    """The project's WSGI application with MEDIA_URL and STATIC_URL mounted as ``runcherrypy`` mounts them
    (``devserver.mounts.project_application``), built on the first call. Static files come through the
    staticfiles finders under DEBUG, from STATIC_ROOT otherwise."""
    global _application
    if _application is None:
        with _lock:
            if _application is None:
                # Loading makes many objects and few garbage cycles: the collector, run again and again by the
                # allocations, cost about 100 ms of a CGI request's 550 (the script timed over 3 × 10 runs).
                collecting = gc.isenabled()
                gc.disable()
                try:
                    _application = _load()
                finally:
                    if collecting:
                        gc.enable()
    return _application(environ, start_response)


def _load():
    import django

    django.setup(set_prefix=False)
    from .mounts import project_application

    return project_application(dispatcher=PathDispatcher)[0]


def run_cgi():
    """Answer the one request of this CGI process (RFC 3875): the environ from ``os.environ``, the body from
    standard input, the response to standard output. Logging goes to standard error, which the front server
    keeps in its error log."""
    if not logging.root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    CGIHandler().run(application)
