"""The cheroot side of ``runcherrypy``: the WSGI application tree, the server and its pool, and the one place
where a server is built (``create_server``) and run in a thread (``ServingThread``).

Nothing here reads Django settings: ``devserver.mounts`` builds the application from them, ``devserver.options``
resolves the options, and ``devserver.lifecycle`` runs the server until it is told to stop.
"""

import logging
import socket
import threading
import time

from cheroot import wsgi

from .access_log import LoggerAccessLog
from .cheroot_overrides import (
    HEAD_READY,
    HEAD_WAIT,
    Connection,
    Gateway,
    StrictHeaderReader,
    grow,
    read_head,
    worker_count,
)
from .options import DEFAULT_MAX_THREADS, OPTIONS_BY_NAME
from .proxy import ForwardedHeaders

__all__ = ["PoolSizer", "Server", "ServingThread", "build_application", "create_server"]

access_logger = logging.getLogger("django.server")
"""One line per request, in runserver's format and through runserver's logger, so LOGGING settings apply.
The pool's "all workers busy" warning goes here too, beside the requests it delays."""

server_logger = logging.getLogger("devserver.server")
"""cheroot's own messages (``HTTPServer.error_log``)."""


def build_application(django_app, mounts):
    """Return the WSGI application the server runs: ``django_app`` at the root, each mounted ``Mount`` at its
    prefix, through ``cheroot.wsgi.PathInfoDispatcher`` (longest prefix first; ``/staticfoo`` does not match
    ``/static``).
    """
    apps = [("", django_app)]
    apps.extend((mount.prefix, mount.app) for mount in mounts if mount.app is not None)
    return wsgi.PathInfoDispatcher(apps)


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
        return worker_count(self.pool)

    def run(self):
        surplus_since = None
        warned_at = None
        while not self._stop_event.wait(self.interval):
            pool = self.pool
            waiting, idle, size = pool.qsize, pool.idle, self.size
            if waiting and not idle:
                if size < pool.max:
                    grow(pool, min(waiting, pool.max - size))
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

    Arguments are ``cheroot.wsgi.Server``'s, with the defaults of ``devserver.options``: ``numthreads`` 10,
    ``max`` (the most worker threads) 100, or ``numthreads`` if that is more, ``shutdown_timeout`` 5 seconds; and
    ``request_queue_size`` (the listen backlog) ``socket.SOMAXCONN``, so that a burst of connections is not refused
    while the pool grows. What it adds:

    - a pool that grows from ``numthreads`` toward ``max`` while requests wait (``PoolSizer``);
    - a request parsed only once its head has all arrived, within ``header_timeout`` seconds, and its body too,
      each read within ``timeout`` seconds of the last (408 otherwise): until then the connection waits in the
      selector, so that slow or silent clients hold no worker;
    - the request head and its framing read strictly (RFC 9112), with limits: ``max_request_line`` bytes (414),
      ``max_request_header_size`` bytes and ``max_headers`` fields for the header block (431),
      ``max_request_body_size`` bytes of body (413; 0 for none); headers with ``_`` in their name dropped; lines
      read without a Python loop per line (all in ``devserver.cheroot_overrides``);
    - no cap on idle keep-alive connections (``keep_alive_conn_limit``);
    - the ``Gateway`` of ``devserver.cheroot_overrides``: ``close()`` always called, ``wsgi.file_wrapper`` sent
      with ``sendfile``, and each response given to ``access_log`` (``devserver.access_log``: the
      ``django.server`` logger by default; ``None`` for no access log);
    - cheroot's messages sent to the ``devserver.server`` logger;
    - the error that made binding fail kept in ``bind_error`` (cheroot folds it into a message string).
    """

    ConnectionClass = Connection

    access_log = LoggerAccessLog()

    keep_alive_conn_limit = None
    """cheroot answers ``Connection: close`` past this many idle keep-alive connections (its default: 10, fewer
    than two browser tabs open). Idle connections hold no thread, cheroot closes them after ``timeout`` seconds,
    and checking the limit costs a locked count on every response: no limit."""

    def __init__(
        self,
        bind_addr,
        wsgi_app,
        *,
        numthreads=OPTIONS_BY_NAME["threads"].default,
        max=None,
        shutdown_timeout=OPTIONS_BY_NAME["shutdown_timeout"].default,
        request_queue_size=socket.SOMAXCONN,
        max_request_line=OPTIONS_BY_NAME["max_request_line"].default,
        max_request_header_size=OPTIONS_BY_NAME["max_header_size"].default,
        max_headers=OPTIONS_BY_NAME["max_headers"].default,
        max_request_body_size=OPTIONS_BY_NAME["max_body_size"].default,
        header_timeout=OPTIONS_BY_NAME["header_timeout"].default,
        **kwargs,
    ):
        if max is None:
            max = numthreads if numthreads > DEFAULT_MAX_THREADS else DEFAULT_MAX_THREADS
        super().__init__(
            bind_addr,
            wsgi_app,
            numthreads=numthreads,
            max=max,
            shutdown_timeout=shutdown_timeout,
            request_queue_size=request_queue_size,
            **kwargs,
        )
        self.gateway = Gateway
        self.max_request_line = max_request_line
        self.max_request_header_size = max_request_header_size
        self.max_request_body_size = max_request_body_size
        self.header_reader = StrictHeaderReader(max_headers, max_request_header_size)
        self.header_timeout = header_timeout
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

    def process_conn(self, conn):
        """Queue ``conn`` for a worker, as cheroot does; but a new connection, or one whose request began and is
        not yet whole (``conn.read_deadline`` set), reads what has arrived here, on the selector's thread, without
        blocking, and goes to a worker only once the request's head and body are whole: a client that connects and
        says nothing, or sends its request a byte at a time, wakes no worker, and the pool does not grow for it. A
        keep-alive connection's next request goes to a worker at once, which reads it without blocking
        (``read_head``)."""
        if conn.read_deadline is None:
            super().process_conn(conn)
            return
        state = read_head(self, conn)
        if state is HEAD_READY:
            super().process_conn(conn)
        elif state is HEAD_WAIT:
            self.put_conn(conn)
        else:
            conn.close()

    def put_conn(self, conn):
        """Put ``conn`` back in the selector, as cheroot does; one whose request has not all arrived keeps its
        deadline (``conn.read_deadline``: ``header_timeout`` from the head's first byte, then ``timeout`` from the
        body's last), which cheroot's expiry of idle connections enforces: it closes a connection whose
        ``last_used`` is more than ``timeout`` seconds old."""
        super().put_conn(conn)
        if conn.read_deadline is not None:
            conn.last_used = conn.read_deadline - self.timeout

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        server_logger.log(level, "%s", msg, exc_info=traceback)


def create_server(
    bind_addr,
    application,
    *,
    ssl_adapter=None,
    forwarded_allow_ips=OPTIONS_BY_NAME["forwarded_allow_ips"].default,
    access_log=Server.access_log,
    **options,
):
    """The one way a ``Server`` is built, for the command, the live servers for tests and the tests.

    ``bind_addr``: ``(host, port)`` (port 0 for a free one) or a unix socket path; ``options``: ``Server`` keyword
    arguments (``numthreads``, ``max``, ``shutdown_timeout``, ...); ``ssl_adapter``: a cheroot TLS adapter or
    ``None``; ``forwarded_allow_ips``: the peers whose forwarding headers are applied (a
    ``devserver.proxy.TrustedPeers``; ``None``: the application sees the headers as sent); ``access_log``: where
    each response is logged (``devserver.access_log``), or ``None``. Nothing is bound until ``prepare()``.
    """
    if forwarded_allow_ips is not None:
        application = ForwardedHeaders(application, forwarded_allow_ips)
    server = Server(bind_addr, application, **options)
    server.ssl_adapter = ssl_adapter
    server.access_log = access_log
    return server


class ServingThread(threading.Thread):
    """A daemon thread that binds ``server`` (``prepare()``) and serves it until ``server.stop()``.

    ``start_serving()`` starts it and returns once the server is bound, raising what binding raised (a port in
    use: an ``OSError``, with the cause in ``server.bind_error``). ``error`` holds what ``serve()`` raised, if
    anything; ``stopped`` is set when it returns; ``on_exit(error)``, if given, is called then.
    """

    def __init__(self, server, *, on_exit=None, name="cheroot-serve"):
        super().__init__(name=name, daemon=True)
        self.server = server
        self.on_exit = on_exit
        self.error = None
        self.is_ready = threading.Event()
        self.stopped = threading.Event()

    def run(self):
        try:
            self.server.prepare()
        except BaseException as error:  # noqa: BLE001 - raised again by start_serving
            self.error = error
            self.is_ready.set()
            self.stopped.set()
            return
        self.is_ready.set()
        try:
            self.server.serve()
        except BaseException as error:  # noqa: BLE001 - handed to on_exit
            self.error = error
        finally:
            self.stopped.set()
            if self.on_exit is not None:
                self.on_exit(self.error)

    def start_serving(self):
        """Start the thread and wait until the server is bound; return the server."""
        self.start()
        self.is_ready.wait()
        if self.error is not None and self.stopped.is_set():
            raise self.error
        return self.server

    def terminate(self, timeout=None):
        """Stop the server (cheroot's ``stop()``: requests in flight get ``shutdown_timeout``) and join."""
        if self.server.ready:
            self.server.stop()
        self.join(timeout)
