"""The worker pool's size: ``PoolSizer`` grows cheroot's ``ThreadPool`` while requests wait and shrinks it when
idle, and answers 503 to requests that wait too long for a thread (``Server.answer_waiting``)."""

import logging
import threading
import time

from .http.cheroot_private import grow, worker_count

__all__ = ["PoolSizer"]

access_logger = logging.getLogger("django.server")
"""The pool's "all workers busy" warning goes to the access log's logger, beside the requests it delays."""

server_logger = logging.getLogger("devserver.server")


class PoolSizer(threading.Thread):
    """Grows and shrinks a cheroot ``ThreadPool``, which never resizes itself.

    While requests arrive (``wake()``, called by the server when a request is queued while the sizer dozes), every
    ``interval`` seconds: when requests are queued and no worker is idle, add as many workers as are queued, up to
    the pool's ``max``; at ``max`` with requests waiting, log a warning (once, then every ``warn_every`` seconds
    while it lasts) that says how many workers hold open streams (``devserver.streams``), and answer ``503 Service
    Unavailable`` to each request that has waited for a worker for more than ``server.header_timeout`` seconds
    (``Server.answer_waiting``), rather than leave its client waiting in silence. Workers above the pool's ``min``
    that have been idle for ``idle_timeout`` seconds are retired. Once nothing has waited for ``ACTIVE_FOR``
    seconds it dozes: it wakes for the next retirement, or when woken, and not at all on an idle server.

    A worker thread that cannot be started (``RuntimeError: can't start new thread``, under a memory limit) is
    logged, once until threads start again, and tried again ``RETRY_AFTER`` seconds later; the pool counts only
    the threads that started (``devserver.http.cheroot_private.grow``).
    """

    ACTIVE_FOR = 1.0
    RETRY_AFTER = 1.0

    def __init__(self, pool, *, server=None, interval=0.02, idle_timeout=10.0, warn_every=5.0):
        super().__init__(name="cheroot-pool-sizer", daemon=True)
        self.pool = pool
        self.server = server
        self.interval = interval
        self.idle_timeout = idle_timeout
        self.warn_every = warn_every
        self.dozing = False
        self.wakes = 0  # times it looked at the pool, for the tests
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._start_failed_at = None

    def stop(self):
        self._stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join()

    def wake(self):
        self._wake.set()

    @property
    def size(self):
        return worker_count(self.pool)

    def _must_act(self):
        return self.pool.qsize and not self.pool.idle

    def run(self):
        surplus_since = warned_at = None
        active_until = 0.0
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now < active_until:
                timeout = self.interval
            elif surplus_since is not None:
                timeout = max(self.interval, surplus_since + self.idle_timeout - now)
            else:
                timeout = None
            # Dozing is said before the last look, so that a request queued after that look wakes it.
            self.dozing = timeout != self.interval
            woken = (self.dozing and self._must_act()) or self._wake.wait(timeout)
            self._wake.clear()
            self.dozing = False
            if self._stop_event.is_set():
                break
            self.wakes += 1
            if woken:
                # Requests are coming: look every interval for a while rather than be woken for each of them.
                active_until = time.monotonic() + self.ACTIVE_FOR
            pool = self.pool
            waiting, idle, size = pool.qsize, pool.idle, self.size
            if waiting and not idle:
                active_until = time.monotonic() + self.ACTIVE_FOR
                if size < pool.max:
                    self._grow(min(waiting, pool.max - size))
                else:
                    if warned_at is None or time.monotonic() - warned_at >= self.warn_every:
                        warned_at = time.monotonic()
                        self.warn(size, waiting)
                    if self.server is not None:
                        self.server.answer_waiting()
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

    def _grow(self, amount):
        failed_at = self._start_failed_at
        if failed_at is not None and time.monotonic() - failed_at < self.RETRY_AFTER:
            return
        started, error = grow(self.pool, amount)
        if error is not None:
            if failed_at is None:
                server_logger.warning(
                    "Cannot start another worker thread (%s): the pool stays at %d threads; trying again every %g s.",
                    error,
                    self.size,
                    self.RETRY_AFTER,
                )
            self._start_failed_at = time.monotonic()
        elif failed_at is not None and started:
            self._start_failed_at = None
            server_logger.warning("Worker threads start again: the pool has %d.", self.size)

    def warn(self, size, waiting):
        streams = len(self.server.streams) if self.server is not None else 0
        held = f" ({streams} of them held by open streams: server-sent events, long polls)" if streams else ""
        access_logger.warning(
            "All %d worker threads are busy%s and %d requests are waiting (raise --max-threads to serve more at "
            "once; a request that waits more than the header timeout is answered 503).",
            size,
            held,
            waiting,
        )
