"""The WSGI side of a request (PEP 3333): ``Gateway`` builds the environ, calls the application, checks what it
gives ``start_response`` and sends its body: in one send with the headers when it is one chunk, with ``sendfile``
for a file, chunk by chunk under a lock for a stream (``devserver.streams``), nothing for HEAD.

It replaces these parts of ``cheroot.wsgi.Gateway_10``, each measured with ``bench/overrides.py`` (instructions
per request under valgrind) or fixing a defect:

- ``get_environ``: a copy of cheroot's plus ``wsgi.file_wrapper``, with header names turned into ``HTTP_*`` keys
  through a bounded cache instead of ``str.format`` per header (cheroot's own costs 11-14% more a request).
- ``start_response``: cheroot's sent a CR or LF in a status or header as given (response splitting, CWE-113), and
  appended a second call's headers to the first's.
- ``respond``: ``wsgi.file_wrapper`` bodies sent with ``socket.sendfile``, no body on HEAD (RFC 9110 §9.3.2), and
  ``close()`` always called (cheroot's skips it when sending the headers raises because the client has gone:
  Django's ``request_finished`` then never fires).
- ``write``: a body that is one chunk of exactly Content-Length bytes leaves with the header block in one send
  (cheroot flushes each write: two sends, two TCP segments; 10% more instructions a small response), without
  giving up the GIL (``devserver.gil_io``): the GIL's convoy effect made the 99th percentile of a Django view's
  latency five times its median.
"""

import sys
import threading
import time

from cheroot import wsgi

from .. import gil_io
from ..streams import END_WAIT, is_stream, shut
from .file_wrapper import FileIterator
from .receive import send_now
from .response import check_response, header_block, plain_response

__all__ = ["Gateway"]

_ENVIRON_KEYS = {}  # request header name (bytes) -> WSGI environ key


class Gateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, with what a file server and Django need from it:

    - ``wsgi.file_wrapper`` (``devserver.http.file_wrapper.FileIterator``), whose body goes out with
      ``socket.sendfile`` on a plain socket (not TLS): no copy through Python. Django's ``FileResponse`` uses it too.
    - A body that is one chunk of exactly Content-Length bytes leaves with the headers in one send (cheroot
      flushes each write, so headers and body would be two sends and two TCP segments).
    - No body on a response to HEAD (RFC 9110 §9.3.2; cheroot sends whatever the application yields): the
      application's iterable is consumed, as runserver does, except a file, which is not read.
    - ``close()`` always called: cheroot's own ``respond()`` calls it after ``ensure_headers_sent()`` in the same
      ``finally``, so when the client has gone and the body is empty (204, a redirect) sending the headers raises
      first, Django's ``request_finished`` does not fire and its database connection is not returned.
    - One access log line per response.
    """

    def __init__(self, req):
        super().__init__(req)
        self.started = time.perf_counter()
        self.body_bytes = 0
        self.response_length = None
        self.cut_off = False
        self.ended = False  # a stream ended by the server (devserver.streams)

    def get_environ(self):
        """The WSGI environ, as ``cheroot.wsgi.Gateway_10.get_environ`` builds it, plus ``wsgi.file_wrapper``: what
        is the same for every request of a connection is built once (``connection_environ``) and copied; header
        names are turned into ``HTTP_*`` keys through a cache instead of ``str.format`` per header."""
        req = self.req
        conn = req.conn
        base = getattr(conn, "environ", None)
        if base is None:
            base = conn.environ = self.connection_environ()
        environ = base.copy()
        environ["PATH_INFO"] = req.path.decode("ISO-8859-1")
        environ["QUERY_STRING"] = req.qs.decode("ISO-8859-1")
        environ["REQUEST_METHOD"] = req.method.decode("ISO-8859-1")
        environ["REQUEST_URI"] = req.uri.decode("ISO-8859-1")
        environ["SERVER_PROTOCOL"] = req.request_protocol.decode("ISO-8859-1")
        environ["wsgi.input"] = req.rfile
        environ["wsgi.input_terminated"] = bool(req.chunked_read)
        for name, value in req.inheaders.items():
            key = _ENVIRON_KEYS.get(name)
            if key is None:
                key = "HTTP_" + name.decode("ISO-8859-1").upper().replace("-", "_")
                if len(_ENVIRON_KEYS) < 512 and len(name) <= 64:  # clients choose header names: bound the cache
                    _ENVIRON_KEYS[name] = key
            environ[key] = value.decode("ISO-8859-1")
        content_type = environ.pop("HTTP_CONTENT_TYPE", None)
        if content_type is not None:
            environ["CONTENT_TYPE"] = content_type
        content_length = environ.pop("HTTP_CONTENT_LENGTH", None)
        if content_length is not None:
            environ["CONTENT_LENGTH"] = content_length
        return environ

    def connection_environ(self):
        """The part of the environ that is the same for every request on this connection (a dict): the server, the
        peer (with its credentials on a unix socket, when cheroot can read them), TLS (``conn.ssl_env``), ``wsgi.*``."""
        req = self.req
        conn = req.conn
        server = req.server
        environ = {
            "ACTUAL_SERVER_PROTOCOL": server.protocol,
            "REMOTE_ADDR": conn.remote_addr or "",
            "REMOTE_PORT": str(conn.remote_port or ""),
            "SCRIPT_NAME": "",
            "SERVER_NAME": server.server_name,
            "SERVER_SOFTWARE": server.software,
            "wsgi.errors": sys.stderr,
            "wsgi.multiprocess": False,
            "wsgi.multithread": True,
            "wsgi.run_once": False,
            "wsgi.url_scheme": req.scheme.decode("ISO-8859-1"),
            "wsgi.version": self.version,
            "wsgi.file_wrapper": FileIterator,
        }
        if isinstance(server.bind_addr, str):
            # A unix socket: no port; the peer's credentials when cheroot can read them.
            environ["SERVER_PORT"] = ""
            try:
                environ["X_REMOTE_PID"] = str(conn.peer_pid)
                environ["X_REMOTE_UID"] = str(conn.peer_uid)
                environ["X_REMOTE_GID"] = str(conn.peer_gid)
                environ["X_REMOTE_USER"] = str(conn.peer_user)
                environ["X_REMOTE_GROUP"] = str(conn.peer_group)
                environ["REMOTE_USER"] = environ["X_REMOTE_USER"]
            except RuntimeError:
                pass
        else:
            environ["SERVER_PORT"] = str(server.bind_addr[1])
        if conn.ssl_env:
            environ.update(conn.ssl_env)
        return environ

    def respond(self):
        response = None
        returned = False
        in_flight = self.req.server.in_flight  # --request-timeout: devserver.stuck
        if in_flight is not None:
            in_flight.begin(self)
        try:
            response = self.req.server.wsgi_app(self.env, self.start_response)
            returned = True
            if in_flight is not None and (type(response) is FileIterator or is_stream(response)):
                # A file or a stream may take as long as its client reads: not a stuck request.
                in_flight.end()
                in_flight = None
            self.response_length = self.remaining_bytes_out
            if self.req.method == b"HEAD":
                if type(response) is not FileIterator:
                    # A stream is not run for a HEAD (it may never end) once it has given its headers: one that gives
                    # them on its first iteration (PEP 3333 allows it) is run that far.
                    streaming = is_stream(response)
                    for _ in () if streaming and self.started_response else response:
                        if streaming and self.started_response:
                            break
            elif type(response) is FileIterator and self.remaining_bytes_out is not None and self.can_sendfile():
                self.sendfile(response)
            elif is_stream(response):
                self.stream(response)
            else:
                for chunk in response:
                    if chunk:
                        if not isinstance(chunk, bytes):
                            raise ValueError("WSGI Applications must yield bytes")
                        self.write(chunk)
            if not self.started_response:
                raise RuntimeError("The WSGI application returned without calling start_response.")
        except BaseException:
            # The client went away or read too slowly, or the application failed midway; one whose call failed
            # (before start_response, or calling it wrongly) is answered 500 by cheroot, and logged here as such.
            self.cut_off = returned and self.started_response
            raise
        finally:
            try:
                if returned and self.started_response:
                    self.req.ensure_headers_sent()
            finally:
                try:
                    close = getattr(response, "close", None)
                    if close is not None:
                        close()
                finally:
                    if in_flight is not None:
                        in_flight.end()
                    self.log_access()

    def stream(self, response):
        """Send ``response``, a stream (``devserver.streams.is_stream``), chunk by chunk until it ends or the server
        ends it (``end``): each chunk is written under ``lock``, after checking that it has not been ended."""
        self.lock = threading.Lock()
        self.finished = False
        streams = self.req.server.streams
        streams.add(self)  # ended at once if the server is stopping: then its iterator is not read at all
        try:
            if self.ended:
                return
            for chunk in response:
                with self.lock:
                    if self.ended:
                        break
                    if chunk:
                        if not isinstance(chunk, bytes):
                            raise ValueError("WSGI Applications must yield bytes")
                        self.write(chunk)
        finally:
            with self.lock:
                self.finished = True  # an end() from now on has nothing to do
            streams.discard(self)

    def end(self):
        """End this stream from another thread (``devserver.streams``), at once, then shut the connection down; the
        worker stops at the iterator's next chunk (``stream``). How it ends depends on what the client was told:

        - an event stream (``text/event-stream``) gets its last chunk (RFC 9112 §7.1), after its status line and
          headers if nothing was sent yet: a complete response, and ``EventSource`` reconnects;
        - another stream that has sent nothing yet (a long poll, a download still being prepared) is answered
          ``503 Service Unavailable`` with ``Retry-After: 1`` instead: the client retries, and a download is not
          taken for an empty file;
        - another stream under way (a CSV export) is cut short, without a last chunk, so that the client sees the
          body incomplete rather than a short file it takes for whole; the access log says it was cut off.

        A worker in the middle of a write (a client that does not read) is not waited for past ``END_WAIT``
        seconds: the connection is shut down under it."""
        req = self.req
        if not self.lock.acquire(timeout=END_WAIT):
            self.ended = self.cut_off = True
            shut(req.conn.socket)
            return
        try:
            if self.ended or self.finished:
                return
            self.ended = True
            req.close_connection = True
            data = b""
            if self.started_response and _is_event_stream(req.outheaders):
                if not req.sent_headers:
                    req.sent_headers = True
                    data = header_block(req)
                if req.chunked_write:
                    data += b"0\r\n\r\n"
            elif self.started_response and not req.sent_headers:
                req.sent_headers = True
                req.status = b"503 Service Unavailable"
                data = _RESTARTING
                self.body_bytes = len(_RESTARTING_BODY)
            else:
                self.cut_off = True
            req.chunked_write = False  # not again by Request.respond
            if data:
                send_now(req.conn, data)
            shut(req.conn.socket)
        finally:
            self.lock.release()

    def start_response(self, status, headers, exc_info=None):
        """PEP 3333's ``start_response``; replaces cheroot's (``cheroot.wsgi.Gateway_10.start_response``), which
        makes two function calls per header and checks nothing but types. The status and headers are checked
        (``devserver.http.response.check_response``: a CR or LF in them is a ``ValueError``, and the client gets a
        500). A second call with ``exc_info`` before the headers are sent replaces the first call's headers, as PEP
        3333 says; cheroot appended them (a duplicate Content-Type, and a Content-Length that no longer fits the
        body). After they are sent, it raises ``exc_info``'s exception; without ``exc_info``, ``RuntimeError``."""
        req = self.req
        if self.started_response:
            if not exc_info:
                raise RuntimeError("WSGI start_response called a second time with no exc_info.")
            if req.sent_headers:
                raise exc_info[1].with_traceback(exc_info[2])
        req.status, req.outheaders, req.outnames, self.remaining_bytes_out = check_response(status, headers)
        self.started_response = True
        return self.write

    def can_sendfile(self):
        return self.req.server.ssl_adapter is None

    def sendfile(self, body):
        """Send the rest of ``body`` (a ``FileIterator``): its file from the current position, as many bytes as
        Content-Length still announces, with ``socket.sendfile``. A file without a descriptor goes block by
        block. If the file ends early the connection is closed, since the response is then short."""
        try:
            offset = body.file.tell()
            body.file.fileno()
        except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
            for chunk in body:
                self.write(chunk)
            return
        count = self.remaining_bytes_out
        if body.remaining is not None:
            count = min(count, body.remaining)
        self.req.ensure_headers_sent()
        try:
            sent = self.req.conn.socket.sendfile(body.file, offset, count) if count else 0
        finally:
            # socket.sendfile leaves the file at the end of what it sent, also when it raises (a timeout).
            self.body_bytes += body.file.tell() - offset
        self.remaining_bytes_out -= sent
        if self.remaining_bytes_out:
            self.req.close_connection = True

    def write(self, chunk):
        req = self.req
        if not req.sent_headers and self.remaining_bytes_out == len(chunk) and self.started_response:
            # The whole body: one send with the headers.
            req.sent_headers = True
            data = header_block(req) + chunk
            if gil_io.AVAILABLE and not req.conn.tls:
                # Without giving up the GIL (devserver.gil_io): the rest, if the socket's buffer is full, as before.
                data = data[gil_io.send(req.conn.socket.fileno(), data) :]
            if data:
                req.conn.wfile.write(data)
            self.remaining_bytes_out = 0
        else:
            super().write(chunk)
        self.body_bytes += len(chunk)

    def log_access(self):
        """Hand the response to the server's ``access_log`` (``devserver.access_log``; ``None``: no log): the
        client (``REMOTE_ADDR`` as the application left it, so after proxy resolution), the request line, the
        status, the body bytes sent, the time since the application was called, the Referer and User-Agent; a
        response cut off (the client went away or read too slowly) says so, with the length it announced."""
        access_log = self.req.server.access_log
        if access_log is None:
            return
        req = self.req
        status = req.status[:3]
        # No status means the application raised before start_response; cheroot answers that with a 500.
        code = int(status) if status.isdigit() else 500
        request_line = b" ".join((req.method or b"-", req.uri or b"-", req.request_protocol or b"-"))
        env = self.env or {}
        access_log.log(
            env.get("REMOTE_ADDR"),
            request_line.decode("latin-1"),
            code,
            self.body_bytes,
            time.perf_counter() - self.started,
            self.response_length,
            self.cut_off,
            env.get("HTTP_REFERER"),
            env.get("HTTP_USER_AGENT"),
        )


_RESTARTING_BODY = b"The server is stopping or restarting: retry.\n"
_RESTARTING = plain_response("503 Service Unavailable", _RESTARTING_BODY, extra=(("Retry-After", "1"),))


def _is_event_stream(headers):
    """Whether response ``headers`` (``(name, value)`` byte pairs) say ``Content-Type: text/event-stream``."""
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"text/event-stream"
    return False
