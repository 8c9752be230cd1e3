"""Code reloading for ``runcherrypy`` on Django's autoreloader, with cheroot stopped cleanly on every restart.

Django's ``run_with_reloader`` does not fit a server with worker threads: its parent process SIGKILLs the child
0.25 s after a Ctrl-C (``subprocess.run`` on KeyboardInterrupt) and at once on SIGTERM, and its child runs the
command in a daemon thread, exiting with ``sys.exit(3)`` from the main thread while cheroot's non-daemon workers
would keep the process alive. Here the parent passes stop signals on to the child and waits for it, and the child's
main thread, which watches the files, stops the server before the process exits: idle and streaming connections
closed, the port released, requests in flight given the shutdown timeout.
"""

import logging
import os
import signal
import subprocess

from django.utils import autoreload

from .server import STOP_SIGNALS, StopSignals

__all__ = ["RELOAD_EXIT_CODE", "RELOAD_GRACE", "is_reloader_child", "restart_with_reloader", "run_reloader_child"]

RELOAD_EXIT_CODE = 3
"""The child's exit status that asks for a restart (``django.utils.autoreload.trigger_reload``)."""

RELOAD_GRACE = 0.5
"""Seconds that requests in flight get to finish on a reload, twice (cheroot's shutdown timeout, then the wait for
its workers): a download or a long poll must not hold up the new code."""

logger = logging.getLogger("django.utils.autoreload")


def is_reloader_child():
    return os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"


def restart_with_reloader():
    """Run this command again as a child with the reloader on, again each time it exits with status 3; return
    the child's last exit status.

    SIGINT and SIGTERM are passed on to the child, which stops gracefully; no child is started after one.
    """
    environ = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    arguments = autoreload.get_child_arguments()
    state = {"child": None, "stopping": False}

    def forward(signum, frame):
        state["stopping"] = True
        child = state["child"]
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}
    try:
        while not state["stopping"]:
            state["child"] = subprocess.Popen(arguments, env=environ, close_fds=False)
            status = state["child"].wait()
            if status != RELOAD_EXIT_CODE:
                return status
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_reloader_child(main_func, stop_server, *, on_stopping=None, **kwargs):
    """In the reloader's child: run ``main_func(**kwargs)`` in a daemon thread while the main thread watches the
    project's files, as ``django.utils.autoreload.start_django`` does.

    It ends on a change of file (the process then exits with status 3 and the parent starts a new one), or on
    SIGINT or SIGTERM (``on_stopping(signum)`` is called). Either way ``stop_server(reloading, give_up)`` is called
    on the main thread before the process exits; ``give_up`` is an event set by a second signal.
    """
    reloader = autoreload.get_reloader()
    logger.info("Watching for file changes with %s", type(reloader).__name__)

    def on_first(signum):
        if on_stopping is not None:
            on_stopping(signum)
        reloader.stop()  # the watch loop ends within one tick (1 s for StatReloader)

    reloading = False
    with StopSignals(on_first=on_first) as signals:
        try:
            autoreload.start_django(reloader, main_func, **kwargs)
        except SystemExit as exit:
            reloading = exit.code == RELOAD_EXIT_CODE
            raise
        finally:
            stop_server(reloading, signals.give_up)
