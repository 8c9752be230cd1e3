"""Worker processes (``runcherrypy --workers N``): every core, restarts that drop nothing.

The master binds the listening sockets once and starts N workers, each a fresh ``manage.py runcherrypy`` process
(Django's ``autoreload.get_child_arguments()``, as the reloader starts its child) that serves those sockets with
its own growing thread pool; the kernel spreads new connections among them. Workers are started, not forked from
the master, so that each loads the project's code afresh: SIGHUP then brings new code in, one worker at a time.

The master supervises:

- a worker that dies is replaced, and the log says how it ended (exit status or signal); one that dies before it
  is ready, at start-up, ends the run (exit status 1: the project does not load, and would not in a loop either);
- SIGTERM or SIGINT stops every worker gracefully (they finish their requests within ``--shutdown-timeout``); the
  exit status is 0 when they all did. A second one within ``REPEAT_SIGNAL_WINDOW`` counts as the same; a later one
  is passed on, and the workers give up waiting;
- SIGHUP replaces the workers one by one: a new worker is serving before an old one stops accepting, so that no
  connection is refused and no request fails; if the new one fails to start, the old ones stay;
- ``--max-requests`` (with up to 10% jitter, so that workers do not all recycle at once): a worker that has served
  that many requests asks for a replacement, and is retired the same way;
- SIGUSR1 is passed on (each worker reopens its access log);
- under systemd the master, not its workers, says ``READY=1`` once every first worker serves and ``STOPPING=1``.

A worker learns its sockets and its readiness pipe from ``WORKER_ENV`` (``"3,4:7"``: the listening descriptors,
then the descriptor to write ``ready`` and ``recycle`` lines to), and stops when its master is gone.
"""

import contextlib
import itertools
import os
import random
import selectors
import signal
import subprocess
import threading
import time

from .lifecycle import GRACE, REPEAT_SIGNAL_WINDOW
from .systemd import notify

__all__ = ["KILL_AFTER", "WORKER_ENV", "Master", "WorkerLink", "worker_link"]

KILL_AFTER = 1.0
"""Seconds a stopping worker is given past its own deadline (``--shutdown-timeout`` and ``GRACE``) to exit before
the master kills it: a worker ends itself then, and this only catches one that cannot."""

WORKER_ENV = "RUNCHERRYPY_WORKER"
"""Set by the master in each worker's environment: ``"FD,FD,...:READY_FD:NUMBER"`` (the number counts the workers
started, replacements included, for the process title)."""


class WorkerLink:
    """A worker's side: ``sockets`` (``socket.socket`` objects, in the master's order), ``ready()`` and
    ``recycle()`` to tell the master, and ``watch_master(on_gone)``: a daemon thread that calls ``on_gone()`` once
    the master has died (the worker is then re-parented)."""

    def __init__(self, descriptors, ready_fd):
        import socket

        self.sockets = [socket.socket(fileno=fd) for fd in descriptors]
        self.ready_fd = ready_fd
        self.master = os.getppid()
        self._recycle_asked = False

    def _say(self, line):
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, line.encode("ascii") + b"\n")

    def ready(self):
        self._say("ready")

    def recycle(self):
        """Ask once to be replaced (``--max-requests``)."""
        if not self._recycle_asked:
            self._recycle_asked = True
            self._say("recycle")

    def watch_master(self, on_gone, interval=1.0):
        def watch():
            while os.getppid() == self.master:
                time.sleep(interval)
            on_gone()

        threading.Thread(target=watch, name="runcherrypy-master-watch", daemon=True).start()

    def watch_memory(self, max_rss, say, interval=1.0):
        """A daemon thread that asks once to be replaced (``--max-rss``) when this process's resident memory is past
        ``max_rss`` MiB, looked at every ``interval`` seconds, and ``say``s why with the figure (gunicorn issue
        3581; granian's ``--workers-max-rss``)."""

        def watch():
            while not self._recycle_asked:
                rss = resident_mib()
                if rss is not None and rss > max_rss:
                    say(
                        f"Worker {os.getpid()}: resident memory {rss:.0f} MiB is past --max-rss {max_rss} MiB: "
                        "it is replaced, as --max-requests replaces a worker."
                    )
                    self.recycle()
                    return
                time.sleep(interval)

        threading.Thread(target=watch, name="runcherrypy-max-rss", daemon=True).start()

    def counting(self, application, max_requests):
        """``application``, asking to be recycled after ``max_requests`` (plus up to 10% jitter) requests."""
        limit = max_requests + random.randint(0, max_requests // 10)
        count = itertools.count(1).__next__  # thread-safe: one C call

        def counted(environ, start_response):
            if count() == limit:
                self.recycle()
            return application(environ, start_response)

        return counted


def resident_mib():
    """This process's resident memory in MiB (from ``/proc/self/statm``), or ``None`` where that cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as file:
            pages = int(file.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def worker_link(environ=None):
    """The ``WorkerLink`` of a worker process (from ``WORKER_ENV``, which is then removed), or ``None``."""
    environ = os.environ if environ is None else environ
    value = environ.pop(WORKER_ENV, None)
    if not value:
        return None
    descriptors, _, rest = value.partition(":")
    ready, _, number = rest.partition(":")
    project = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    set_title(f"runcherrypy worker {number} {project}".rstrip())
    return WorkerLink([int(fd) for fd in descriptors.split(",") if fd], int(ready))


def set_title(title):
    """Name this process ``title`` in ``ps`` and ``top`` (``setproctitle``, an optional dependency: the
    ``proctitle`` extra); without it, nothing changes."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        return
    setproctitle(title)


class _Worker:
    def __init__(self, process, pipe):
        self.process = process
        self.pipe = pipe
        self.ready = False
        self.replaced_by = None  # the worker started to take this one's place
        self.retiring = False  # sent SIGTERM on purpose
        self.buffer = b""

    @property
    def pid(self):
        return self.process.pid


class Master:
    """Runs ``count`` workers on ``sockets`` (listening ``socket.socket`` objects) until stopped; ``run()``
    returns the exit status.

    ``arguments``: the command line of a worker (``autoreload.get_child_arguments()``); ``environ``: its
    environment, to which ``WORKER_ENV`` is added; ``shutdown_timeout``: seconds the workers get to finish their
    requests (and ``GRACE`` and ``KILL_AFTER`` more, then they are killed); ``say(message)``: how the master
    speaks (the command's stderr); ``on_ready()``: called once all the first workers serve (the banner).
    """

    def __init__(self, sockets, arguments, count, *, environ, shutdown_timeout, say, on_ready=None, shutdown_delay=0):
        self.sockets = sockets
        self.arguments = arguments
        self.count = count
        self.environ = environ
        self.shutdown_timeout = shutdown_timeout
        self.say = say
        self.on_ready = on_ready
        self.workers = []
        self.spawned = 0  # workers started, for their process titles
        self.selector = selectors.DefaultSelector()
        self.signals = []
        self.started = False  # every first worker has been ready
        self.stopping_at = None
        self.shutdown_delay = shutdown_delay
        self.delay_until = None  # SIGTERM came; the stop begins then (--shutdown-delay)
        self.delay_began = None
        self.status = 0
        self.reloading = []  # workers still to replace on SIGHUP, in order
        self.reload_in_progress = False

    # Workers

    def spawn(self):
        read_fd, write_fd = os.pipe()
        descriptors = [sock.fileno() for sock in self.sockets]
        self.spawned += 1
        environ = {**self.environ, WORKER_ENV: f"{','.join(map(str, descriptors))}:{write_fd}:{self.spawned}"}
        try:
            process = subprocess.Popen(self.arguments, env=environ, pass_fds=(*descriptors, write_fd))
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        worker = _Worker(process, read_fd)
        self.workers.append(worker)
        self.selector.register(read_fd, selectors.EVENT_READ, worker)
        return worker

    def retire(self, worker, signum=signal.SIGTERM):
        worker.retiring = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)

    def _read(self, worker):
        try:
            data = os.read(worker.pipe, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(worker.pipe)
            os.close(worker.pipe)
            worker.pipe = None
            return
        worker.buffer += data
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            if line == b"ready":
                self._ready(worker)
            elif line == b"recycle" and self.stopping_at is None and not worker.retiring:
                self._replace(worker)

    def _ready(self, worker):
        worker.ready = True
        old = next((each for each in self.workers if each.replaced_by is worker), None)
        if old is not None:
            self.retire(old)  # its place is taken: no connection waits on it now
        if not self.started and sum(each.ready for each in self.workers) >= self.count:
            self.started = True
            if self.on_ready is not None:
                self.on_ready()
        self._reload_next()

    def _replace(self, worker):
        worker.replaced_by = self.spawn()

    def _reload_next(self):
        """SIGHUP: replace the next worker once the previous replacement serves; say so when all are replaced."""
        if any(each.replaced_by is not None and not each.replaced_by.ready for each in self.workers):
            return
        while self.reloading:
            worker = self.reloading.pop(0)
            if worker in self.workers and not worker.retiring and worker.replaced_by is None:
                self._replace(worker)
                return
        if self.reload_in_progress:
            self.reload_in_progress = False
            self.say("Reloaded: every worker runs the new code.")

    def _reap(self):
        for worker in list(self.workers):
            code = worker.process.poll()
            if code is None:
                continue
            self.workers.remove(worker)
            if worker.pipe is not None:
                self.selector.unregister(worker.pipe)
                os.close(worker.pipe)
            if self.stopping_at is not None:
                # One still starting when the stop came dies of the SIGTERM: it had no request to finish.
                if code != 0 and (worker.ready or code != -signal.SIGTERM):
                    self.say(f"Worker {worker.pid} exited with status {code} while stopping.")
                    self.status = 1
                continue
            if worker.retiring:
                if code != 0:
                    self.say(f"Worker {worker.pid} exited with status {code} while stopping.")
                continue
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            if not worker.ready:
                waiting = next((each for each in self.workers if each.replaced_by is worker), None)
                if waiting is not None:  # a replacement that does not start: keep the old one
                    waiting.replaced_by = None
                    self.reloading.clear()
                    self.reload_in_progress = False
                    self.say(f"A new worker {how} before serving; the running workers stay.")
                    continue
                if not self.started:
                    self.say(f"Worker {worker.pid} {how} before serving; stopping.")
                    self.status = 1
                    self.stop()
                    continue
            self.say(f"Worker {worker.pid} {how}; starting another.")
            self.spawn()

    # Signals

    def _signal(self, signum, frame):
        self.signals.append(signum)

    def _handle(self, signum):
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.delay_until is not None and time.monotonic() - self.delay_began < REPEAT_SIGNAL_WINDOW:
                return  # a duplicate of the SIGTERM that began the delay
            if (
                self.stopping_at is None
                and self.delay_until is None
                and signum == signal.SIGTERM
                and self.shutdown_delay
            ):
                self.delay_began = time.monotonic()
                self.delay_until = self.delay_began + self.shutdown_delay
                notify("STOPPING=1")
                self.say(
                    f"Stopping in {self.shutdown_delay:g} s (--shutdown-delay): the workers serve on meanwhile; a "
                    "second signal stops at once."
                )
            elif self.stopping_at is None:
                self.delay_until = None
                self.stop(signum)
            elif time.monotonic() - self.stopping_at > REPEAT_SIGNAL_WINDOW:
                self.say("Stopping without waiting: the workers give up their requests.")
                for worker in self.workers:
                    self.retire(worker, signum)
        elif signum == signal.SIGHUP and self.stopping_at is None:
            self.say("Reloading: replacing the workers one by one.")
            self.reload_in_progress = True
            self.reloading = [worker for worker in self.workers if worker.replaced_by is None and not worker.retiring]
            self._reload_next()
        elif signum == signal.SIGUSR1:
            for worker in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def stop(self, signum=signal.SIGTERM):
        notify("STOPPING=1")
        if self.started:
            self.say(f"Stopping: the workers finish their requests (up to {self.shutdown_timeout:g} s)...")
        self.stopping_at = time.monotonic()
        for worker in self.workers:
            # Not again to one already retiring (replaced, recycled): a second SIGTERM would tell it to give up its
            # requests, or, once it has stopped, end it by the signal's default action.
            if not worker.retiring:
                self.retire(worker, signal.SIGTERM)

    # The loop

    def run(self):
        set_title(f"runcherrypy master {os.environ.get('DJANGO_SETTINGS_MODULE', '')}".rstrip())
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD)
        previous = {signum: signal.signal(signum, self._signal) for signum in handled}
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        try:
            try:
                for _ in range(self.count):
                    self.spawn()
            except OSError as error:
                self.say(f"Cannot start a worker: {error}.")
                self.status = 1
                self.stop()
            while self.workers:
                for key, _ in self.selector.select(timeout=0.5):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_read, 4096)
                    else:
                        self._read(key.data)
                while self.signals:
                    self._handle(self.signals.pop(0))
                self._reap()
                if self.delay_until is not None and time.monotonic() >= self.delay_until:
                    self.delay_until = None
                    self.stop()
                if (
                    self.stopping_at is not None
                    and time.monotonic() - self.stopping_at > self.shutdown_timeout + GRACE + KILL_AFTER
                ):
                    for worker in self.workers:
                        self.retire(worker, signal.SIGKILL)
                    self.status = 1
            return self.status
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.selector.close()
            os.close(wake_read)
            os.close(wake_write)
