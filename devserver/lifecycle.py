"""How ``runcherrypy`` runs a server and how it stops: in the foreground, or under Django's autoreloader.

Signals, the graceful stop, exit statuses and ``os._exit`` live here, and only here. The command builds the server
and says things (``Reporter``): the banner, what stopping means, errors.

Under systemd, ``READY=1`` is sent once serving and ``STOPPING=1`` on the first stop signal (``NOTIFY_SOCKET``).

Stopping (both ways of running): the first SIGINT or SIGTERM ends the open streams at once (server-sent events,
long polls: ``devserver.streams``), stops accepting connections, closes idle keep-alive connections and lets the
requests in flight finish, up to the server's ``shutdown_timeout`` and ``GRACE`` seconds more; the exit status is
then 0. A second signal more than ``REPEAT_SIGNAL_WINDOW`` seconds after the first gives up waiting (exit status
1); one within that window is taken as the same signal delivered twice (``timeout``, shells and supervisors may
send it to both the process and its group).

Under the reloader, Django's ``run_with_reloader`` does not fit a server with worker threads: its parent SIGKILLs
the child 0.25 s after a Ctrl-C and at once on SIGTERM, its child exits with ``sys.exit(3)`` while cheroot's
non-daemon workers would keep the process alive, and each child binds the port anew, so that a browser reloading
during a restart was reset or refused. Here the parent (``devserver.reloader``) binds the listening sockets once for
every child, keeps the next child ready, and passes stop signals on. The child stops its server on a thread of its
own as soon as a signal or a code change comes (not at the watcher's next look), then ends with ``os._exit``: on a
code change, requests in flight get ``RELOAD_GRACE`` seconds, streams none.
"""

import contextlib
import enum
import logging
import os
import signal
import sys
import threading
import time

from django.core.management.base import CommandError
from django.utils import autoreload

from . import reloader as reloader_module
from .listening import close_listening
from .reloader import RELOAD_EXIT_CODE, STOP_SIGNALS, SignalHandlers, get_reloader, restart_with_reloader
from .server import ServingThread
from .systemd import notify

__all__ = [
    "GRACE",
    "RELOAD_GRACE",
    "REPEAT_SIGNAL_WINDOW",
    "STOP_SIGNALS",
    "Outcome",
    "Reporter",
    "Runner",
    "StopRequest",
    "stop_gracefully",
]


REPEAT_SIGNAL_WINDOW = 0.5
"""Seconds within which a repeated stop signal counts as the same one."""

GRACE = 0.15
"""Seconds that a stop may take past ``shutdown_timeout``: the server's own work (closing connections, joining
idle workers), after which requests still running are abandoned."""

RELOAD_GRACE = 0.5
"""Seconds that requests in flight get to finish on a reload (at most: the shutdown timeout if it is less)."""

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
    seconds after it (a duplicate within it is ignored), or ``again`` instead while ``delaying``
    (``--shutdown-delay``: the graceful stop then begins at once). ``on_first(signum)`` is called on the first
    (``signum`` is ``None`` for ``request()``).
    """

    def __init__(self, on_first=None):
        self.requested = threading.Event()
        self.give_up = threading.Event()
        self.again = threading.Event()  # a later signal during --shutdown-delay: stop gracefully now
        self.first_signal = None
        self.delaying = False  # set by the runner while --shutdown-delay runs
        self.on_first = on_first
        self._first_at = None
        self._lock = threading.Lock()

    def handle(self, signum, frame=None):
        now = time.monotonic()
        with self._lock:
            first = self._first_at is None
            if first:
                self._first_at = now
                self.first_signal = signum
            elif now - self._first_at > REPEAT_SIGNAL_WINDOW:  # not a duplicate of the first (kill and systemd)
                if self.delaying:
                    self.again.set()  # during --shutdown-delay: the graceful stop begins now
                else:
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
        return SignalHandlers(self.handle, others)


def stop_gracefully(server, *, grace=GRACE, give_up=None):
    """Stop ``server`` (``devserver.server.Server.stop``): open streams ended, no new connections, idle
    keep-alive connections closed, requests in flight finish.

    Waits until only worker threads held by ended streams are left (``server.settled()``), for at most the
    server's ``shutdown_timeout`` plus ``grace`` seconds, or until the ``give_up`` event is set. Returns the
    ``Outcome``. Worker threads may still run afterwards (ended streams' always, others unless ``STOPPED``): they
    are not daemons, so the process must then end with ``os._exit`` (``Runner`` does).
    """
    stopped = threading.Event()

    def stop():
        server.stop()
        stopped.set()

    deadline = time.monotonic() + server.shutdown_timeout + grace
    threading.Thread(target=stop, name="cheroot-stop", daemon=True).start()
    while not stopped.wait(0.01):
        if server.settled():
            break
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

    def stopped(self, outcome, ended=0):
        """The stop ended with ``outcome``; ``ended`` open streams were ended. The process may end right after."""

    def cut_off(self):
        """On a reload, requests still running after ``RELOAD_GRACE`` seconds (and ``GRACE``) are cut off."""

    def exiting(self):
        """The reloader's parent ends now (``os._exit``), its last child gone."""


class Runner:
    """Runs the server that ``make_server()`` returns (a ``devserver.server.Server``, not yet bound) until it is
    stopped, telling ``reporter`` (a ``Reporter``) what happens.

    ``run(reload=False)``: in the foreground; returns once stopped gracefully, ends the process with status 1
    (``os._exit``) when requests were abandoned, and with status 0 when only ended streams' threads are left.
    ``run(reload=True)``: under the autoreloader (main thread only, ``devserver.reloader``); in the parent,
    ``bind()`` (if given) returns the listening sockets to hand to every child; in a child, ``link`` is its
    ``devserver.reloader.ReloaderLink``. ``stop()`` asks for a graceful stop from another thread, as
    SIGTERM would.
    """

    def __init__(self, make_server, reporter, bind=None, link=None, shutdown_delay=0.0):
        self.make_server = make_server
        self.reporter = reporter
        self.shutdown_delay = shutdown_delay
        self.bind = bind
        self.link = link
        self.stop_request = StopRequest(on_first=self._on_first_stop)
        self.thread = None
        self._lock = threading.Lock()
        self._stopping = False
        self._in_child = False
        self._started = threading.Event()  # in a reloader's child: serving
        self._stopper = None

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
            sockets = self.bind() if self.bind is not None and reloader_module.INHERITS else []
            try:
                status = restart_with_reloader(sockets)
            finally:
                for sock in sockets:
                    close_listening(sock)
            # The children did the work; this process has nothing more to clean up, and a normal exit of an
            # interpreter with Django loaded takes 70 ms more of the developer's Ctrl-C. A child ended by a signal
            # (a negative status) is reported as a shell does: 128 + the signal's number.
            self.reporter.exiting()
            _exit_now(status if status >= 0 else 128 - status)

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

    def _delays(self, signum):
        """Whether a stop for ``signum`` waits ``shutdown_delay`` seconds first, serving on: SIGTERM (Kubernetes',
        a load balancer's) in the foreground; not Ctrl-C, not under the reloader."""
        return signum == signal.SIGTERM and self.shutdown_delay > 0 and not self._in_child and self.link is None

    def _on_first_stop(self, signum):
        notify("STOPPING=1")
        if self._delays(signum):
            self.reporter.notice(
                f"Stopping in {self.shutdown_delay:g} s (--shutdown-delay): serving on meanwhile; a second signal "
                "stops at once."
            )
            return
        self.reporter.stopping(self.server)
        if self._in_child:
            # At once, not at the watcher's next look (StatReloader: once a second).
            self._stop_child(reloading=False)

    def _finish(self, outcome, exit_status):
        server = self.server
        self.reporter.stopped(outcome, ended=server.streams_ended if server is not None else 0)
        if outcome is not Outcome.STOPPED:
            _exit_now(exit_status)
        if server is not None and server.threads_left() and threading.current_thread() is threading.main_thread():
            _exit_now(0)  # worker threads held by ended streams, which a normal exit would wait for

    def _other_signals(self):
        """SIGUSR1 reopens a file access log (``devserver.access_log.FileAccessLog``), for log rotation; SIGHUP
        loads the TLS certificate again (``devserver.http.tls.TLSAdapter``), for renewals."""
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
            if self._delays(self.stop_request.first_signal):
                # --shutdown-delay: serving on, accepting too, while load balancers take this server out.
                self.stop_request.delaying = True
                self.stop_request.again.wait(self.shutdown_delay)
                self.stop_request.delaying = False
                self.reporter.stopping(thread.server)
            outcome = stop_gracefully(thread.server, give_up=self.stop_request.give_up)
        if thread.error is not None:
            raise thread.error
        self._finish(outcome, exit_status=1)

    def _reloader_child(self):
        """In the reloader's child: serve from a daemon thread while the main thread watches the project's files,
        as ``django.utils.autoreload.start_django`` does. A change of file ends the process with status 3 (the
        parent starts a new one); a stop signal ends it gracefully. Either way the server is stopped on a thread
        of its own (``_stop_child``), which ends the process."""
        self._in_child = True
        reloader = get_reloader()
        self._say_visibly(f"Watching for file changes with {type(reloader).__name__}")
        changed = []

        def record(sender, file_path, **kwargs):
            changed.append(file_path)  # returns None: Django goes on and triggers the reload

        autoreload.file_changed.connect(record, weak=False)
        reloading = False
        with self._child_signals():
            for signum in reloader_module.pending_signals:  # came while this process was a standby, or starting
                self.stop_request.handle(signum)
            try:
                self._start_django(reloader)
            except SystemExit as exit:
                reloading = exit.code == RELOAD_EXIT_CODE
                if reloading and changed and not _shown(reload_logger, logging.INFO):
                    self.reporter.notice(f"{changed[-1]} changed, reloading.")
            finally:
                self._stop_child(reloading).join()

    @contextlib.contextmanager
    def _child_signals(self):
        """The reloader's child's signal handlers: SIGINT and SIGTERM handled as they arrive, on a thread of their
        own (``signal.set_wakeup_fd``; the handlers on the main thread do nothing). Python runs a signal's handler on
        the main thread once it runs Python code again, and the file watcher keeps it in C or Rust for a while
        (django-watchfiles: up to 50 ms). Where a pipe cannot be a wakeup descriptor (Windows), the main thread's
        handlers act, as in the foreground."""
        if os.name != "posix":
            with self.stop_request.catching_signals(self._other_signals()):
                yield
            return
        read, write = os.pipe()
        os.set_blocking(write, False)
        previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)

        def handle():
            with contextlib.suppress(OSError):
                while data := os.read(read, 64):
                    for signum in data:
                        if signum in STOP_SIGNALS:
                            self.stop_request.handle(signum)

        threading.Thread(target=handle, name="runcherrypy-signals", daemon=True).start()
        try:
            with SignalHandlers(_no_op, self._other_signals()):
                yield
        finally:
            signal.set_wakeup_fd(previous)

    def _start_django(self, reloader):
        """``django.utils.autoreload.start_django``, but the watcher starts once the server serves (or has failed
        to start): setting up its watches takes the GIL for a while (django-watchfiles adds every folder on
        ``sys.path``: 0.25 s), which would otherwise delay the new code by as much after every change."""
        autoreload.ensure_echo_on()
        main = threading.Thread(
            target=autoreload.check_errors(self._serve_in_child), name="django-main-thread", daemon=True
        )
        main.start()
        while not self._started.wait(0.05) and main.is_alive():
            pass
        ticks = reloader.tick

        def tick_then_look_back():
            looked = False
            for value in ticks():
                if not looked:  # the watcher has made its first pass, or set its watches up
                    looked = True
                    self._look_back(reloader)
                yield value

        reloader.tick = tick_then_look_back
        while not reloader.should_stop:
            reloader.run(main)

    def _look_back(self, reloader):
        """A change saved while this child started (after it was told to go on: ``devserver.reloader.resumed_at``) and
        before its watcher was watching would be lost: a watcher sees changes from its first pass on. Look for one
        once, and reload for it as the watcher would."""
        since = reloader_module.resumed_at
        if since is None:
            return
        now = time.time()
        for path in reloader.watched_files():
            try:
                # Not one dated in the future (a clock ahead, files from an archive): it would reload for ever.
                changed = since < path.stat().st_mtime <= now
            except OSError:
                continue
            if changed:
                reloader.notify_file_changed(path)  # reloads (SystemExit), unless a receiver says not to
                return

    def _serve_in_child(self):
        # Django's main-function thread; the main thread may already be stopping. The lock is not held while the
        # server starts (the system checks may take a while): a stop meanwhile ends the process at once.
        with self._lock:
            if self._stopping:
                return
        try:
            self._start()
            self._started.set()
        except CommandError as error:
            # A bad option, or a socket that cannot be served: no code change fixes it, so the reloader must not
            # wait. Other errors (a syntax error in the project) propagate: Django shows them and waits for a fix.
            self.reporter.fatal(error)
            _exit_now(1)

    def _stop_child(self, reloading):
        """Start stopping the child's server on a thread of its own, once (later calls return the same thread),
        and end the process from that thread: status 3 on a reload, else 0 (1 if requests were abandoned)."""
        with self._lock:
            if self._stopper is None:
                self._stopping = True
                self._stopper = threading.Thread(
                    target=self._end_child, args=(self.server, reloading), name="runcherrypy-stop", daemon=True
                )
                self._stopper.start()
            return self._stopper

    def _end_child(self, server, reloading):
        if server is None:
            _exit_now(RELOAD_EXIT_CODE if reloading else 0)
        if not reloading:
            self._finish(stop_gracefully(server, give_up=self.stop_request.give_up), exit_status=1)
            _exit_now(0)
        if self.link is not None:
            self.link.reloading()  # the next child goes on now, while this one finishes
        server.shutdown_timeout = min(server.shutdown_timeout, RELOAD_GRACE)
        if stop_gracefully(server, give_up=self.stop_request.give_up) is not Outcome.STOPPED:
            self.reporter.cut_off()
        _exit_now(RELOAD_EXIT_CODE)

    def _say_visibly(self, message):
        if _shown(reload_logger, logging.INFO):
            reload_logger.info(message)
        else:
            self.reporter.notice(message)


def _no_op(signum, frame):
    """A signal handler that does nothing, where a thread handles the signal (``Runner._child_signals``)."""


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
