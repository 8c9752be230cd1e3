"""How ``runcherrypy`` runs a server and how it stops: in the foreground, or under Django's autoreloader.

Signals, the graceful stop, exit statuses and ``os._exit`` live here, and only here. The command builds the server
and says things (``Reporter``): the banner, what stopping means, errors.

Under systemd, ``READY=1`` is sent once serving and ``STOPPING=1`` on the first stop signal (``NOTIFY_SOCKET``).

Stopping (both ways of running): the first SIGINT or SIGTERM stops accepting connections, closes idle keep-alive
connections and lets the requests in flight finish, up to the server's ``shutdown_timeout`` (and ``GRACE`` seconds
more for cheroot's join); the exit status is then 0. A second signal more than ``REPEAT_SIGNAL_WINDOW`` seconds
after the first gives up waiting (exit status 1); one within that window is taken as the same signal delivered
twice (``timeout``, shells and supervisors may send it to both the process and its group).

Under the reloader, Django's ``run_with_reloader`` does not fit a server with worker threads: its parent SIGKILLs
the child 0.25 s after a Ctrl-C and at once on SIGTERM, and its child exits with ``sys.exit(3)`` while cheroot's
non-daemon workers would keep the process alive. Here the parent passes stop signals on to the child and waits for
it, and the child's main thread, which watches the files, stops the server before the process exits: on a code
change requests in flight get ``RELOAD_GRACE`` seconds twice, so a download or a long poll cannot hold up new code.
"""

import enum
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from django.core.management.base import CommandError
from django.utils import autoreload

from .server import ServingThread
from .systemd import notify

__all__ = [
    "GRACE",
    "RELOAD_EXIT_CODE",
    "RELOAD_GRACE",
    "REPEAT_SIGNAL_WINDOW",
    "STOP_SIGNALS",
    "Outcome",
    "Reporter",
    "Runner",
    "StopRequest",
    "stop_gracefully",
]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

REPEAT_SIGNAL_WINDOW = 0.5
"""Seconds within which a repeated stop signal counts as the same one."""

GRACE = 2.0
"""Seconds allowed past ``shutdown_timeout`` for cheroot's ``stop()`` to join its workers."""

RELOAD_EXIT_CODE = 3
"""The child's exit status that asks for a restart (``django.utils.autoreload.trigger_reload``)."""

RELOAD_GRACE = 0.5
"""Seconds that requests in flight get to finish on a reload, twice (cheroot's shutdown timeout, then the join)."""

reload_logger = logging.getLogger("django.utils.autoreload")


class Outcome(enum.Enum):
    """How a graceful stop ended."""

    STOPPED = "every request finished"
    TIMED_OUT = "requests were still running when the shutdown timeout ran out"
    GAVE_UP = "the stop signal came again: requests still running were abandoned"


class StopRequest:
    """A request to stop, from a signal or from ``request()``; handlers only set events (calling cheroot's
    ``stop()`` from a signal handler while ``serve()`` runs deadlocks), and the thread that waits acts.

    ``requested`` is set by the first request; ``give_up`` by a later signal, more than ``REPEAT_SIGNAL_WINDOW``
    seconds after it. ``on_first(signum)`` is called on the first (``signum`` is ``None`` for ``request()``).
    """

    def __init__(self, on_first=None):
        self.requested = threading.Event()
        self.give_up = threading.Event()
        self.on_first = on_first
        self._first_at = None
        self._lock = threading.Lock()

    def handle(self, signum, frame=None):
        now = time.monotonic()
        with self._lock:
            first = self._first_at is None
            if first:
                self._first_at = now
            elif now - self._first_at > REPEAT_SIGNAL_WINDOW:
                self.give_up.set()
        if first:
            self.requested.set()
            if self.on_first is not None:
                self.on_first(signum)

    def request(self):
        """Ask for a graceful stop, as a first signal would; from any thread."""
        self.handle(None)

    def catching_signals(self, others=None):
        """A context manager: SIGINT and SIGTERM call ``handle`` while it lasts, and each signal in ``others`` (a
        dict) its handler. On a thread other than the main one, where ``signal.signal`` is not allowed, it does
        nothing: ``request()`` is then the way to stop."""
        return _SignalHandlers(self.handle, others)


class _SignalHandlers:
    def __init__(self, handler, others=None):
        self.handlers = {signum: handler for signum in STOP_SIGNALS}
        self.handlers.update(others or {})
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, handler) for signum, handler in self.handlers.items()}
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def stop_gracefully(server, *, grace=GRACE, give_up=None):
    """Stop ``server``: no new connections, idle keep-alive connections closed, requests in flight finish.

    cheroot's ``stop()`` waits ``shutdown_timeout`` seconds for them, then shuts their sockets for reading and
    joins without a bound; this waits at most ``grace`` seconds more, or until the ``give_up`` event is set. Returns
    the ``Outcome``; unless it is ``STOPPED``, worker threads still run and the process must end with ``os._exit``.
    """
    stopped = threading.Event()

    def stop():
        server.stop()
        stopped.set()

    threading.Thread(target=stop, name="cheroot-stop", daemon=True).start()
    deadline = time.monotonic() + server.shutdown_timeout + grace
    while not stopped.wait(0.05):
        if give_up is not None and give_up.is_set():
            return Outcome.GAVE_UP
        if time.monotonic() >= deadline:
            return Outcome.TIMED_OUT
    return Outcome.STOPPED


class Reporter:
    """What the ``Runner`` tells its user; the command implements it. Every method may write and flush."""

    def bind_failed(self, server, error):
        """Binding ``server`` raised ``error`` (an ``OSError``); raise the exception to end with."""
        raise error

    def fatal(self, error):
        """Say ``error`` (an exception that ends the run under the reloader, where it cannot propagate)."""

    def serving(self, server):
        """``server`` is bound and serving (the banner)."""

    def notice(self, message):
        """A line about reloading that the logging configuration would not show."""

    def stopping(self, server):
        """A stop was requested; ``server`` is ``None`` when none was serving yet."""

    def stopped(self, outcome):
        """The stop ended with ``outcome``."""

    def cut_off(self):
        """On a reload, requests still running after ``RELOAD_GRACE`` twice are cut off."""


class Runner:
    """Runs the server that ``make_server()`` returns (a ``devserver.server.Server``, not yet bound) until it is
    stopped, telling ``reporter`` (a ``Reporter``) what happens.

    ``run(reload=False)``: in the foreground; returns once stopped gracefully, ends the process with status 1
    (``os._exit``) when requests were abandoned. ``run(reload=True)``: under the autoreloader (main thread only).
    ``stop()`` asks for a graceful stop from another thread, as SIGTERM would.
    """

    def __init__(self, make_server, reporter):
        self.make_server = make_server
        self.reporter = reporter
        self.stop_request = StopRequest(on_first=self._on_first_stop)
        self.thread = None
        self._lock = threading.Lock()
        self._stopping = False
        self._reloader = None

    @property
    def server(self):
        return self.thread.server if self.thread is not None else None

    def stop(self):
        self.stop_request.request()

    def run(self, *, reload=False):
        if not reload:
            self._foreground()
        elif threading.current_thread() is not threading.main_thread():
            raise RuntimeError("The reloader runs on the main thread only; use --noreload.")
        elif os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
            self._reloader_child()
        else:
            status = restart_with_reloader()
            if status:
                sys.exit(status)

    def _start(self, on_exit=None):
        """Build, bind and start serving; the reporter turns a bind failure into the error to raise."""
        server = self.make_server()
        thread = ServingThread(server, on_exit=on_exit)
        try:
            thread.start_serving()
        except OSError as error:
            self.reporter.bind_failed(server, error)
            raise
        self.thread = thread
        self.reporter.serving(server)
        notify("READY=1")
        return thread

    def _on_first_stop(self, signum):
        notify("STOPPING=1")
        self.reporter.stopping(self.server)
        if self._reloader is not None:
            self._reloader.stop()  # the watch loop ends within one tick (1 s for StatReloader)

    def _finish(self, outcome, exit_status):
        self.reporter.stopped(outcome)
        if outcome is not Outcome.STOPPED:
            _exit_now(exit_status)

    def _other_signals(self):
        """SIGUSR1 reopens a file access log (``devserver.access_log.FileAccessLog``), for log rotation; SIGHUP
        loads the TLS certificate again (``devserver.cheroot_overrides.TLSAdapter``), for renewals."""
        if not hasattr(signal, "SIGUSR1"):
            return {}
        return {signal.SIGUSR1: self._call("access_log", "reopen"), signal.SIGHUP: self._call("ssl_adapter", "reload")}

    def _call(self, part, method):
        """A signal handler that calls ``method`` of the serving server's ``part``, if it has one; it only sets a
        flag there, so it is safe whatever the thread it interrupts is doing."""

        def handler(signum, frame=None):
            call = getattr(getattr(self.server, part, None), method, None)
            if call is not None:
                call()

        return handler

    def _foreground(self):
        with self.stop_request.catching_signals(self._other_signals()):
            thread = self._start(on_exit=lambda error: self.stop_request.requested.set())
            # In slices: a signal that the kernel hands to another thread is run by Python on this one only when it
            # runs again (seen under valgrind, where SIGTERM then went unanswered).
            while not self.stop_request.requested.wait(0.5):
                pass
            outcome = stop_gracefully(thread.server, give_up=self.stop_request.give_up)
        if thread.error is not None:
            raise thread.error
        self._finish(outcome, exit_status=1)

    def _reloader_child(self):
        """In the reloader's child: serve from a daemon thread while the main thread watches the project's files,
        as ``django.utils.autoreload.start_django`` does. A change of file ends the process with status 3 (the
        parent starts a new one); a stop signal ends it gracefully. The server is stopped before either."""
        self._reloader = reloader = autoreload.get_reloader()
        self._say_visibly(f"Watching for file changes with {type(reloader).__name__}")
        changed = []

        def record(sender, file_path, **kwargs):
            changed.append(file_path)  # returns None: Django goes on and triggers the reload

        autoreload.file_changed.connect(record, weak=False)
        reloading = False
        with self.stop_request.catching_signals(self._other_signals()):
            try:
                autoreload.start_django(reloader, self._serve_in_child)
            except SystemExit as exit:
                reloading = exit.code == RELOAD_EXIT_CODE
                if reloading and changed and not _shown(reload_logger, logging.INFO):
                    self.reporter.notice(f"{changed[-1]} changed, reloading.")
                raise
            finally:
                self._stop_child(reloading)

    def _serve_in_child(self):
        # Django's main-function thread; the main thread may already be stopping.
        with self._lock:
            if self._stopping:
                return
            try:
                self._start()
            except CommandError as error:
                # A port in use or a bad option: no code change fixes it, so the reloader must not wait. Other
                # errors (a syntax error in the project) propagate: Django shows them and waits for a fix.
                self.reporter.fatal(error)
                _exit_now(1)

    def _stop_child(self, reloading):
        with self._lock:
            self._stopping = True
            server = self.server
        if server is None:
            return
        if not reloading:
            self._finish(stop_gracefully(server, give_up=self.stop_request.give_up), exit_status=1)
            return
        server.shutdown_timeout = min(server.shutdown_timeout, RELOAD_GRACE)
        if stop_gracefully(server, grace=RELOAD_GRACE, give_up=self.stop_request.give_up) is not Outcome.STOPPED:
            self.reporter.cut_off()
            _exit_now(RELOAD_EXIT_CODE)

    def _say_visibly(self, message):
        if _shown(reload_logger, logging.INFO):
            reload_logger.info(message)
        else:
            self.reporter.notice(message)


def _exit_now(status):
    """End the process with ``status`` at once, after what was said: worker threads that still run (requests
    abandoned, or a reload that cut them off) would keep it alive through a normal exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _shown(logger, level):
    """Whether a record of ``level`` from ``logger`` reaches a handler that would emit it (Django's default
    LOGGING shows ``django.*`` INFO records on the console only under DEBUG)."""
    if not logger.isEnabledFor(level):
        return False
    record = logger.makeRecord(logger.name, level, __file__, 0, "", (), None)
    current = logger
    while current is not None:
        for handler in current.handlers:
            if level >= handler.level and handler.filter(record):
                return True
        if not current.propagate:
            break
        current = current.parent
    return False


def restart_with_reloader():
    """Run this command again as a child with the reloader on, again each time it exits with status 3; return
    the child's last exit status.

    SIGINT and SIGTERM are passed on to the child, which stops gracefully; no child is started after one. SIGUSR1
    and SIGHUP are passed on too (the child reopens its access log, loads its certificate again).
    """
    environ = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    arguments = autoreload.get_child_arguments()
    state = {"child": None, "stopping": False}

    def pass_on(signum, frame):
        child = state["child"]
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def forward(signum, frame):
        state["stopping"] = True
        pass_on(signum, frame)

    passed = {signal.SIGUSR1: pass_on, signal.SIGHUP: pass_on} if hasattr(signal, "SIGUSR1") else None
    with _SignalHandlers(forward, passed):
        while not state["stopping"]:
            state["child"] = subprocess.Popen(arguments, env=environ, close_fds=False)
            status = state["child"].wait()
            if status != RELOAD_EXIT_CODE:
                return status
        return 0
