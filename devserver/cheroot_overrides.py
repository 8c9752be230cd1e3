"""Every place where ``runcherrypy`` reaches past cheroot's public hooks, in one module.

cheroot's public extension points are class attributes (``ConnectionClass``, ``RequestHandlerClass``,
``header_reader``, ``gateway``), ``error_log`` and the WSGI ``Gateway``'s methods. What is below goes further; each
piece says what it replaces and why, and ``tests/test_cheroot_overrides.py`` pins what it relies on, so that a
cheroot release that moves it fails a test instead of misbehaving. Pinned to cheroot 11.1.x (``pyproject.toml``);
CI also runs the tests against the newest release that range allows.

Measured with ``bench/overrides.py``: instructions per request (valgrind, so the same on every run) for a 5 KiB file,
its 304 and a small dynamic response ("hello": the headers of Django's smallest view), with one piece at a time
swapped for cheroot's own. A copy of cheroot's code stays only where it buys 5% or more, or where it fixes a defect;
otherwise the override is narrow and calls ``super()``.

- ``Gateway.get_environ``: a copy of ``cheroot.wsgi.Gateway_10.get_environ`` plus ``wsgi.file_wrapper``, with
  header names turned into ``HTTP_*`` keys through a bounded cache instead of ``str.format`` per header.
  cheroot's own costs 11% more per 5 KiB request, 13% more per 304 and 14% more per hello.
- ``Gateway.start_response``: replaces cheroot's for two defects. cheroot sent a CR or LF in a status or header as
  the application gave it (response splitting, CWE-113); here the status, names (tokens) and values are checked,
  a bad one is a ``ValueError`` and the client gets a 500. A second call with ``exc_info`` replaces the first
  call's headers (PEP 3333), where cheroot appends them (a duplicate Content-Type and a Content-Length that no
  longer fits). With its checks, cheroot's own still costs 2% more per hello (one pass, names remembered).
- ``Gateway.respond``: replaces cheroot's to add ``wsgi.file_wrapper`` bodies sent with ``socket.sendfile``, no body
  on HEAD (RFC 9110 §9.3.2; cheroot sends whatever the application yields, which breaks keep-alive framing), and
  ``close()`` always called (cheroot's own skips it when sending the headers raises because the client has gone:
  Django's ``request_finished`` then never fires). Correctness, not speed.
- ``Gateway.write``: when the body is one chunk of exactly Content-Length bytes, the header block
  (``Request.header_block``) is sent with the body in one ``send`` (cheroot flushes each write: two sends, two TCP
  segments). Without it a 5 KiB response costs 9.5% more instructions and a hello 10% more, besides the second
  segment on the wire. That send is made without giving up the GIL (``devserver.gil_io``), as are ``read_head``'s
  reads: the GIL's convoy effect made the 99th percentile of a Django view's latency five times its median.
- ``StrictHeaderReader``: replaces ``cheroot.server.HeaderReader.__call__`` (and reads its module constant
  ``comma_separated_headers``): header syntax by RFC 9110 §5 and RFC 9112 §5 (cheroot accepted whitespace before
  the colon, NUL and bare CR in values, obs-fold), a repeated Host or conflicting Content-Length a 400 (upstream
  issue 737), a bounded count of fields, and names with ``_`` dropped as runserver drops them (cheroot's own
  ``DropUnderscoreHeaderReader`` raises ``TypeError`` on every request in 11.1). Correctness, not speed: cheroot's
  reader costs 7-10% less a request.
- ``Request``: ``parse_request``, ``read_request_headers`` and ``respond`` replace cheroot's, for the framing rules
  of RFC 9112 §6 and §7 and the limits (cheroot framed a request with both Transfer-Encoding and Content-Length by
  the chunked coding and left the CRLF after the last chunk unread, so a front end that framed it by Content-Length
  passed a smuggled request through; a chunked body the application did not read was parsed as the next request;
  bad chunk framing was a 500 with a traceback; Content-Length ``+3`` was accepted). They reuse cheroot's
  ``read_request_line``, ``SizeCheckWrapper``, ``KnownLengthRFile`` and ``simple_response``.
  ``Request.read_plain_request_line`` takes a request line as browsers send it (origin-form, printable ASCII, no
  ``%``) with one regular expression and sets the fields cheroot's ``read_request_line`` would set; any other line
  goes to cheroot's, which splits, ``urlsplit``s and unquotes it: 8% more per file request, 11% more per hello.
  ``Request.send_headers`` writes ``Request.header_block``, which replaces cheroot's ``send_headers``: the same
  completion of the headers (checked against cheroot's in the tests), with a ``Date`` formatted once a second, an
  unread body drained in blocks up to ``DRAIN_LIMIT`` or the connection closed (cheroot read the whole rest into
  memory at once), and the status line and headers joined once. cheroot's costs 9% more per file request and 11%
  more per hello.
- ``LineReader``: ``readline`` on cheroot's ``StreamReader`` (a ``_pyio.BufferedReader``) that finds a line
  already in the buffer with one ``bytes.find`` on ``_pyio``'s private ``_read_buf``/``_read_pos``. It is used only
  when a ``StreamReader`` has those fields (``LINE_READER_USABLE``); otherwise cheroot's own reading is used.
  cheroot's own costs 51% more per 5 KiB request, 54% more per 304 and 63% more per hello.
- ``read_head`` (with ``Connection.communicate`` and ``close``, and ``Server.process_conn`` and ``put_conn``): a
  worker takes a request only once its head and body have all arrived, as under waitress; until then the
  connection waits in the selector and holds no thread (a client sending its head, or its body, a byte at a time
  held a worker per connection). The body goes to a ``BodyBuffer`` (``ChunkedDecoder`` for a chunked one), the
  head into ``LineReader``'s buffer fields, and ``conn.last_used`` is set so that cheroot's expiry of idle
  connections enforces the deadlines.
- ``TLSAdapter``: cheroot's ``BuiltinSSLAdapter`` with ``wrap`` replaced: cheroot makes the TLS handshake on the
  thread that accepts connections, blocking, so one client that sends no ClientHello stalled every new connection
  (cheroot issue 748); the handshake is made by ``read_head`` instead, without blocking.
- ``stop_accepting`` and ``waiting_connections`` (``Server.stop``): the listening socket unregistered from
  cheroot's private selector, and its connections listed, so that a graceful stop first serves the requests that
  are still arriving on connections already accepted (cheroot's ``stop()`` closed them with the listening socket:
  under a rolling restart of ``--workers``, clients saw "connection closed without response").
- ``SCGIConnection`` (with ``devserver.server.SCGIServer.process_conn``): cheroot's ``HTTPConnection`` with
  ``communicate`` replaced, so that cheroot's selector, pool and graceful stop serve SCGI (one request per connection,
  ``devserver.scgi``) instead of HTTP; it keeps the attributes ``Server.drain`` looks at.
- ``Gateway.stream`` and ``Gateway.end`` (``devserver.streams``): a stream's chunks written under a lock, so that
  the thread that stops the server can end it at once (its last chunk, then a shutdown of the socket) while its
  worker waits in the application's iterator; ``Request.chunked_write`` and ``sent_headers`` are set so that
  cheroot writes neither again. ``Request._respond_with_body`` turns ``ssl.SSLEOFError`` and
  ``SSLZeroReturnError`` (a TLS client gone mid-response) into ``ConnectionResetError``, which cheroot's
  ``communicate()`` ends quietly; it logged them with a traceback.
- ``SelectorWaker`` (registered in the private ``_connections._selector``, whose private ``_stop_requested`` it
  sets): ends cheroot's selector loop at once on a stop. cheroot's ``ConnectionManager.stop()`` waited out its
  ``select()`` timeout, 0.5 s, once ``stop_accepting`` had taken the listening socket out (Ctrl-C took that long).
- ``pool_threads`` (the private ``_threads``): the worker threads, taken before cheroot's ``ThreadPool.stop()``
  empties that list, so that ``Server.settled`` knows when only ended streams' threads are left.
- ``answer_busy`` (with ``Connection.communicate`` and ``Server.answer_waiting``): a request queued for a worker
  for longer than the header timeout is answered 503 from the pool sizer's thread; the worker that takes it from
  cheroot's queue later leaves it. Its request line, for the access log, is read from ``LineReader``'s buffer.
- ``ConnectionManager`` (``accept_pausing``, with ``resume_accepting`` and ``Server.pause_accepting``): an
  ``accept()`` that fails for want of descriptors (EMFILE) takes the listening socket out of the selector for
  ``Server.ACCEPT_PAUSE`` seconds, as nginx does, instead of escaping cheroot's loop, which then spun at 100% CPU
  and stopped closing idle connections, so that no descriptor ever came free.
- ``worker_count`` and ``grow``: the live workers of a ``ThreadPool`` from its private ``_threads`` list (cheroot has
  no public count), and ``grow`` (replacing cheroot's, through its private ``_spawn_worker`` and ``_threads``) one
  worker at a time, each counted as it starts, so that one that cannot start (``can't start new thread``) loses no
  other, after its private ``_clear_dead_threads()``: cheroot keeps exited workers in that list until the next
  ``shrink()`` and counts them against ``max``, so a pool that had shrunk could not grow again
  (150 concurrent 1 s requests took 15 s on 14 threads while the log said all 100 were busy).
"""

import contextlib
import errno
import io
import logging
import os
import re
import selectors
import socket
import ssl
import sys
import tempfile
import threading
import time

from cheroot import connections as cheroot_connections
from cheroot import errors as cheroot_errors
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile, StreamReader
from cheroot.ssl.builtin import BuiltinSSLAdapter
from django.utils.http import http_date

from . import gil_io
from .media import FileIterator
from .streams import END_WAIT, is_stream, shut

__all__ = [
    "LINE_READER_USABLE",
    "BodyBuffer",
    "ChunkedDecoder",
    "body_framing",
    "Connection",
    "StrictHeaderReader",
    "TLSAdapter",
    "ConnectionManager",
    "OUT_OF_DESCRIPTORS",
    "accept_pausing",
    "resume_accepting",
    "read_chunked_body",
    "Gateway",
    "LineReader",
    "Request",
    "SCGIConnection",
    "current_date",
    "HEAD_CLOSED",
    "HEAD_READY",
    "HEAD_WAIT",
    "grow",
    "read_head",
    "stop_accepting",
    "waiting_connections",
    "worker_count",
]

_ENVIRON_KEYS = {}  # request header name (bytes) -> WSGI environ key
_RESPONSE_NAMES = {}  # response header name (str) -> (name, lower-case name), both bytes; checked to be a token


class Gateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, with what a file server and Django need from it:

    - ``wsgi.file_wrapper`` (``devserver.media.FileIterator``), whose body goes out with ``socket.sendfile`` on a
      plain socket (not TLS): no copy through Python. Django's ``FileResponse`` uses it too.
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
        """The WSGI environ, as ``cheroot.wsgi.Gateway_10.get_environ`` builds it, plus ``wsgi.file_wrapper``;
        header names are turned into ``HTTP_*`` keys through a cache instead of ``str.format`` per header."""
        req = self.req
        conn = req.conn
        server = req.server
        environ = {
            "ACTUAL_SERVER_PROTOCOL": server.protocol,
            "PATH_INFO": req.path.decode("ISO-8859-1"),
            "QUERY_STRING": req.qs.decode("ISO-8859-1"),
            "REMOTE_ADDR": conn.remote_addr or "",
            "REMOTE_PORT": str(conn.remote_port or ""),
            "REQUEST_METHOD": req.method.decode("ISO-8859-1"),
            "REQUEST_URI": req.uri.decode("ISO-8859-1"),
            "SCRIPT_NAME": "",
            "SERVER_NAME": server.server_name,
            "SERVER_PROTOCOL": req.request_protocol.decode("ISO-8859-1"),
            "SERVER_SOFTWARE": server.software,
            "wsgi.errors": sys.stderr,
            "wsgi.input": req.rfile,
            "wsgi.input_terminated": bool(req.chunked_read),
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
        if conn.ssl_env:
            environ.update(conn.ssl_env)
        return environ

    def respond(self):
        response = self.req.server.wsgi_app(self.env, self.start_response)
        self.response_length = self.remaining_bytes_out
        try:
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
        except BaseException:
            self.cut_off = True  # the client went away or read too slowly, or the application failed midway
            raise
        finally:
            try:
                self.req.ensure_headers_sent()
            finally:
                try:
                    close = getattr(response, "close", None)
                    if close is not None:
                        close()
                finally:
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
                    data = req.header_block()
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
                _send_now(req.conn, data)
            shut(req.conn.socket)
        finally:
            self.lock.release()

    def start_response(self, status, headers, exc_info=None):
        """PEP 3333's ``start_response``; replaces cheroot's (``cheroot.wsgi.Gateway_10.start_response``), which
        makes two function calls per header and checks nothing but types. Here, in one pass:

        - ``status`` is three digits, then a space and a reason phrase, or nothing more; a header name is a token
          (RFC 9110 §5.1), a value holds no control character but HTAB (§5.5): otherwise ``ValueError``, and the
          client gets a 500. cheroot sent a CR or LF in them as given: a value made from user input could split the
          response in two (CWE-113). ``TypeError`` for a status, name or value that is not a ``str``, and
          ``UnicodeEncodeError`` for one that is not Latin-1, as under cheroot.
        - A second call with ``exc_info`` before the headers are sent replaces the first call's headers, as PEP 3333
          says; cheroot appended them (a duplicate Content-Type, and a Content-Length that no longer fits the body).
          After they are sent, it raises ``exc_info``'s exception; without ``exc_info``, ``RuntimeError``.
        """
        req = self.req
        if self.started_response:
            if not exc_info:
                raise RuntimeError("WSGI start_response called a second time with no exc_info.")
            if req.sent_headers:
                raise exc_info[1].with_traceback(exc_info[2])
        if not isinstance(status, str):
            raise TypeError("WSGI response status is not of type str.")
        encoded_status = status.encode("ISO-8859-1")
        if _STATUS.fullmatch(encoded_status) is None:
            raise ValueError(f"Malformed WSGI response status {status!r}.")
        outheaders, values, length = [], [], None
        for name, value in headers:
            known = _RESPONSE_NAMES.get(name)
            if known is None:
                known = _response_name(name)
            if not isinstance(value, str):
                raise TypeError(f"WSGI response header value {value!r} is not of type str.")
            value = value.encode("ISO-8859-1")
            if known[1] == b"content-length":
                length = int(value)
            outheaders.append((known[0], value))
            values.append(value)
        if _BAD_VALUE_BYTE.search(b"\t".join(values)):
            raise ValueError("A WSGI response header value holds a control character (CR, LF, NUL...).")
        self.started_response = True
        self.remaining_bytes_out = length
        req.status = encoded_status
        req.outheaders = outheaders
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
            data = req.header_block() + chunk
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
        status, the body bytes sent and the time since the application was called; a response cut off (the
        client went away or read too slowly) says so, with the length it announced."""
        access_log = self.req.server.access_log
        if access_log is None:
            return
        req = self.req
        req.logged = True
        status = req.status[:3]
        # No status means the application raised before start_response; cheroot answers that with a 500.
        code = int(status) if status.isdigit() else 500
        request_line = b" ".join((req.method or b"-", req.uri or b"-", req.request_protocol or b"-"))
        access_log.log(
            self.env.get("REMOTE_ADDR") if self.env else None,
            request_line.decode("latin-1"),
            code,
            self.body_bytes,
            time.perf_counter() - self.started,
            self.response_length,
            self.cut_off,
        )


_RESTARTING_BODY = b"The server is stopping or restarting: retry.\n"
_RESTARTING = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
    b"Connection: close\r\n\r\n%s" % (len(_RESTARTING_BODY), _RESTARTING_BODY)
)


def _is_event_stream(headers):
    """Whether response ``headers`` (``(name, value)`` byte pairs) say ``Content-Type: text/event-stream``."""
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"text/event-stream"
    return False


_COMMA_SEPARATED = frozenset(cheroot_server.comma_separated_headers)

# RFC 9110 §5.1: a field name is a token; §5.5: a field value is visible characters, SP and HTAB (obs-text too).
# One match per line: the name, a token; the value, without surrounding blanks or control characters but HTAB.
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[^\x00-\x1f\x7f]|\t)*?)[ \t]*\r\n")
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(rb"[0-9]{3}(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A request line as browsers and proxies send it (RFC 9112 §3), for Request.read_plain_request_line: the method,
# the request-target (origin-form: a path starting with one "/", in printable ASCII without "%" or "#"), the path,
# the query. cheroot answers 400 to a line with bytes past ASCII (urlsplit cannot decode it), so these go to it.
_PLAIN_REQUEST_LINE = re.compile(
    rb"([A-Z]+) ((/(?!/)[^%#?\x00-\x20\x7f-\xff]*)(?:\?([^#\x00-\x20\x7f-\xff]*))?) HTTP/1\.([01])\r\n"
)
_BAD_TARGET_BYTE = re.compile(rb"[\x00-\x20\x7f]")
# RFC 9112 §3: method SP request-target SP HTTP-version CRLF, one space each, nothing around it; HTTP-version is
# "HTTP/" DIGIT "." DIGIT (§2.3). cheroot stripped whitespace around the line and read the version with int().
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^\x00-\x20\x7f]+ HTTP/[0-9]\.[0-9]\r\n")
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), a name a
# token, a value a token or a quoted-string.
_TOKEN_TEXT = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*\r\n" % (_TOKEN_TEXT, _TOKEN_TEXT, _QUOTED)
)
_DIGITS = re.compile(rb"[0-9]{1,19}")

DRAIN_LIMIT = 1024 * 1024
"""Bytes of a request body the application left unread that are read and dropped, in blocks, so that the
connection can carry the next request; past this the connection is closed instead (cheroot read the whole rest
into memory in one call: a 300 MB POST to a view that ignores it grew the server by 587 MiB)."""

MAX_TRAILER_LINES = 100
"""Trailer lines after a chunked body are read and dropped; more than this many is a 400."""

SPOOL_MEMORY = 64 * 1024
"""Bytes of a request body held in memory before it is spooled to a temporary file: a thousand connections that
stall their uploads midway hold 64 MiB."""

FRAMING_ALLOWANCE = 4096
"""Bytes of chunked framing (size lines, extensions, the CRLF after each chunk, trailers) a body may have before it
must carry at least 8 bytes of data for each byte of framing: decoding costs about 4 µs a chunk, so a body of
one-byte chunks (or of long extensions, as in Node's CVE-2024-22019) would cost far more to read than to send."""


def _response_name(name):
    """``(name, name.lower())`` as bytes for a response header name (a ``str``), remembered for the next response
    (at most 512 names: the application may make them from input); ``TypeError`` or ``ValueError`` if it is not a
    ``str`` holding a token."""
    if not isinstance(name, str):
        raise TypeError(f"WSGI response header key {name!r} is not of type str.")
    encoded = name.encode("ISO-8859-1")
    if _TOKEN.fullmatch(encoded) is None:
        raise ValueError(f"WSGI response header name {name!r} is not a token.")
    known = (encoded, encoded.lower())
    if len(_RESPONSE_NAMES) < 512:
        _RESPONSE_NAMES[name] = known
    return known


_date = (0, b"")


def current_date():
    """The ``Date`` header value for now, formatted once per second (cheroot formats it on every response)."""
    global _date
    now = int(time.time())
    second, value = _date
    if second != now:
        value = http_date(now).encode("ascii")
        _date = (now, value)
    return value


class HeaderLimit(ValueError):
    """The request's header block is over a limit: answered 431 (RFC 6585 §5)."""


class StrictHeaderReader(cheroot_server.HeaderReader):
    """Reads the request's header fields by RFC 9110 §5 and RFC 9112 §5, replacing
    ``cheroot.server.HeaderReader.__call__``; ``ValueError`` means 400, ``HeaderLimit`` 431.

    - A field name must be a token, with no whitespace before the colon (RFC 9112 §5.1: cheroot accepted
      ``Transfer-Encoding : chunked``, a way to smuggle a request past a front end that ignores such a line); a
      value must not hold NUL, a bare CR or another control character (§5.5).
    - Continuation lines (obs-fold) are rejected (RFC 9112 §5.2 allows it; cheroot kept only the last part).
    - ``Host`` more than once, or ``Content-Length`` more than once with different values, is a 400 (RFC 9112
      §3.2, §6.3; cheroot keeps the last Content-Length: upstream issue 737).
    - More than ``max_headers`` fields is a ``HeaderLimit`` (their size is bounded by the request's reader).
    - Names with ``_`` are dropped, as runserver, nginx and Apache do: in the WSGI environ ``X_Forwarded_Proto``
      would pose as ``X-Forwarded-Proto``. (cheroot's own ``DropUnderscoreHeaderReader`` raises ``TypeError`` on
      every request in 11.1.)
    - Repeated fields that cheroot lists as comma-separated are joined with ``", "``; for others the last wins.
    """

    def __init__(self, max_headers=100, max_size=65536):
        self.max_headers = max_headers
        self.max_size = max_size

    def __call__(self, rfile, hdict=None):
        """Read header lines from ``rfile`` up to the blank line into ``hdict`` (a new dict by default) and return
        it. At most ``max_size`` bytes are read: the reader bounds each line itself (``readline(n)``), so that
        no wrapper sits between it and the connection's ``LineReader``."""
        if hdict is None:
            hdict = {}
        readline = rfile.readline
        match_line = _FIELD_LINE.fullmatch
        left = self.max_size
        count = 0
        while True:
            line = readline(left + 1)
            left -= len(line)
            if left < 0:
                raise HeaderLimit("The request's header fields are too large.")
            if line == b"\r\n":
                return hdict
            matched = match_line(line)
            if matched is None:
                raise ValueError(_line_error(line))
            count += 1
            if count > self.max_headers:
                raise HeaderLimit(f"More than {self.max_headers} header fields.")
            key, value = matched.groups()
            if b"_" in key:
                continue
            name = key.title()
            existing = hdict.get(name)
            if existing is not None:
                if name == b"Host":
                    raise ValueError("More than one Host header.")
                if name == b"Content-Length" and existing != value:
                    raise ValueError("Conflicting Content-Length headers.")
                if name in _COMMA_SEPARATED and existing:
                    value = existing + b", " + value
            hdict[name] = value


def _line_error(line):
    """Why a header line did not match ``_FIELD_LINE``, for the 400's body."""
    if not line:
        return "Illegal end of headers."
    if not line.endswith(b"\r\n"):
        return "HTTP requires CRLF terminators"
    if line[:1] in (b" ", b"\t"):
        return "Obsolete line folding is not accepted."
    if _BAD_VALUE_BYTE.search(line[:-2]):
        return "Illegal character in a header field."
    return "Illegal header line."


class _MalformedBody(ValueError):
    """A chunked request body that does not follow RFC 9112 §7.1: answered 400."""


class _BodyTooLarge(ValueError):
    """A request body over ``max_request_body_size``: answered 413."""


_SIZE_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _DONE = range(5)
_LINE_BOUND = {_SIZE_LINE: 4096, _CHUNK_END: 2, _TRAILER: 8192}


class ChunkedDecoder:
    """The chunked transfer coding of RFC 9112 §7.1, decoded as it arrives: ``feed(data)`` writes the chunks' data
    to ``out`` (a binary file) and returns how many bytes of ``data`` belonged to the body; ``done`` once the
    last chunk and the trailer section have been read, ``length`` the body's size in bytes.

    Chunk sizes are 1 to 16 hex digits (Python's ``int(x, 16)`` took ``0x5``, ``+5`` and ``0_5``); chunk
    extensions must be of RFC 9112 §7.1.1's grammar (whitespace only around ``;`` and ``=``, names tokens, values
    tokens or quoted strings), and are ignored; chunk data must be followed by CRLF; up to ``MAX_TRAILER_LINES``
    trailer lines, each a field line (§7.1.2), are read and dropped; past ``FRAMING_ALLOWANCE`` bytes of framing,
    the data must be 8 times the framing. Raises ``_MalformedBody`` for anything else and ``_BodyTooLarge`` past
    ``limit`` bytes (0: no limit). Used on the selector's thread for bytes as they come (``read_head``) and on a
    worker for a blocking reader (``read_chunked_body``): one parser for both.
    """

    def __init__(self, out, limit):
        self.out = out
        self.limit = limit
        self.length = 0
        self.done = False
        self._state = _SIZE_LINE
        self._line = b""
        self._left = 0  # bytes of chunk data still to come
        self._trailers = 0
        self._framing = 0  # bytes of lines read

    @property
    def wanted(self):
        """What a blocking reader should ask for next: ``(True, n)`` a line of at most ``n`` bytes, ``(False, n)``
        ``n`` bytes of data."""
        if self._state == _CHUNK_DATA:
            return False, min(self._left, 65536)
        return True, _LINE_BOUND[self._state] - len(self._line) + 1

    def feed(self, data):
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self._state == _CHUNK_DATA:
                take = min(self._left, end - pos)
                self.out.write(data[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._state = _CHUNK_END
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                if len(self._line) > _LINE_BOUND[self._state]:
                    raise _MalformedBody("Malformed chunked body.")
                return end
            line, self._line, pos = self._line + data[pos : newline + 1], b"", newline + 1
            self._line_ended(line)
        return pos

    def _line_ended(self, line):
        state = self._state
        if len(line) > _LINE_BOUND[state] or not line.endswith(b"\r\n"):
            raise _MalformedBody(
                "Chunk data not followed by CRLF." if state == _CHUNK_END else "Malformed chunked body."
            )
        self._framing += len(line)
        if self._framing > FRAMING_ALLOWANCE and self._framing * 8 > self.length:
            raise _MalformedBody("The chunks are too small for their framing.")
        if state == _SIZE_LINE:
            matched = _CHUNK_SIZE_LINE.fullmatch(line)
            if matched is None:
                raise _MalformedBody("Malformed chunk size.")
            size = int(matched[1], 16)
            if not size:
                self._state = _TRAILER
                return
            self.length += size
            if self.limit and self.length > self.limit:
                raise _BodyTooLarge("The request body is over the size limit.")
            self._state, self._left = _CHUNK_DATA, size
        elif state == _CHUNK_END:
            if line != b"\r\n":
                raise _MalformedBody("Chunk data not followed by CRLF.")
            self._state = _SIZE_LINE
        elif line == b"\r\n":
            self._state, self.done = _DONE, True
        elif _FIELD_LINE.fullmatch(line) is None:
            # RFC 9112 §7.1.2: a trailer section is field lines. A request line here (the next request, after a
            # last chunk with no final CRLF), a bare CR, a NUL, an obs-fold: a front end could frame it otherwise.
            raise _MalformedBody("Malformed trailer field.")
        else:
            self._trailers += 1
            if self._trailers > MAX_TRAILER_LINES:
                raise _MalformedBody("Too many trailer lines.")


def read_chunked_body(rfile, limit):
    """Read a chunked request body (RFC 9112 §7.1) from ``rfile``, a blocking reader, with ``ChunkedDecoder``,
    and return it de-chunked, as ``(file, length)``: a ``SpooledTemporaryFile`` at position 0 (in memory up to
    ``SPOOL_MEMORY`` bytes). Raises ``_MalformedBody`` (also for a body that ends early) or ``_BodyTooLarge``.
    Nothing past the body is read."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    decoder = ChunkedDecoder(spool, limit)
    try:
        while not decoder.done:
            line, size = decoder.wanted
            data = rfile.readline(size) if line else rfile.read(size)
            if not data:
                raise _MalformedBody("The chunked body ended early.")
            decoder.feed(data)
        spool.seek(0)
        return spool, decoder.length
    except BaseException:
        spool.close()
        raise


class Request(cheroot_server.HTTPRequest):
    """cheroot's request, with the request head and its framing read strictly (RFC 9112), limits, and a body the
    application left unread dropped in bounded blocks or the connection closed.

    - ``parse_request``: replaces cheroot's to bound the request line (``server.max_request_line``: 414) apart from
      the header block (``server.max_request_header_size`` bytes and ``server.max_headers`` fields: 431, where
      cheroot answered 413 for a header block that was too large); a plain request line is read by
      ``read_plain_request_line``, any other by cheroot's ``read_request_line``.
    - ``read_request_headers``: replaces cheroot's. Transfer-Encoding with Content-Length, Transfer-Encoding on
      HTTP/1.0, ``chunked`` not the final coding, a Content-Length that is not digits, a missing Host on HTTP/1.1:
      400 and the connection closed (RFC 9112 §6.1, §6.3, §3.2); another transfer coding 501; a Content-Length over
      ``server.max_request_body_size`` 413 before the body is read. The ``Connection`` header's tokens are compared
      without case (cheroot kept ``Connection: Close`` open).
    - ``respond``: the body comes whole before the application is called, bounded by the body size limit
      (received by ``read_head``; over TLS, where ``read_head`` does not run, a chunked body is read here with
      ``read_chunked_body``, and one with a Content-Length is read by the application from the connection). A
      chunked body is then seen with a Content-Length, as under waitress: a framing error is a 400 from the server
      rather than an exception in the application, and no byte of it can be taken for the next request.
    - ``send_headers``: writes ``header_block``, which replaces cheroot's: a ``Date`` formatted once a second; an
      unread body drained up to ``DRAIN_LIMIT``, or the connection closed.
    """

    body_buffered = False
    """Whether the body came whole before the application was called (nothing of it is left on the connection)."""

    logged = False
    """Whether this request has its line in the access log (the gateway's, or ``simple_response``'s)."""

    @property
    def header_reader(self):
        """The server's ``StrictHeaderReader`` (it knows the server's ``max_headers``)."""
        return self.server.header_reader

    def parse_request(self):
        server = self.server
        if not self.read_plain_request_line():
            if not self._strict_request_line():
                self.started_request = True
                self._refuse("400 Bad Request", "Malformed Request-Line.")
                return
            self.rfile = cheroot_server.SizeCheckWrapper(self.conn.rfile, server.max_request_line)
            try:
                if not self.read_request_line():
                    return
            except cheroot_errors.MaxSizeExceeded:
                self.simple_response("414 Request-URI Too Long", "The request line is too long.")
                return
            if not _TOKEN.fullmatch(self.method) or _BAD_TARGET_BYTE.search(self.uri):
                # RFC 9112 §3: a method is a token, a request-target has no control characters (cheroot passed a
                # NUL on to the application, as PATH_INFO).
                self._refuse("400 Bad Request", "Malformed Request-Line.")
                return
        self.rfile = self.conn.rfile  # the header reader bounds what it reads itself
        if self.read_request_headers():
            self.ready = True

    def _strict_request_line(self):
        """Whether the request line waiting in the ``LineReader`` buffer (after at most one empty line, which RFC
        9112 §2.2 lets a server ignore) is of RFC 9112 §3's syntax: ``method SP request-target SP HTTP/D.D CRLF``.
        ``True`` when it cannot be seen (another reader, or a line longer than the limit: cheroot answers 414).
        cheroot's own parse strips whitespace around the line (`` GET``, ``HTTP/1.1\x0c``, ``\r\r\n``, which
        nginx refuses) and reads the version with ``int()`` (``HTTP/+1.1``, ``HTTP/1.00``, ``HTTP/01.1``)."""
        rfile = self.conn.rfile
        if type(rfile) is not LineReader:
            return True
        buffer, start = rfile._read_buf, rfile._read_pos
        if buffer.startswith(b"\r\n", start):
            start += 2
        end = buffer.find(b"\n", start) + 1
        limit = self.server.max_request_line
        if not end or (limit and end - start > limit):
            return True
        return _REQUEST_LINE.fullmatch(buffer, start, end) is not None

    def read_plain_request_line(self):
        """Take the request line from the connection's ``LineReader`` buffer if it is a plain one, as browsers and
        proxies send it: an upper-case method (not CONNECT), a path that starts with one ``/`` and holds only
        printable ASCII but ``%`` and ``#``, an optional query, ``HTTP/1.0`` or ``HTTP/1.1``, CRLF, within
        ``server.max_request_line`` bytes. Then it sets what cheroot's ``read_request_line`` sets for such a line
        (``method``, ``uri``, ``path``, ``qs``, ``authority``, the protocols) and returns ``True``; else it reads
        nothing and returns ``False``, and cheroot's parses the line. cheroot's splits, ``urlsplit``s and unquotes
        every line, for a tenth of the server's work on a small response; ``tests/test_cheroot_overrides.py``
        checks that both give the same fields."""
        rfile = self.conn.rfile
        if type(rfile) is not LineReader:
            return False
        if rfile._read_pos >= len(rfile._read_buf):  # read_head has not filled it (a connection it does not read)
            rfile.peek(1)
        buffer, start = rfile._read_buf, rfile._read_pos
        end = buffer.find(b"\n", start) + 1
        limit = self.server.max_request_line
        if not end or (limit and end - start > limit):
            return False
        matched = _PLAIN_REQUEST_LINE.fullmatch(buffer, start, end)
        if matched is None or matched[1] == b"CONNECT":
            return False
        rfile._read_pos = end
        rfile.bytes_read += end - start
        self.started_request = True
        self.method, self.uri, self.path, query, minor = matched.groups()
        self.qs = query or b""
        self.authority = b""
        self.request_protocol = b"HTTP/1." + minor
        self.response_protocol = "HTTP/1.0" if minor == b"0" or self.server.protocol == "HTTP/1.0" else "HTTP/1.1"
        return True

    def _refuse(self, status, message):
        self.close_connection = True
        self.simple_response(status, message)

    def simple_response(self, status, msg=""):
        """cheroot's, and a line in the access log: the server's own answers to bad input (400, 413, 414, 431,
        501, 505, and a 500 when the application failed before any response) were not logged, so an operator did
        not see them. The client is the peer (no proxy's headers were read); the request line is what was parsed
        of it, or ``-``."""
        super().simple_response(status, msg)
        access_log = self.server.access_log
        if access_log is None or self.logged:
            return
        self.logged = True
        parts = (getattr(self, "method", None), getattr(self, "uri", None), getattr(self, "request_protocol", None))
        request_line = b" ".join(part or b"-" for part in parts).decode("latin-1") if any(parts) else "-"
        size = len(msg.encode("latin-1") if isinstance(msg, str) else msg)
        code = int(str(status)[:3])
        access_log.log(self.conn.remote_addr, request_line, code, size, 0.0)

    def read_request_headers(self):
        try:
            self.header_reader(self.rfile, self.inheaders)
        except HeaderLimit as error:
            self._refuse("431 Request Header Fields Too Large", str(error))
            return False
        except ValueError as error:
            self._refuse("400 Bad Request", str(error))
            return False
        headers = self.inheaders
        http11 = self.request_protocol != b"HTTP/1.0"
        if http11 and b"Host" not in headers:
            self._refuse("400 Bad Request", "Missing Host header.")
            return False

        self.chunked_read = False
        transfer_encoding = headers.get(b"Transfer-Encoding")
        content_length = headers.get(b"Content-Length")
        if transfer_encoding is not None:
            codings = [coding.strip().lower() for coding in transfer_encoding.split(b",")]
            if content_length is not None:
                self._refuse("400 Bad Request", "Transfer-Encoding and Content-Length together.")
                return False
            if not http11:
                self._refuse("400 Bad Request", "Transfer-Encoding in an HTTP/1.0 request.")
                return False
            if codings[-1] != b"chunked" or codings.count(b"chunked") != 1 or b"" in codings:
                self._refuse("400 Bad Request", "chunked must be the final transfer coding, once.")
                return False
            if len(codings) > 1:
                self._refuse("501 Not Implemented", "Transfer codings other than chunked are not implemented.")
                return False
            self.chunked_read = True
        elif content_length is not None:
            if not _DIGITS.fullmatch(content_length):
                self._refuse("400 Bad Request", "Malformed Content-Length header.")
                return False
            limit = self.server.max_request_body_size
            if limit and int(content_length) > limit:
                self._refuse("413 Request Entity Too Large", "The request body is over the size limit.")
                return False

        tokens = {token.strip().lower() for token in headers.get(b"Connection", b"").split(b",")}
        if self.response_protocol == "HTTP/1.1":
            if b"close" in tokens:
                self.close_connection = True
        elif b"keep-alive" not in tokens:
            self.close_connection = True

        # PEP 3333's expect/continue, as cheroot does it: "100 Continue" at once; unless the body has come already
        # (read_head sent it then).
        if self.conn.body is None and headers.get(b"Expect", b"").lower() == b"100-continue":
            message = self.server.protocol.encode("ascii") + b" 100 Continue\r\n\r\n"
            try:
                self.conn.wfile.write(message)
            except OSError as error:
                if error.args[0] not in cheroot_errors.socket_errors_to_ignore:
                    raise
        return True

    def respond(self):
        body = self.conn.body
        if body is not None:
            self.conn.body = None
            try:
                self._respond_with_buffered(body)
            finally:
                body.close()
            return
        if self.chunked_read:
            try:
                file, length = read_chunked_body(self.conn.rfile, self.server.max_request_body_size)
            except _BodyTooLarge as error:
                self._refuse("413 Request Entity Too Large", str(error))
                return
            except _MalformedBody as error:
                self._refuse("400 Bad Request", str(error))
                return
            try:
                self._respond_with_buffered_file(file, length)
            finally:
                file.close()
            return
        length = int(self.inheaders.get(b"Content-Length", 0))
        self.rfile = cheroot_server.KnownLengthRFile(self.conn.rfile, length)
        self._respond_with_body()

    def _respond_with_buffered(self, body):
        """Answer with the body ``read_head`` received (a ``BodyBuffer``), after checking that the parser framed
        the request as ``body_framing`` did (it cannot differ; if it ever did, the connection is closed)."""
        if body.error is not None:
            self._refuse(*body.error)
            return
        framed = None if self.chunked_read else int(self.inheaders.get(b"Content-Length", 0))
        if self.chunked_read != body.chunked or framed not in (None, body.length):
            self._refuse("400 Bad Request", "Malformed request framing.")
            return
        self._respond_with_buffered_file(body.file, body.length)

    def _respond_with_buffered_file(self, file, length):
        # The application sees a received chunked body with a Content-Length, as under waitress.
        self.chunked_read = False
        self.body_buffered = True
        self.inheaders.pop(b"Transfer-Encoding", None)
        self.inheaders[b"Content-Length"] = str(length).encode("ascii")
        self.rfile = cheroot_server.KnownLengthRFile(file, length)
        self._respond_with_body()

    def _respond_with_body(self):
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
        self.conn.wfile.write(self.header_block())

    def header_block(self):
        """The response's status line and header block (bytes), for ``send_headers`` to write or ``Gateway.write``
        to send with the body. The headers are completed as cheroot's ``send_headers`` completes them (chunked
        coding or a closed connection for a body of unknown length, ``Connection``, ``Keep-Alive``, ``Server``),
        which this replaces, with three changes:

        - ``Date`` is formatted once a second (``current_date``), not on every response;
        - a body the application left unread is drained in blocks up to ``DRAIN_LIMIT`` bytes, or the connection is
          closed (cheroot read the whole rest into memory at once); one received whole before the application ran
          is left alone (nothing of it is on the connection);
        - while the server stops (``server.draining``), the connection is closed after this response.
        """
        headers = self.outheaders
        names = {name.lower() for name, _ in headers}
        if self.server.draining:  # stopping: this is the connection's last response
            self.close_connection = True
        remaining = getattr(self.rfile, "remaining", 0)
        if self.body_buffered:
            # The application keeps its own reference to wsgi.input.
            self.rfile = _NO_BODY
        elif remaining and not self.close_connection:
            if remaining > DRAIN_LIMIT:
                self.close_connection = True
            else:
                while self.rfile.remaining and self.rfile.read(min(self.rfile.remaining, 65536)):
                    pass
        status = int(self.status[:3])
        if status == 413:
            self.close_connection = True
        elif b"content-length" not in names and status >= 200 and status not in (204, 205, 304):
            if self.response_protocol == "HTTP/1.1" and self.method != b"HEAD":
                self.chunked_write = True
                headers.append((b"Transfer-Encoding", b"chunked"))
            else:  # closing the connection is the only way to tell where the body ends
                self.close_connection = True
        if not self.close_connection:
            self.close_connection = not self.server.can_add_keepalive_connection
        if b"connection" not in names:
            if self.response_protocol == "HTTP/1.1":
                if self.close_connection:
                    headers.append((b"Connection", b"close"))
            elif not self.close_connection:
                headers.append((b"Connection", b"Keep-Alive"))
        if (b"Connection", b"Keep-Alive") in headers:
            headers.append((b"Keep-Alive", f"timeout={self.server.timeout}".encode("ascii")))
        if b"date" not in names:
            headers.append((b"Date", current_date()))
        if b"server" not in names:
            headers.append((b"Server", self.server.server_name.encode("ISO-8859-1")))
        lines = [self.server.protocol.encode("ascii") + b" " + self.status]
        lines += [name + b": " + value for name, value in headers]
        lines += (b"", b"")
        return b"\r\n".join(lines)


_NO_BODY = cheroot_server.KnownLengthRFile(io.BytesIO(), 0)


class LineReader(StreamReader):
    """cheroot's socket reader with a fast ``readline``.

    cheroot reads the request line and each header line with ``readline`` from a pure-Python (``_pyio``) buffered
    reader, which walks ``peek``/``read`` calls for every line: a quarter of the time of a small request. A line
    that is already in the buffer is found here with one ``bytes.find``; any other case goes the original way.
    """

    def readline(self, size=-1):
        buffer, start = self._read_buf, self._read_pos
        if start >= len(buffer):  # empty, as before each request line: fill it with what the socket has
            self.peek(1)
            buffer, start = self._read_buf, self._read_pos
        end = buffer.find(b"\n", start) + 1
        if end and (size is None or size < 0 or end - start <= size):
            self._read_pos = end
            self.bytes_read += end - start
            return buffer[start:end]
        return super().readline(size)


def _has_buffer_fields():
    """Whether cheroot's ``StreamReader`` still keeps ``_pyio``'s ``_read_buf`` (bytes) and ``_read_pos`` (int)."""
    left, right = socket.socketpair()
    try:
        reader = StreamReader(left, "rb")
        return (
            isinstance(getattr(reader, "_read_buf", None), bytes)
            and isinstance(getattr(reader, "_read_pos", None), int)
            and callable(getattr(reader, "peek", None))
        )
    finally:
        left.close()
        right.close()


LINE_READER_USABLE = _has_buffer_fields()
"""Whether ``LineReader`` can be used with this cheroot and Python; when not, cheroot reads lines its own way."""


def _make_file(sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):
    if "r" in mode and LINE_READER_USABLE:
        return LineReader(sock, mode, bufsize)
    return MakeFile(sock, mode, bufsize)


class TLSAdapter(BuiltinSSLAdapter):
    """cheroot's builtin TLS adapter with the handshake out of the accept loop, TLS 1.2 or newer, ALPN
    ``http/1.1``, and the certificate loaded again on ``reload()`` (SIGHUP).

    ``wrap()`` replaces cheroot's, which makes the handshake on the thread that accepts connections, blocking:
    one client that connects and sends no ClientHello stalls every new connection for ``timeout`` seconds
    (cheroot issue 748). Here it only wraps the socket (``do_handshake_on_connect=False``); ``read_head`` makes
    the handshake without blocking on the selector's thread, with the request head's deadline, and sets the
    connection's TLS environ (cheroot's ``get_environ``) once it is done. ``makefile`` gives ``LineReader`` as
    for plain connections.

    ``certificate``: a PEM file with the certificate and its chain; ``private_key``: a PEM file. Raises what
    ``ssl.SSLContext.load_cert_chain`` raises (``OSError`` for a missing or unreadable file, ``ssl.SSLError``
    for a key that does not match).
    """

    def __init__(self, certificate, private_key):
        super().__init__(certificate, private_key)
        self._configure(self.context)
        self._reload = False

    @staticmethod
    def _configure(context):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])

    def reload(self):
        """Load the certificate and key again before the next connection (safe in a signal handler: it sets a
        flag). Connections already made keep theirs; a file that does not load leaves the current ones in use."""
        self._reload = True

    def _load(self):
        self._reload = False
        context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.certificate, self.private_key)
        except (OSError, ssl.SSLError) as error:
            tls_logger.error("The certificate was not reloaded (the one loaded before stays in use): %s", error)
            return
        self._configure(context)
        self.context = context
        tls_logger.info("Certificate reloaded from %s.", self.certificate)

    def wrap(self, sock):
        if self._reload:
            self._load()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), {}

    def makefile(self, sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):
        return _make_file(sock, mode, bufsize)


tls_logger = logging.getLogger("devserver.server")


_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
    b"Request Timeout\n"
)


class Connection(cheroot_server.HTTPConnection):
    """cheroot's connection, with the fast line reader, a request parsed only once it has all arrived
    (``read_head``), and what is kept of one that has not: ``head_bytes`` (the head received so far), ``body`` (a
    ``BodyBuffer``, or ``None``) and ``read_deadline`` (``time.time()`` by which more must come, or ``None``)."""

    RequestHandlerClass = Request

    def __init__(self, server, sock, makefile=MakeFile):
        # A TLS adapter brings its own file maker; cheroot's own gets the fast reader.
        super().__init__(server, sock, _make_file if makefile is MakeFile else makefile)
        self.head_bytes = b""
        self.body = None
        self.accepted_at = time.monotonic()
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.handshake_pending = self.tls and sock.version() is None  # TLSAdapter: not made yet
        # A new connection's handshake and first head are read on the selector's thread (Server.process_conn): a
        # flood of silent or slow connections wakes no worker.
        self.read_deadline = time.time() + server.header_timeout

    busy_answered = False
    """Set by ``answer_busy`` when it takes the connection: the worker that gets it from the queue leaves it."""

    def communicate(self):
        """cheroot's ``communicate``, then the received body dropped. A connection reaches a worker only through
        ``Server.process_conn``, whose ``read_head`` has found its request whole: it is not looked for again. One
        that waited too long for a worker has been answered 503 already (``answer_busy``): it is closed."""
        try:
            if self.server.queued.pop(self, None) is None and self.busy_answered:
                return False
            return super().communicate()
        finally:
            self.discard_body()  # the request took it, or was refused before it could

    def discard_body(self):
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self):
        if self.head_bytes or self.body is not None:
            # Part of a request came, the rest not in time (the selector expired it): say so (RFC 9110 §15.5.9),
            # without waiting on a client that may not read.
            self.head_bytes = b""
            self.discard_body()
            _send_now(self, _REQUEST_TIMEOUT)
            try:
                if self.server.access_log is not None:
                    self.server.access_log.log(self.remote_addr, "-", 408, 16, 0.0)
            finally:
                super().close()  # whatever the log does: a socket left open here stayed open for good
            return
        super().close()


_BUSY_BODY = b"Every worker thread is busy: retry later.\n"
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
    b"Connection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


def answer_busy(server, conn):
    """Answer ``conn``, queued for a worker that has not come, with a 503 and close it, unless a worker took it
    meanwhile (``server.queued``: whoever pops the connection from it has it). Called from the ``PoolSizer``'s
    thread."""
    conn.busy_answered = True  # before the pop: a worker that finds the entry gone must find this set
    if server.queued.pop(conn, None) is None:
        conn.busy_answered = False
        return
    _send_now(conn, _BUSY)
    shut(conn.socket)
    if server.access_log is not None:
        rfile = conn.rfile
        line = rfile._read_buf[rfile._read_pos :].split(b"\r\n", 1)[0][:200] if type(rfile) is LineReader else b""
        server.access_log.log(conn.remote_addr, line.decode("latin-1") or "-", 503, len(_BUSY_BODY), 0.0)


class SCGIConnection(cheroot_server.HTTPConnection):
    """A connection from a front server that carries one SCGI request: ``communicate`` (cheroot's reads HTTP
    requests until the connection closes) answers it with ``devserver.scgi.serve_connection``, each read of the
    request within the server's ``header_timeout`` and each write of the response within its ``timeout``, and
    returns ``False``, so that cheroot closes the connection. cheroot hands it to a worker once its first bytes have
    arrived. ``read_deadline``, ``accepted_at``, ``head_bytes`` and ``body`` are ``Connection``'s, for
    ``Server.drain``: a stop still answers a connection accepted just before it."""

    head_bytes = b""
    body = None

    def __init__(self, server, sock, makefile=MakeFile):
        super().__init__(server, sock, makefile)
        self.accepted_at = time.monotonic()
        self.read_deadline = time.time() + server.timeout

    def communicate(self):
        from .scgi import serve_connection

        self.read_deadline = None
        serve_connection(
            self.socket,
            self.server.wsgi_app,
            read_timeout=self.server.header_timeout,
            write_timeout=self.server.timeout,
            max_header_size=self.server.max_request_header_size,
            max_body_size=self.server.max_request_body_size,
        )
        return False


HEAD_READY, HEAD_WAIT, HEAD_CLOSED = "ready", "wait", "closed"

READ_AT_ONCE = 16
"""How many 64 KiB reads ``read_head`` makes for one connection before it lets the selector serve others."""

# A header that may frame a body, at the start of a line: without one, the parser sees no body either (it takes
# no whitespace before the colon, and the request line comes before the first CRLF).
_FRAMING_HINT = re.compile(rb"\r\n(?:content-length|transfer-encoding):", re.IGNORECASE)


class BodyBuffer:
    """A request body received on the selector's thread before a worker takes the request, as waitress does: a
    client that sends its body slowly holds no worker.

    ``head``: the request head (bytes, up to its blank line); ``length``: the Content-Length, or ``None`` for a
    chunked body; ``file``: the body, de-chunked, in a ``SpooledTemporaryFile`` (in memory up to
    ``SPOOL_MEMORY`` bytes); ``error``: ``None``, or the ``(status, message)`` the request is to be answered with
    (a malformed chunked body, 400; one over ``limit`` bytes, 413); ``expect_continue``: whether the client
    waits for ``100 Continue`` before sending it (RFC 9110 §10.1.1).
    """

    def __init__(self, head, length, limit, expect_continue):
        self.head = head
        self.length = length
        self.expect_continue = expect_continue
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.chunked = length is None
        self.error = None
        self.done = False
        self._left = length
        self._decoder = ChunkedDecoder(self.file, limit) if length is None else None

    def feed(self, data):
        """Take the body's part of ``data``; return what follows the body (the next request's first bytes) once it
        has all come, else ``None``."""
        if self._decoder is None:
            used = min(self._left, len(data))
            self.file.write(data[:used])
            self._left -= used
            self.done = not self._left
        else:
            try:
                used = self._decoder.feed(data)
            except _BodyTooLarge as error:
                self.error, self.done = ("413 Request Entity Too Large", str(error)), True
                return b""
            except _MalformedBody as error:
                self.error, self.done = ("400 Bad Request", str(error)), True
                return b""
            self.done = self._decoder.done
            if self.done:
                self.length = self._decoder.length
        if not self.done:
            return None
        self.file.seek(0)
        return data[used:]

    def close(self):
        self.file.close()


def body_framing(head, server):
    """How the body of the request whose head is ``head`` (bytes, up to its blank line) is to be received on the
    selector's thread: ``(length, expect_continue)``, with ``length`` the Content-Length or ``None`` for a
    chunked body; or ``None`` when there is no body, or when the head is one the parser refuses before any body
    is read (Transfer-Encoding with Content-Length, a chunked body on HTTP/1.0, another coding, a Content-Length
    that is not digits, or over the limit): the worker answers that at once.

    It must never see no body where the parser sees one, or a worker would wait for it: field lines are matched
    as the parser (``StrictHeaderReader``) matches them, and a line it would refuse is skipped here.
    """
    if _FRAMING_HINT.search(head) is None:
        return None
    lengths, codings, expect_continue = [], [], False
    for line in head.split(b"\r\n")[1:]:
        matched = _FIELD_LINE.fullmatch(line + b"\r\n")
        if matched is None:
            continue
        name, value = matched.groups()
        name = name.lower()
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.extend(coding.strip().lower() for coding in value.split(b","))
        elif name == b"expect":
            expect_continue = value.lower() == b"100-continue"
    if codings:
        if lengths or codings != [b"chunked"] or head.split(b"\r\n", 1)[0].endswith(b" HTTP/1.0"):
            return None
        return None, expect_continue
    if not lengths or len(set(lengths)) != 1 or not _DIGITS.fullmatch(lengths[0]):
        return None
    length = int(lengths[0])
    limit = server.max_request_body_size
    if not length or (limit and length > limit):
        return None
    return length, expect_continue


def read_head(server, conn):
    """Whether a whole request, its head and any body, has arrived on ``conn``: ``HEAD_READY`` (the head is in the
    connection's ``LineReader`` buffer, the body in ``conn.body``: parse it), ``HEAD_WAIT`` (not yet: what came
    is kept in ``conn.head_bytes`` or ``conn.body``, and the connection is to go back to the selector until more
    arrives) or ``HEAD_CLOSED`` (the client closed, or the socket failed). Called by ``Server.process_conn`` on the
    selector's thread for every connection that has bytes to read (or a pipelined request in its buffer), before
    it goes to a worker; it never blocks.

    cheroot hands every connection that has a byte to read to a worker, which then waits for the rest of the request
    with a timeout per ``recv`` and no overall deadline: 150 clients sending a byte every 2 s held all 100
    workers, and no other request was answered; a client sending its body a byte at a time held one each. Here
    what has arrived is read without blocking (``os.read`` on the socket's non-blocking descriptor:
    ``socket.recv`` polls for the socket's timeout first, even with ``MSG_DONTWAIT``). Once it holds a blank line
    (the end of the head), or more than a head may hold (the parser then answers 414 or 431), the head's framing
    (``body_framing``) says whether a body follows; if one does, it is received into a ``BodyBuffer``, after a
    ``100 Continue`` if the client asked for one. Once all is there, the head and whatever followed the body are
    put in front of what ``LineReader`` has buffered, through ``_pyio``'s private ``_read_buf``/``_read_pos``.
    Until then the connection goes back to the selector, so that a slow client wakes no worker.

    A head must be complete ``server.header_timeout`` seconds after its first byte (or after the connection was
    accepted), and each read of a body must bring bytes within ``server.timeout`` seconds of the last (nginx's
    ``client_body_timeout``): ``conn.read_deadline`` holds the time, ``Server.put_conn`` sets ``conn.last_used``
    so that cheroot's own expiry of idle connections then closes it, and ``Connection.close`` answers 408 when
    part of a request came. Over TLS (``TLSAdapter``) the handshake is made here first, in the same way and
    within the same deadline, and reads go through the ``SSLSocket`` made non-blocking for the call. Connections
    from another TLS adapter, or where ``LineReader`` cannot be used, are parsed at once, as in cheroot.
    """
    if type(conn.rfile) is not LineReader:
        return HEAD_READY
    if not conn.tls:
        return _read_request(server, conn)
    conn.socket.settimeout(0.0)  # SSLSocket.recv waits out the socket's timeout when a record is not whole
    try:
        if conn.handshake_pending:
            state = _handshake(server, conn)
            if state is not None:
                return state
        return _read_request(server, conn)
    finally:
        conn.socket.settimeout(server.timeout)


def _read_request(server, conn):
    rfile = conn.rfile
    body = conn.body
    if body is None:
        pending = rfile._read_buf[rfile._read_pos :] if rfile._read_pos < len(rfile._read_buf) else b""
        pending = pending + conn.head_bytes if conn.head_bytes else pending
        if not pending or not _head_end(pending):  # else pipelined, or a keep-alive request already read whole
            state = _receive(conn, pending, server)
            if state is not None:
                return state
            pending = conn.head_bytes
        conn.head_bytes = b""
        end = _head_end(pending)
        # A head that is too large, or ends in a bare LF, is refused by the parser before any body.
        framing = body_framing(pending[:end], server) if pending[end - 4 : end] == b"\r\n\r\n" else None
        if framing is None:
            return _ready(conn, rfile, pending)
        length, expect_continue = framing
        body = conn.body = BodyBuffer(pending[:end], length, server.max_request_body_size, expect_continue)
        rest = body.feed(pending[end:])
        if rest is not None:
            return _ready(conn, rfile, body.head + rest)
        if expect_continue and not pending[end:]:
            _send_now(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
    try:
        for _ in range(READ_AT_ONCE):
            data = _read(conn)
            if not data:  # the client stopped sending, and may still read: answer 400
                body.error, body.done = ("400 Bad Request", "The request body ended early."), True
                return _ready(conn, rfile, body.head)
            rest = body.feed(data)
            if rest is not None:
                return _ready(conn, rfile, body.head + rest)
            if len(data) < 65536 or body.chunked:  # decoding costs more than copying: one read a turn
                break
    except BlockingIOError:
        pass
    except OSError:
        conn.discard_body()
        return HEAD_CLOSED
    rfile._read_buf, rfile._read_pos = b"", 0
    conn.read_deadline = time.time() + server.timeout
    return HEAD_WAIT


def _receive(conn, pending, server):
    """Read what has come of a request head onto ``pending``: ``None`` once the head is whole, or too large to be
    one (it is in ``conn.head_bytes``), else ``HEAD_WAIT`` or ``HEAD_CLOSED``."""
    rfile = conn.rfile
    most = server.max_request_line + server.max_request_header_size + 4  # past this, the parser answers 414 or 431
    try:
        for _ in range(READ_AT_ONCE):
            data = _read(conn)
            if not data:
                conn.head_bytes = b""
                return HEAD_CLOSED
            pending += data
            if len(data) < 65536 or len(pending) > most:
                break
    except BlockingIOError:
        pass
    except OSError:
        conn.head_bytes = b""
        return HEAD_CLOSED
    conn.head_bytes = pending
    if _head_end(pending) or len(pending) > most:
        return None
    # Not yet: keep it apart from the reader, so that cheroot does not take the connection for one with a
    # request waiting in its buffer.
    rfile._read_buf, rfile._read_pos = b"", 0
    if conn.read_deadline is None:
        conn.read_deadline = time.time() + server.header_timeout
    return HEAD_WAIT


def _read(conn):
    """Up to 64 KiB of what has arrived on ``conn``, without blocking: ``b""`` once the client has closed;
    ``BlockingIOError`` when nothing is there (over TLS: no whole record)."""
    if conn.tls:
        try:
            return conn.socket.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None
    if gil_io.AVAILABLE:
        return gil_io.recv(conn.socket.fileno())  # without giving up the GIL: devserver.gil_io
    return os.read(conn.socket.fileno(), 65536)


def _send_now(conn, data):
    """Send a few bytes (``100 Continue``, a 408) without blocking, over TLS too, or give up: a socket whose send
    buffer is full belongs to a client that does not read."""
    with contextlib.suppress(OSError):  # ssl.SSLError is one
        if conn.tls:
            conn.socket.settimeout(0.0)
            conn.socket.send(data)
        else:
            os.write(conn.socket.fileno(), data)


_PLAIN_HTTP_TO_TLS = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 46\r\nConnection: close\r\n\r\n"
    b"This port speaks HTTPS: use an https:// URL.\r\n"
)


def _handshake(server, conn):
    """The TLS handshake, as far as the bytes that have come allow, without blocking (``TLSAdapter`` leaves it
    here): ``None`` once done (``conn.ssl_env`` is then set), ``HEAD_WAIT`` for more, ``HEAD_CLOSED`` when it
    failed; plain HTTP sent to the port gets a plain 400 first, as cheroot answers it."""
    sock = conn.socket
    try:
        sock.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return HEAD_WAIT
    except ssl.SSLError as error:
        if "http request" in str(error).lower():
            with contextlib.suppress(OSError):
                os.write(sock.fileno(), _PLAIN_HTTP_TO_TLS)
        return HEAD_CLOSED
    except OSError:
        return HEAD_CLOSED
    conn.handshake_pending = False
    conn.ssl_env = server.ssl_adapter.get_environ(sock)
    return None


def _ready(conn, rfile, data):
    rfile._read_buf, rfile._read_pos = data, 0
    conn.read_deadline = None
    return HEAD_READY


def _head_end(data):
    """Where the head in ``data`` ends (after its blank line), or 0. A bare-LF blank line counts too, so that the
    worker answers it 400 rather than waiting for more."""
    crlf, bare = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    ends = [end for end in (crlf + 4 if crlf >= 0 else 0, bare + 2 if bare >= 0 else 0) if end]
    return min(ends) if ends else 0


def stop_accepting(server):
    """Stop taking new connections from ``server``'s listening socket, leaving it open (in a worker of
    ``--workers`` it is shared: the other workers take them): it is unregistered from cheroot's selector (the
    private ``server._connections._selector``; cheroot's ``stop()`` only closes it, at the same time as every
    connection that has not sent a whole request yet)."""
    with contextlib.suppress(KeyError, ValueError, OSError):
        server._connections._selector.unregister(server.socket.fileno())


def waiting_connections(server):
    """The connections in cheroot's selector (its private ``_selector.connections``): idle keep-alive ones, and new
    or slow ones whose request has not all arrived."""
    return [
        conn
        for _, conn in server._connections._selector.connections
        if conn is not server and type(conn) is not SelectorWaker
    ]


def worker_count(pool):
    """How many live worker threads a cheroot ``ThreadPool`` has (from its private ``_threads``: cheroot has no
    public count, and keeps exited workers in that list until the next ``shrink()``)."""
    return sum(1 for worker in pool._threads if worker.is_alive())


def grow(pool, amount):
    """Add up to ``amount`` worker threads to ``pool`` (not above its ``max``), one at a time, after dropping exited
    workers from its list (its private ``_clear_dead_threads``): cheroot's ``grow`` counts them against ``max``, so a
    pool that had shrunk could not grow again. Replaces cheroot's ``grow``, which started them all (its private
    ``_spawn_worker``) before adding any to its private ``_threads``: when one could not be started
    (``RuntimeError: can't start new thread``), those already started were lost to its count, and its ``stop()``
    never joined them; and it slept 0.1 s until each was running. Returns ``(started, error)``: how many started,
    and the ``RuntimeError`` that stopped it, or ``None``."""
    pool._clear_dead_threads()
    started = 0
    for _ in range(min(amount, max(pool.max - len(pool._threads), 0))):
        try:
            worker = pool._spawn_worker()
        except RuntimeError as error:
            return started, error
        pool._threads.append(worker)
        started += 1
    return started, None


OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""What ``accept()`` fails with when the process or the system has no descriptor or memory left for a connection."""


class ConnectionManager(cheroot_connections.ConnectionManager):
    """cheroot's connection manager (the selector loop), with an ``accept()`` that fails for want of descriptors
    (``OUT_OF_DESCRIPTORS``) handed to ``server.pause_accepting(error)`` instead of raised. cheroot let it out of
    its loop: ``serve()`` logged a traceback and looped at once, ten thousand times a second at 100% CPU (the
    listening socket stays readable), and each turn reset the timer of its expiry of idle connections and dropped
    the other connections that were ready, so no connection was ever closed and no descriptor came free. Its
    private ``_from_server_socket`` is extended, calling ``super()``; ``accept_pausing`` installs it."""

    def _from_server_socket(self, server_socket):
        try:
            conn = super()._from_server_socket(server_socket)
        except OSError as error:
            if error.errno not in OUT_OF_DESCRIPTORS:
                raise
            self.server.pause_accepting(error)
            return None
        if conn is not None and self.server.accept_paused_since is not None:
            self.server.accepting_again()
        return conn


def accept_pausing(server):
    """Make ``server``'s connection manager (cheroot's private ``_connections``, made by ``prepare()``) a
    ``ConnectionManager`` of this module."""
    server._connections.__class__ = ConnectionManager


def resume_accepting(server):
    """Put ``server``'s listening socket back in cheroot's selector (``stop_accepting`` undone)."""
    with contextlib.suppress(KeyError, ValueError, OSError):
        server._connections._selector.register(server.socket.fileno(), selectors.EVENT_READ, server)


def pool_threads(pool):
    """The worker threads of a cheroot ``ThreadPool`` (its private ``_threads``), taken before its ``stop()``,
    which empties that list before it joins them: ``Server.settled`` watches them to know when the requests in
    flight have finished without joining the ones held by an ended stream."""
    return list(pool._threads)


class SelectorWaker:
    """A stand-in connection in cheroot's selector (its private ``_connections._selector``) that ends its
    ``select()`` at once: the read end of a socket pair. cheroot's ``ConnectionManager.stop()`` waits for its loop to
    notice the stop, up to ``expiration_interval`` (0.5 s) when no socket is ready, and the listening socket that
    cheroot's ``stop()`` touches to wake it has already been taken out of the selector by ``stop_accepting``.
    ``Server.process_conn`` ignores it; ``last_used`` keeps cheroot's expiry of idle connections away from it.
    """

    last_used = float("inf")

    def __init__(self, server):
        self.socket, self._writer = socket.socketpair()
        server._connections._selector.register(self.socket.fileno(), selectors.EVENT_READ, self)

    def wake(self, server):
        """Ask cheroot's selector loop to stop (its private ``_stop_requested``, which its ``stop()`` sets too) and
        wake it now."""
        server._connections._stop_requested = True
        with contextlib.suppress(OSError):
            self._writer.send(b"\0")

    def close(self):
        """Close both ends (again: cheroot closes what its selector still holds)."""
        self.socket.close()
        self._writer.close()
