"""The worker's side: cheroot's connection and request objects, filled from the request that
``devserver.http.receive`` parsed whole on the selector's thread, without reading the head again.

- ``Connection``: cheroot's, with a ``devserver.http.parser.Parser`` in place of its socket reader (cheroot's
  connection manager asks ``conn.rfile.has_data()`` whether a pipelined request waits: the parser's buffer
  answers); a connection closed by cheroot's expiry while part of a request had come is answered 408.
- ``Request``: ``parse_request`` takes the parsed ``Message`` (cheroot's read and parsed the head line by line:
  ``read_request_line``, ``HeaderReader``), ``respond`` calls the gateway with the body already received (a
  chunked body de-chunked, seen with a Content-Length as under waitress, so no byte of it can be taken for the
  next request), and ``send_headers`` writes ``devserver.http.response.header_block``.
"""

import errno
import io
import ssl
import time

from cheroot import server as cheroot_server
from cheroot.makefile import MakeFile

from .. import gil_io
from .parser import Parser
from .receive import answer
from .response import header_block

__all__ = ["Connection", "Request"]


class _NoBody:
    """``wsgi.input`` of a request without a body: empty, with no state an application could spoil for the next
    request (closing a shared ``BytesIO`` would break every later request's iteration)."""

    __slots__ = ()
    remaining = 0

    def read(self, size=None):
        return b""

    def readline(self, size=None):
        return b""

    def readlines(self, sizehint=0):
        return []

    def __iter__(self):
        return iter(())

    def close(self):
        pass


_NO_BODY = _NoBody()


class Request(cheroot_server.HTTPRequest):
    """cheroot's request, filled from the parsed ``Message`` (``conn.message``); see the module's docstring."""

    outnames = None
    """The response's header names in lower case (a set of bytes), once ``start_response`` has checked them."""

    def parse_request(self):
        message = self.conn.message
        self.started_request = True
        self.method, self.uri, self.path, self.qs = message.method, message.uri, message.path, message.qs
        self.authority = message.authority
        self.request_protocol = message.request_protocol
        self.response_protocol = "HTTP/1.0" if self.server.protocol == "HTTP/1.0" else message.response_protocol
        self.inheaders = message.headers
        self.close_connection = not message.keep_alive
        self.rfile = _NO_BODY if message.body is None else cheroot_server.KnownLengthRFile(message.body, message.length)
        self.ready = True

    def respond(self):
        try:
            self.server.gateway(self).respond()
            if self.ready:
                self.ensure_headers_sent()
            if self.chunked_write:
                self.conn.wfile.write(b"0\r\n\r\n")
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as error:
            # A TLS client that went away mid-response (a browser leaving a page with an event stream): a closed
            # connection, as over plain HTTP, which cheroot's communicate() ends quietly; it logged these two with
            # a traceback ("socket.error 8").
            raise ConnectionResetError(errno.ECONNRESET, "The TLS peer closed the connection.") from error

    def send_headers(self):
        """Write ``header_block``: at once, without giving up the GIL (``devserver.gil_io``) where it can, as
        ``Gateway.write`` sends a whole body (a 304, a 204, a HEAD: nothing follows); the rest, if the socket's
        buffer is full, through cheroot's writer, which flushes every write."""
        data = header_block(self)
        conn = self.conn
        if gil_io.AVAILABLE and not conn.tls:
            data = data[gil_io.send(conn.socket.fileno(), data) :]
        if data:
            conn.wfile.write(data)


class _Pending:
    """``conn.rfile`` for cheroot, which reads four things off it: its connection manager calls ``has_data()`` to
    see whether a request is already waiting (pipelined); ``close()`` and ``closed`` (its thread pool's stop shuts
    a connection down unless it is closed); ``bytes_read`` (statistics). The connection reads its socket through
    ``receive`` instead. Bytes that ``receive`` has seen and found incomplete are not a request waiting: the
    connection goes to the selector until more arrive."""

    __slots__ = ("conn", "closed")

    bytes_read = 0

    def __init__(self, conn):
        self.conn = conn
        self.closed = False

    def has_data(self):
        return bool(self.conn.parser.buffer) and not self.conn.incomplete

    def close(self):
        self.closed = True


def _writer_only(makefile):
    return lambda sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE: None if "r" in mode else makefile(sock, mode, bufsize)


class Connection(cheroot_server.HTTPConnection):
    """cheroot's connection, read by ``devserver.http.receive`` into ``parser`` (a ``Parser`` with the server's
    ``limits``), which leaves a whole request in ``message``. ``read_deadline``: ``time.time()`` by which more of a
    request must come, or ``None``; ``incomplete``: part of a request has come, not all of it; ``accepted_at``:
    ``time.monotonic()`` of the accept (``Server.drain``); ``tls``, ``handshake_pending``: over TLS, and whether
    the handshake is still to be made (``devserver.http.tls.handshake``)."""

    RequestHandlerClass = Request

    busy_answered = False
    """Set by ``answer_busy`` when it takes the connection: the worker that gets it from the queue leaves it."""

    def __init__(self, server, sock, makefile=MakeFile):
        super().__init__(server, sock, _writer_only(makefile))
        self.parser = Parser(server.limits)
        self.rfile = _Pending(self)
        self.message = None
        self.environ = None  # what the gateway's environ holds for every request of this connection
        self.continued = None  # the message 100 Continue was sent for
        self.incomplete = False
        self.accepted_at = time.monotonic()
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.handshake_pending = self.tls and sock.version() is None  # TLSAdapter: not made yet
        # A new connection's handshake and first head are read on the selector's thread (Server.process_conn): a
        # flood of silent or slow connections wakes no worker.
        self.read_deadline = time.time() + server.header_timeout
        self.counted = server.connection_opened()

    def communicate(self):
        """cheroot's ``communicate`` for the request in ``message``, then its body closed. A request that waited
        too long for a worker has been answered 503 already (``answer_busy``): the connection is closed."""
        try:
            if self.server.queued.pop(self, None) is None and self.busy_answered:
                return False
            return super().communicate()
        finally:
            message, self.message = self.message, None
            if message is not None:
                message.close()

    def close(self):
        if self.counted:
            self.counted = False
            self.server.connection_closed()
        if self.incomplete:
            # Part of a request came, the rest not in time (the selector expired it): say so (RFC 9110 §15.5.9),
            # without waiting on a client that may not read.
            self.incomplete = False
            self.parser.close()
            try:
                answer(self.server, self, "408 Request Timeout", "Request Timeout\n")
            finally:
                super().close()  # whatever the log does: a socket left open here stayed open for good
            return
        self.parser.close()
        if self.message is not None:  # parsed, never taken by a worker (a stop, a full queue)
            self.message.close()
            self.message = None
        super().close()
