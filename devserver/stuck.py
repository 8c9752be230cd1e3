"""Requests that run too long (``--request-timeout``): each is logged once, at WARNING on ``django.server``, with its
method, path, client, the worker process and thread, and the thread's stack, so that the operator sees where it
waits. gunicorn's ``--timeout`` kills a sync worker with no stack and no URL, and has no deadline per request for
threaded workers (gunicorn issues 2086, 3136, 2284; granian issue 177); a Python thread cannot be killed, so the
request is reported, not cut off.
"""

import logging
import os
import sys
import threading
import time
import traceback

from .access_log import NO_ACCESS_FIELDS

__all__ = ["InFlight", "StuckWatcher"]

logger = logging.getLogger("django.server")


class InFlight:
    """The requests a server's workers are answering: ``begin(gateway)`` on the worker's thread when the application
    is called, ``end()`` when the response ends; ``stuck(timeout)`` lists those older than ``timeout`` seconds not
    reported yet, as ``(thread id, gateway, seconds)``."""

    def __init__(self):
        self._requests = {}  # thread id -> [gateway, time.monotonic() it began, reported]

    def begin(self, gateway):
        self._requests[threading.get_ident()] = [gateway, time.monotonic(), False]

    def end(self):
        self._requests.pop(threading.get_ident(), None)

    def __len__(self):
        return len(self._requests)

    def stuck(self, timeout):
        now = time.monotonic()
        found = []
        for ident, entry in list(self._requests.items()):
            gateway, began, reported = entry
            if not reported and now - began >= timeout:
                entry[2] = True  # this request's own entry: a thread's next request has a new one
                found.append((ident, gateway, now - began))
        return found

    def count_over(self, timeout):
        """How many requests have run for ``timeout`` seconds or more."""
        now = time.monotonic()
        return sum(1 for _, began, _ in list(self._requests.values()) if now - began >= timeout)


class StuckWatcher(threading.Thread):
    """Looks at ``in_flight`` (an ``InFlight``) every ``interval`` seconds (a quarter of ``timeout``, between 0.05
    and 1) and logs each request past ``timeout`` seconds once, with its thread's stack; ``stop()`` ends it."""

    def __init__(self, in_flight, timeout):
        super().__init__(name="runcherrypy-stuck-requests", daemon=True)
        self.in_flight = in_flight
        self.timeout = timeout
        self.interval = min(max(timeout / 4, 0.05), 1.0)
        self._stop_event = threading.Event()

    def stop(self):
        self._stop_event.set()

    def run(self):
        while not self._stop_event.wait(self.interval):
            for ident, gateway, seconds in self.in_flight.stuck(self.timeout):
                report(ident, gateway, seconds, self.timeout)


def report(ident, gateway, seconds, timeout):
    """Log one stuck request: what it is, where, and its thread's stack (innermost call last)."""
    env = gateway.env or {}
    frame = sys._current_frames().get(ident)
    stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (the thread has ended)\n"
    thread = next((thread.name for thread in threading.enumerate() if thread.ident == ident), str(ident))
    query = env.get("QUERY_STRING")
    logger.warning(
        "A request has run for %.1f s (--request-timeout %g): %s %s from %s, in worker %d, thread %s; its stack:\n%s",
        seconds,
        timeout,
        env.get("REQUEST_METHOD", "-"),
        env.get("PATH_INFO", "-") + (f"?{query}" if query else ""),
        env.get("REMOTE_ADDR") or "-",
        os.getpid(),
        thread,
        stack.rstrip(),
        extra={**NO_ACCESS_FIELDS, "server_time": time.strftime("%d/%b/%Y %H:%M:%S")},
    )
