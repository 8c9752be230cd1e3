"""The cheroot side of ``runcherrypy``: the WSGI application tree, the server, its pool, and a graceful stop.

Nothing here reads Django settings; ``devserver.mounts`` decides what is mounted and the command wires it up.
"""

import io
import logging
import signal
import socket
import sys
import threading
import time

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile, StreamReader
from django.utils.http import http_date

from .media import FileIterator

__all__ = [
    "Gateway",
    "PoolSizer",
    "Server",
    "StopSignals",
    "build_application",
    "serve_in_thread",
    "stop_gracefully",
]

access_logger = logging.getLogger("django.server")
"""One line per request, in runserver's format and through runserver's logger, so LOGGING settings apply.
The pool's "all workers busy" warning goes here too, beside the requests it delays."""

server_logger = logging.getLogger("devserver.server")
"""cheroot's own messages (``HTTPServer.error_log``)."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

REPEAT_SIGNAL_WINDOW = 0.5
"""Seconds within which a repeated stop signal counts as the same one: ``timeout``, shells and process
supervisors may deliver one signal to both the process and its group, which must not read as "give up"."""


def build_application(django_app, mounts):
    """Return the WSGI application the server runs: ``django_app`` at the root, each mounted ``Mount`` at its
    prefix, through ``cheroot.wsgi.PathInfoDispatcher`` (longest prefix first; ``/staticfoo`` does not match
    ``/static``).
    """
    apps = [("", django_app)]
    apps.extend((mount.prefix, mount.app) for mount in mounts if mount.app is not None)
    return wsgi.PathInfoDispatcher(apps)


_ENVIRON_KEYS = {}  # request header name (bytes) -> WSGI environ key


class _HeaderCollector:
    """Stands in for a connection's ``wfile`` while cheroot's ``send_headers()`` writes the header block once."""

    __slots__ = ("data",)

    def write(self, data):
        self.data = data


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
        self.body_bytes = 0

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
                if len(_ENVIRON_KEYS) < 512:  # clients choose header names: bound the cache
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
        try:
            if self.req.method == b"HEAD":
                if type(response) is not FileIterator:
                    for _ in response:
                        pass
            elif type(response) is FileIterator and self.remaining_bytes_out is not None and self.can_sendfile():
                self.sendfile(response)
            else:
                for chunk in response:
                    if chunk:
                        if not isinstance(chunk, bytes):
                            raise ValueError("WSGI Applications must yield bytes")
                        self.write(chunk)
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

    def start_response(self, status, headers, exc_info=None):
        """PEP 3333's ``start_response``, as cheroot's (a second call only with ``exc_info``, which is raised once
        headers are out; ``TypeError`` for a status or header that is not ``str``), in one pass over the
        headers: cheroot's makes four calls per header."""
        if self.started_response and not exc_info:
            raise RuntimeError("WSGI start_response called a second time with no exc_info.")
        self.started_response = True
        if self.req.sent_headers:
            raise exc_info[1]
        if not isinstance(status, str):
            raise TypeError("WSGI response status is not of type str.")
        self.req.status = status.encode("ISO-8859-1")
        outheaders = self.req.outheaders
        for name, value in headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"WSGI response header {name!r}: {value!r} is not a pair of str.")
            if len(name) == 14 and name.lower() == "content-length":
                self.remaining_bytes_out = int(value)
            outheaders.append((name.encode("ISO-8859-1"), value.encode("ISO-8859-1")))
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
        sent = self.req.conn.socket.sendfile(body.file, offset, count) if count else 0
        self.body_bytes += sent
        self.remaining_bytes_out -= sent
        if self.remaining_bytes_out:
            self.req.close_connection = True

    def write(self, chunk):
        req = self.req
        if not req.sent_headers and self.remaining_bytes_out == len(chunk) and self.started_response:
            # The whole body: one send with the headers.
            wfile, collector = req.conn.wfile, _HeaderCollector()
            req.conn.wfile = collector
            try:
                req.ensure_headers_sent()
            finally:
                req.conn.wfile = wfile
            wfile.write(collector.data + chunk)
            self.remaining_bytes_out = 0
        else:
            super().write(chunk)
        self.body_bytes += len(chunk)

    def log_access(self):
        """Log ``"GET /path HTTP/1.1" 200 1234`` through ``django.server``, as runserver does: 5xx as errors,
        4xx as warnings, the rest as info, with ``status_code`` for Django's ``ServerFormatter`` colours.
        """
        req = self.req
        status = req.status[:3]
        # No status means the application raised before start_response; cheroot answers that with a 500.
        code = int(status) if status.isdigit() else 500
        level = logging.ERROR if code >= 500 else logging.WARNING if code >= 400 else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        request_line = b" ".join((req.method or b"-", req.uri or b"-", req.request_protocol or b"-"))
        access_logger.log(
            level,
            '"%s" %s %s',
            request_line.decode("latin-1"),
            code,
            self.body_bytes,
            extra={"status_code": code, "server_time": time.strftime("%d/%b/%Y %H:%M:%S")},
        )


_COMMA_SEPARATED = frozenset(cheroot_server.comma_separated_headers)


class DropUnderscoreHeaderReader(cheroot_server.HeaderReader):
    """cheroot's header reader, dropping request headers whose name contains ``_`` as runserver, nginx and Apache
    do: in the WSGI environ ``X_Forwarded_Proto`` and ``X-Forwarded-Proto`` would both become
    ``HTTP_X_FORWARDED_PROTO``, so one could pose as the other. (cheroot's own ``DropUnderscoreHeaderReader``
    compares ``str`` with ``bytes`` and raises ``TypeError`` on every request in 11.1.)

    Same rules as ``cheroot.server.HeaderReader.__call__`` (``ValueError`` for what must be a 400; continuation
    lines; repeated comma-separated headers folded), in one loop without two method calls per line; and
    ``Content-Length`` headers that disagree are a 400 rather than "the last one wins".
    """

    def __call__(self, rfile, hdict=None):
        if hdict is None:
            hdict = {}
        readline = rfile.readline
        name = None
        allowed = True
        while True:
            line = readline()
            if not line:
                raise ValueError("Illegal end of headers.")
            if line == b"\r\n":
                return hdict
            if not line.endswith(b"\r\n"):
                raise ValueError("HTTP requires CRLF terminators")
            if line[:1] in (b" ", b"\t"):  # a continuation line of the header before
                if name is None:
                    raise ValueError("Illegal continuation line.")
                value = line.strip()
            else:
                key, colon, value = line.partition(b":")
                if not colon:
                    raise ValueError("Illegal header line.")
                name = key.strip().title()
                value = value.strip()
                allowed = b"_" not in name
            if not allowed:
                continue
            if name == b"Content-Length" and hdict.get(name, value) != value:
                # cheroot keeps the last one (upstream issue 737): a way to smuggle a request past a proxy that
                # reads the first. RFC 9112 §6.3: an unrecoverable error.
                raise ValueError("Conflicting Content-Length headers.")
            if name in _COMMA_SEPARATED:
                existing = hdict.get(name)
                if existing:
                    value = existing + b", " + value
            hdict[name] = value


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


class Request(cheroot_server.HTTPRequest):
    header_reader = DropUnderscoreHeaderReader()

    def send_headers(self):
        for name, _ in self.outheaders:
            if name.lower() == b"date":
                break
        else:
            self.outheaders.append((b"Date", current_date()))
        super().send_headers()


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


def _make_file(sock, mode="r", bufsize=io.DEFAULT_BUFFER_SIZE):
    if "r" in mode:
        return LineReader(sock, mode, bufsize)
    return MakeFile(sock, mode, bufsize)


class Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = Request

    def __init__(self, server, sock, makefile=MakeFile):
        # A TLS adapter brings its own file maker; cheroot's own gets the fast reader.
        super().__init__(server, sock, _make_file if makefile is MakeFile else makefile)


class PoolSizer(threading.Thread):
    """Grows and shrinks a cheroot ``ThreadPool``, which never resizes itself.

    Every ``interval`` seconds: when requests are queued and no worker is idle, add as many workers as are
    queued, up to the pool's ``max``; at ``max`` with requests waiting, log a warning (once, then every
    ``warn_every`` seconds while it lasts). Workers above the pool's ``min`` that have been idle for
    ``idle_timeout`` seconds are retired.
    """

    def __init__(self, pool, *, interval=0.02, idle_timeout=10.0, warn_every=5.0):
        super().__init__(name="cheroot-pool-sizer", daemon=True)
        self.pool = pool
        self.interval = interval
        self.idle_timeout = idle_timeout
        self.warn_every = warn_every
        self._stop_event = threading.Event()

    def stop(self):
        self._stop_event.set()
        if self.is_alive():
            self.join()

    @property
    def size(self):
        return len(self.pool._threads)  # cheroot has no public count of its workers

    def run(self):
        surplus_since = None
        warned_at = None
        while not self._stop_event.wait(self.interval):
            pool = self.pool
            waiting, idle, size = pool.qsize, pool.idle, self.size
            if waiting and not idle:
                if size < pool.max:
                    pool.grow(min(waiting, pool.max - size))
                elif warned_at is None or time.monotonic() - warned_at >= self.warn_every:
                    warned_at = time.monotonic()
                    access_logger.warning(
                        "All %d worker threads are busy and %d requests are waiting (raise --max-threads to "
                        "serve more at once).",
                        size,
                        waiting,
                    )
                surplus_since = None
                continue
            if not waiting:
                warned_at = None
            if idle and size > pool.min:
                now = time.monotonic()
                if surplus_since is None:
                    surplus_since = now
                elif now - surplus_since >= self.idle_timeout:
                    pool.shrink(min(idle, size - pool.min))
                    surplus_since = None
            else:
                surplus_since = None


class Server(wsgi.Server):
    """``cheroot.wsgi.Server`` as runcherrypy runs it.

    Arguments are ``cheroot.wsgi.Server``'s, with other defaults: ``max`` (the most worker threads) 100, or
    ``numthreads`` if that is more; ``request_queue_size`` (the listen backlog) ``socket.SOMAXCONN``, so that a
    burst of connections is not refused while the pool grows. What it adds:

    - a pool that grows from ``numthreads`` toward ``max`` while requests wait (``PoolSizer``);
    - request headers with ``_`` in their name dropped (``DropUnderscoreHeaderReader``), request lines read
      without a Python loop per line (``LineReader``);
    - no cap on idle keep-alive connections (``keep_alive_conn_limit``);
    - the ``Gateway`` above: an access log line per response, ``close()`` always called;
    - cheroot's messages sent to the ``devserver.server`` logger;
    - the error that made binding fail kept in ``bind_error`` (cheroot folds it into a message string).
    """

    ConnectionClass = Connection

    keep_alive_conn_limit = None
    """cheroot answers ``Connection: close`` past this many idle keep-alive connections (its default: 10, fewer
    than two browser tabs open). Idle connections hold no thread, cheroot closes them after ``timeout`` seconds,
    and checking the limit costs a locked count on every response: no limit."""

    def __init__(self, bind_addr, wsgi_app, *, numthreads=10, max=None, request_queue_size=socket.SOMAXCONN, **kwargs):
        if max is None:
            max = numthreads if numthreads > 100 else 100
        super().__init__(
            bind_addr, wsgi_app, numthreads=numthreads, max=max, request_queue_size=request_queue_size, **kwargs
        )
        self.gateway = Gateway
        self.bind_error = None
        self.pool_sizer = None

    def bind(self, family, type, proto=0):
        try:
            return super().bind(family, type, proto)
        except OSError as error:
            self.bind_error = error
            raise

    def prepare(self):
        super().prepare()
        if self.requests.max > self.requests.min:
            self.pool_sizer = PoolSizer(self.requests)
            self.pool_sizer.start()

    def stop(self):
        # The sizer must not grow the pool while cheroot takes it down.
        if self.pool_sizer is not None:
            self.pool_sizer.stop()
        super().stop()

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        server_logger.log(level, "%s", msg, exc_info=traceback)


def serve_in_thread(server, on_exit=None):
    """Run ``server.serve()`` (after ``prepare()``) in a daemon thread and return the thread.

    ``on_exit(error)`` is called when ``serve()`` returns (``error`` is ``None``) or raises.
    """

    def serve():
        error = None
        try:
            server.serve()
        except BaseException as exc:  # noqa: BLE001 - handed to on_exit
            error = exc
        finally:
            if on_exit is not None:
                on_exit(error)

    thread = threading.Thread(target=serve, name="cheroot-serve", daemon=True)
    thread.start()
    return thread


class StopSignals:
    """SIGINT and SIGTERM handled by setting events, for as long as the ``with`` block lasts.

    ``requested`` is set by the first signal; ``give_up`` by a later one sent more than
    ``REPEAT_SIGNAL_WINDOW`` seconds after it (Ctrl-C pressed again). Calling ``stop()`` from a signal handler
    while ``serve()`` runs on the main thread deadlocks, so handlers only set events and the main thread acts.
    Must be entered on the main thread (``signal.signal`` requires it). ``on_first(signum)`` is called when the
    first signal arrives.
    """

    def __init__(self, on_first=None):
        self.requested = threading.Event()
        self.give_up = threading.Event()
        self.on_first = on_first
        self._first_at = None
        self._previous = {}

    def handle(self, signum, frame):
        now = time.monotonic()
        if self._first_at is None:
            self._first_at = now
            self.requested.set()
            if self.on_first is not None:
                self.on_first(signum)
        elif now - self._first_at > REPEAT_SIGNAL_WINDOW:
            self.give_up.set()

    def __enter__(self):
        self._previous = {signum: signal.signal(signum, self.handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def stop_gracefully(server, *, grace=2.0, give_up=None):
    """Stop ``server``: no new connections, idle keep-alive connections closed, requests in flight finish.

    cheroot's ``stop()`` waits ``shutdown_timeout`` seconds for them, then shuts their sockets for reading and
    joins without a bound; this waits at most ``grace`` seconds more, or until the ``give_up`` event is set.
    Returns ``True`` when every worker finished, ``False`` otherwise (threads still run: the caller should end
    the process with ``os._exit``).
    """
    stopped = threading.Event()

    def stop():
        server.stop()
        stopped.set()

    threading.Thread(target=stop, name="cheroot-stop", daemon=True).start()
    deadline = time.monotonic() + server.shutdown_timeout + grace
    while not stopped.wait(0.05):
        if time.monotonic() >= deadline or (give_up is not None and give_up.is_set()):
            return False
    return True
