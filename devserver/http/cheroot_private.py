"""Every place where devserver reaches past cheroot's public hooks, in one module, each with what it replaces and
why. ``tests/test_cheroot_private.py`` pins what each relies on, so that a cheroot release that moves it fails a test
instead of misbehaving; CI runs the tests against the pinned cheroot (11.1.x, ``pyproject.toml``) and, when it is
newer, the newest release that range allows.

Private names touched here: the connection manager's ``_selector`` (``stop_accepting``, ``resume_accepting``,
``waiting_connections``, ``SelectorWaker``), its ``_stop_requested`` (``SelectorWaker``) and its
``_from_server_socket`` (``ConnectionManager``); the thread pool's ``_threads``, ``_spawn_worker`` and
``_clear_dead_threads`` (``worker_count``, ``grow``, ``pool_threads``).

Behaviours of cheroot's relied on (public names, undocumented behaviour), pinned by the same tests:

- ``ConnectionManager.put(conn)`` hands a connection straight back to ``server.process_conn`` when
  ``conn.rfile.has_data()``: ``devserver.http.request.Connection`` gives an ``rfile`` whose ``has_data()`` says
  whether the parser holds the start of a pipelined request (the connection reads its socket itself:
  ``devserver.http.receive``).
- Its expiry of idle connections closes one whose ``last_used`` is more than ``server.timeout`` seconds old:
  ``Server.put_conn`` sets ``last_used`` so that a request that has not all arrived is closed at its deadline.
- Its loop takes a ready connection out of the selector before ``process_conn``; a worker returns it with
  ``put_conn``.
"""

import contextlib
import errno
import selectors
import socket

from cheroot import connections as cheroot_connections

__all__ = [
    "OUT_OF_DESCRIPTORS",
    "ConnectionManager",
    "SelectorWaker",
    "accept_pausing",
    "grow",
    "pool_threads",
    "resume_accepting",
    "stop_accepting",
    "waiting_connections",
    "worker_count",
]


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
    the other connections that were ready, so no connection was ever closed and no descriptor came free. And a
    connection accepted past ``server.max_connections`` is handed to ``server.over_capacity(conn)`` (a 503, then
    closed) instead of to the server. Its private ``_from_server_socket`` is extended, calling ``super()``;
    ``accept_pausing`` installs it."""

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
        if conn is not None and self.server.over_capacity(conn):
            return None
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
