"""The cheroot side of ``runcherrypy``: the server, and the one place where a server is built (``create_server``);
it is run in a thread by ``devserver.serving.ServingThread`` (re-exported here).

Nothing here reads Django settings: ``devserver.mounts`` builds the application from them, ``devserver.options``
resolves the options, and ``devserver.lifecycle`` runs the server until it is told to stop.
"""

import contextlib
import logging
import os
import socket
import threading
import time

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile

from .access_log import LoggerAccessLog
from .http.cheroot_private import (
    SelectorWaker,
    accept_pausing,
    pool_threads,
    resume_accepting,
    stop_accepting,
    waiting_connections,
)
from .http.gateway import Gateway
from .http.parser import Limits
from .http.receive import CLOSED, READY, WAIT, answer_busy, answer_full, receive
from .http.request import Connection
from .http.tls import TLSAdapter
from .listening import UnixSocketError, listen_on
from .options import DEFAULT_MAX_THREADS, OPTIONS_BY_NAME
from .pool import PoolSizer
from .proxy import ForwardedHeaders
from .serving import ServerGroup, ServingThread
from .streams import OpenStreams
from .stuck import InFlight, StuckWatcher

__all__ = [
    "SCGIServer",
    "Server",
    "ServerGroup",
    "ServingThread",
    "create_server",
]

server_logger = logging.getLogger("devserver.server")
"""cheroot's own messages (``HTTPServer.error_log``)."""


FRESH_CONNECTION = 1.0
"""Seconds after it was accepted that a connection which has sent nothing yet is waited for when stopping; after
that it is taken for one opened ahead of need (a browser's preconnect), and closed."""


DRAIN_SETTLE = 0.05
"""Seconds that the selector must hold no connection worth waiting for before a stop goes on: one accepted while
the listening socket was being taken out of the selector is only then in it."""


class Server(wsgi.Server):
    """``cheroot.wsgi.Server`` as runcherrypy runs it.

    Arguments are ``cheroot.wsgi.Server``'s, with the defaults of ``devserver.options``: ``numthreads`` 10,
    ``max`` (the most worker threads) 100, or ``numthreads`` if that is more, ``shutdown_timeout`` 5 seconds; and
    ``request_queue_size`` (the listen backlog) ``socket.SOMAXCONN``, so that a burst of connections is not refused
    while the pool grows. What it adds:

    - a pool that grows from ``numthreads`` toward ``max`` while requests wait, and a 503 for a request that
      waits for a thread longer than ``header_timeout`` (``PoolSizer``);
    - open streams ended at once by ``stop()`` (``devserver.streams``), which waits for requests in flight within
      ``shutdown_timeout`` all told;
    - a request parsed only once its head has all arrived, within ``header_timeout`` seconds, and its body too,
      each read within ``timeout`` seconds of the last (408 otherwise): until then the connection waits in the
      selector, so that slow or silent clients hold no worker;
    - the request head and its framing read strictly (RFC 9112), with limits: ``max_request_line`` bytes (414),
      ``max_request_header_size`` bytes and ``max_headers`` fields for the header block (431),
      ``max_request_body_size`` bytes of body (413; 0 for none); headers with ``_`` in their name dropped; lines
      parsed once, on the selector's thread (``devserver.http``);
    - no cap on idle keep-alive connections (``keep_alive_conn_limit``);
    - the ``Gateway`` of ``devserver.http.gateway``: ``close()`` always called, ``wsgi.file_wrapper`` sent
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
    and checking the limit costs a locked count on every response: no limit by default; a number set here is
    honoured (``devserver.http.response.header_block``)."""

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
        keep_alive=OPTIONS_BY_NAME["keep_alive"].default,
        max_connections=OPTIONS_BY_NAME["max_connections"].default,
        request_timeout=OPTIONS_BY_NAME["request_timeout"].default,
        socket_mode=None,
        socket_owner=None,
        listening_socket=None,
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
        self.max_headers = max_headers
        self.header_timeout = header_timeout
        self.keep_alive = keep_alive
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.in_flight = InFlight() if request_timeout else None  # for --request-timeout only: no cost otherwise
        self._stuck_watcher = None
        self.connections_open = 0  # open HTTP connections (Connection), counted under _counting
        self._counting = threading.Lock()
        self.socket_mode = socket_mode
        self.socket_owner = socket_owner
        self.listening_socket = listening_socket
        self.bind_error = None
        self.pool_sizer = None
        self.streams = OpenStreams()
        self._accepting = threading.Lock()  # pause_accepting and drain against the timer that resumes
        self.queued = {}  # connection -> time.monotonic() it was queued for a worker (answer_waiting)
        self._waker = None
        self._stopping_threads = None
        self._socket_file = None  # (path, device, inode) of the unix socket file this server made

    @property
    def limits(self):
        """What a request may hold (``devserver.http.parser.Limits``), from the ``max_*`` attributes."""
        return Limits(self.max_request_line, self.max_request_header_size, self.max_headers, self.max_request_body_size)

    def bind(self, family, type, proto=0):
        if self.listening_socket is not None:
            return self._take_listening_socket()
        try:
            return super().bind(family, type, proto)
        except OSError as error:
            self.bind_error = error
            raise

    def bind_unix_socket(self, bind_addr):
        """Replaces cheroot's with ``listen_on``, as a master of ``--workers`` binds: a path that exists and is
        not a unix socket is refused (cheroot unlinks whatever lies there), and so is a socket another server
        answers on; the file gets ``socket_owner`` and ``socket_mode`` (cheroot: 0o777) before ``listen()``, so
        before any client can connect, and is removed by ``stop()``."""
        if self.listening_socket is not None:
            return self._take_listening_socket()
        mode = 0o777 if self.socket_mode is None else self.socket_mode  # cheroot's, when none is given
        try:
            sock = self.socket = listen_on(
                bind_addr, socket_mode=mode, owner=self.socket_owner, backlog=self.request_queue_size
            )
        except UnixSocketError as error:
            self.bind_error = error
            raise
        self.bind_addr = bind_addr
        info = os.stat(bind_addr)
        self._socket_file = (bind_addr, info.st_dev, info.st_ino)
        return sock

    def _take_listening_socket(self):
        sock = self.socket = self.listening_socket
        self.bind_addr = self.resolve_real_bind_addr(sock)
        return sock

    def prepare(self):
        """cheroot's, with the listening socket given to the server (``listening_socket``) if any, and never one
        because ``LISTEN_PID`` is set: cheroot then takes descriptor 3 as an IPv4 socket, whoever the variable was
        meant for (``devserver.systemd.listen_sockets`` reads and removes it first, when it is for this process)."""
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
        if self.listening_socket is not None:
            name = self.listening_socket.getsockname()
            self.bind_addr = name if self.listening_socket.family == socket.AF_UNIX else name[:2]
        super().prepare()
        accept_pausing(self)
        self._waker = SelectorWaker(self)
        # Also for a pool that cannot grow: it answers 503 to requests that wait too long for a thread.
        self.pool_sizer = PoolSizer(self.requests, server=self)
        self.pool_sizer.start()
        if self.in_flight is not None:
            self._stuck_watcher = StuckWatcher(self.in_flight, self.request_timeout)
            self._stuck_watcher.start()

    draining = False
    """Set while stopping: each response closes its connection."""

    @property
    def streams_ended(self):
        """How many open streams ``stop()`` ended."""
        return self.streams.ended_count

    def stop(self):
        """cheroot's graceful stop, after ending the open streams (``devserver.streams``) and ``drain()``: the
        requests in flight get ``shutdown_timeout`` seconds all told (cheroot's own gave the draining and the join
        that much each), and are then cut off (their sockets shut for reading). It returns once every worker thread
        has ended, those held by ended streams and stuck requests too, which may be never: ``settled()`` says when
        only ended streams' threads are left, and ``devserver.lifecycle.stop_gracefully`` waits no longer than the
        timeout."""
        started = time.monotonic()
        self.streams.end_all()
        running = self.ready and getattr(self, "_connections", None) is not None
        if running:
            self.drain()
        # The sizer must not grow the pool while cheroot takes it down.
        if self.pool_sizer is not None:
            self.pool_sizer.stop()
        if self._stuck_watcher is not None:
            self._stuck_watcher.stop()
        self._stopping_threads = pool_threads(self.requests)
        if running and self._waker is not None:
            self._waker.wake(self)
        # The unix socket's file goes before cheroot's stop, whose join of busy workers has no bound (a process that
        # ends meanwhile, os._exit, would leave the file behind).
        if self._socket_file is not None:
            path, device, inode = self._socket_file
            self._socket_file = None
            with contextlib.suppress(OSError):
                info = os.stat(path)
                if (info.st_dev, info.st_ino) == (device, inode):  # still ours, not a newer server's
                    os.unlink(path)
        timeout = self.shutdown_timeout
        self.shutdown_timeout = max(0.0, started + timeout - time.monotonic())
        try:
            super().stop()
        finally:
            self.shutdown_timeout = timeout
            if self._waker is not None:
                # cheroot's loop took it out of its selector when it woke, so cheroot's stop does not close it.
                self._waker.close()

    def settled(self):
        """Whether a ``stop()`` under way has nothing left to wait for: every worker thread has finished but those
        still inside an ended stream's iterator (``devserver.streams``), which are not waited for."""
        threads = self._stopping_threads
        if threads is None:
            return False
        return sum(1 for thread in threads if thread.is_alive()) <= self.streams.running_ended()

    ACCEPT_PAUSE = 0.5
    """Seconds the listening socket is left alone after ``accept()`` failed for want of descriptors (nginx: 0.5)."""

    accept_paused_since = None
    """``time.monotonic()`` when ``accept()`` began to fail for want of descriptors, while it lasts."""

    def pause_accepting(self, error):
        """``accept()`` failed with ``error`` for want of descriptors (``EMFILE``...): take the listening socket out
        of the selector for ``ACCEPT_PAUSE`` seconds, as nginx does, while the connections already open are served
        and idle ones expire (which frees descriptors); new connections wait in the backlog meanwhile. Said once
        for each episode (``accepting_again`` ends it)."""
        with self._accepting:
            stop_accepting(self)
            if self.accept_paused_since is None:
                self.accept_paused_since = time.monotonic()
                server_logger.warning(
                    "Out of file descriptors (accept: %s): new connections wait, and accepting them is tried again "
                    "every %g s; open connections are served. Raise the limit (ulimit -n; LimitNOFILE= under "
                    "systemd).",
                    error.strerror or error,
                    self.ACCEPT_PAUSE,
                )
        timer = threading.Timer(self.ACCEPT_PAUSE, self._resume_accepting)
        timer.daemon = True
        timer.start()

    def _resume_accepting(self):
        with self._accepting:
            if self.ready and not self.draining:
                resume_accepting(self)

    def accepting_again(self):
        """A connection was accepted after ``pause_accepting``: the episode is over."""
        paused = self.accept_paused_since
        self.accept_paused_since = None
        if paused is not None:
            server_logger.warning(
                "Accepting connections again, after %.1f s without file descriptors.", time.monotonic() - paused
            )

    def nudge_sizer(self):
        """Wake the ``PoolSizer`` if it dozes and a request waits in the queue (no worker took it at once)."""
        sizer = self.pool_sizer
        if sizer is not None and sizer.dozing and self.requests.qsize:
            sizer.wake()

    def threads_left(self):
        """Whether worker threads still run after a ``stop()`` (those of ended streams, or requests abandoned)."""
        return any(thread.is_alive() for thread in self._stopping_threads or ())

    def answer_waiting(self):
        """Answer ``503 Service Unavailable`` (``Retry-After: 1``) and close each connection whose request has
        waited for a worker thread for more than ``header_timeout`` seconds; called by the ``PoolSizer`` while
        every worker is busy and the pool can grow no more. A worker that takes one of them later leaves it."""
        limit = time.monotonic() - self.header_timeout
        for conn, queued_at in self.queued.copy().items():
            if queued_at < limit:
                answer_busy(self, conn)

    def drain(self):
        """Stop accepting connections (the listening socket stays open: in a worker of ``--workers`` the others
        take them), then wait, up to ``shutdown_timeout`` seconds, for the connections already accepted whose
        request has begun to arrive, or that were accepted less than ``FRESH_CONNECTION`` seconds ago, to be taken
        by a worker; from now on every response closes its connection. cheroot's ``stop()`` closes those
        connections at once, and a client that had just connected got no response."""
        with self._accepting:
            self.draining = True
            stop_accepting(self)
        deadline = time.monotonic() + self.shutdown_timeout
        quiet_since = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if any(
                conn.incomplete or now - conn.accepted_at < FRESH_CONNECTION
                for conn in waiting_connections(self)
                if conn.read_deadline is not None
            ):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= DRAIN_SETTLE:
                return  # nothing waited for, twice: not even a connection the selector was handling at the first look
            time.sleep(0.01)

    def process_conn(self, conn):
        """Queue ``conn`` for a worker, as cheroot does; but first read what has arrived here, on the selector's
        thread (or, for a pipelined request, on the worker that answered the one before it), without blocking
        (``devserver.http.receive``): the connection goes to a worker only once the
        request's head and body are whole. A client that connects and says nothing, or sends its request a byte at a
        time, wakes no worker, and the pool does not grow for it; and a worker makes no read of its own, which would
        give up the GIL in the middle of a request (``devserver.gil_io``)."""
        if conn is self._waker:
            return  # stop() woke the selector's loop
        try:
            state = receive(self, conn)
        except Exception:  # noqa: BLE001 - a defect: this connection is closed, the others served
            # A pipelined request is received on the worker that answered the one before it (cheroot's put_conn
            # hands the connection straight back here), where an exception would stop the whole server.
            self.error_log("Error while receiving a request", level=logging.ERROR, traceback=True)
            state = CLOSED
        if state is READY:
            self.queued[conn] = time.monotonic()
            super().process_conn(conn)
            self.nudge_sizer()
        elif state is WAIT:
            self.put_conn(conn)
        else:
            conn.close()

    def connection_opened(self):
        """Count a connection made (``devserver.http.request.Connection``); ``True``, for it to be uncounted at its
        close."""
        with self._counting:
            self.connections_open += 1
        return True

    def connection_closed(self):
        with self._counting:
            self.connections_open -= 1

    def over_capacity(self, conn):
        """Whether ``conn``, just accepted, is past ``max_connections`` (0: no limit): then it is answered 503 with
        ``Retry-After`` and closed at once, as nginx refuses past ``worker_connections``, instead of being kept
        waiting with the others without bound. Called on the selector's thread (``cheroot_private``)."""
        if not self.max_connections or self.connections_open <= self.max_connections or type(conn) is not Connection:
            return False
        answer_full(self, conn)
        conn.close()
        return True

    def put_conn(self, conn):
        """Put ``conn`` back in the selector, as cheroot does, with a deadline that cheroot's expiry of idle
        connections enforces (it closes a connection whose ``last_used`` is more than ``timeout`` seconds old): one
        whose request has not all arrived keeps its own (``conn.read_deadline``: ``header_timeout`` from the head's
        first byte, then ``timeout`` from the body's last); an idle one between requests gets ``keep_alive``."""
        deadline = conn.read_deadline  # read once: a pipelined request may be received within super().put_conn
        if deadline is None:
            deadline = time.time() + self.keep_alive  # idle, between requests: --keep-alive
        super().put_conn(conn)
        if conn.read_deadline is None or conn.read_deadline == deadline:
            conn.last_used = deadline - self.timeout

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        server_logger.log(level, "%s", msg, exc_info=traceback)


class SCGIConnection(cheroot_server.HTTPConnection):
    """A connection from a front server that carries one SCGI request: ``communicate`` (cheroot's reads HTTP
    requests until the connection closes) answers it with ``devserver.scgi.serve_connection``, each read of the
    request within the server's ``header_timeout`` and each write of the response within its ``timeout``, and
    returns ``False``, so that cheroot closes the connection. cheroot hands it to a worker once its first bytes have
    arrived. ``read_deadline``, ``accepted_at`` and ``incomplete`` are ``Connection``'s, for ``Server.drain``: a stop
    still answers a connection accepted just before it."""

    incomplete = False

    def __init__(self, server, sock, makefile=MakeFile):
        super().__init__(server, sock, makefile)
        self.accepted_at = time.monotonic()
        self.read_deadline = time.time() + server.timeout

    def communicate(self):
        from .scgi import serve_connection  # sioscgi, an optional dependency, only when SCGI is served

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


class SCGIServer(Server):
    """A ``Server`` that speaks SCGI to a front server instead of HTTP (``devserver.scgi``): the same listening
    sockets, growing pool and graceful stop, one request per connection (``SCGIConnection``).
    ``max_request_header_size`` bounds the netstring of variables, ``max_request_body_size`` the body (413); each
    read of a request may take ``header_timeout`` seconds, each write of a response ``timeout``. The HTTP limits
    and ``ssl_adapter`` do not apply (the front server parses HTTP and makes TLS), nor the access log (the front
    server keeps it)."""

    ConnectionClass = SCGIConnection
    access_log = None

    def process_conn(self, conn):
        """cheroot's: queue ``conn`` for a worker, which reads the request (``Server.process_conn`` reads HTTP)."""
        if conn is not self._waker:  # stop() woke the selector's loop
            wsgi.Server.process_conn(self, conn)
            self.nudge_sizer()


def create_server(
    bind_addr,
    application,
    *,
    ssl_adapter=None,
    forwarded_allow_ips=OPTIONS_BY_NAME["forwarded_allow_ips"].default,
    access_log=Server.access_log,
    server_class=Server,
    plain=None,
    **options,
):
    """The one way a server is built, for the command, the live servers for tests and the tests.

    ``bind_addr``: ``(host, port)`` (port 0 for a free one), a unix socket path, a listening ``socket.socket``
    (passed by systemd), or a list of these: a ``Server`` for one, a ``ServerGroup`` for a list. ``options``:
    ``Server`` keyword arguments (``numthreads``, ``max``, ``shutdown_timeout``, ``socket_mode``, ...);
    ``ssl_adapter``: a ``devserver.http.tls.TLSAdapter`` or ``None`` (``TypeError`` for another);
    ``forwarded_allow_ips``: the peers whose forwarding headers are applied (a ``devserver.proxy.TrustedPeers``;
    ``None``: the application sees the headers as sent);
    ``access_log``: where each response is logged (``devserver.access_log``), or ``None``; ``server_class``:
    ``Server``, or ``SCGIServer`` for SCGI; ``plain``: a function that says of an address (or listening socket)
    whether it is served in plain HTTP even with an ``ssl_adapter`` (``--plain-http``). Nothing is bound until
    ``prepare()``.
    """
    if ssl_adapter is not None and not isinstance(ssl_adapter, TLSAdapter):
        # The TLS handshake and reads are made in the selector's thread, without blocking, through the ssl module's
        # SSLSocket: cheroot's pyOpenSSL adapter, or its builtin one unchanged, would be read as plain bytes.
        raise TypeError("ssl_adapter must be a devserver.http.tls.TLSAdapter (devserver.http.tls.load_adapter).")
    if forwarded_allow_ips is not None:
        application = ForwardedHeaders(application, forwarded_allow_ips)
    servers = []
    for address in bind_addr if isinstance(bind_addr, list) else [bind_addr]:
        if isinstance(address, socket.socket):
            server = server_class(address.getsockname(), application, listening_socket=address, **options)
        else:
            server = server_class(address, application, **options)
        server.ssl_adapter = None if plain is not None and plain(address) else ssl_adapter
        server.access_log = access_log
        servers.append(server)
    return ServerGroup(servers) if isinstance(bind_addr, list) else servers[0]
