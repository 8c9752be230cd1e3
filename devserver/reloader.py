"""The reloader's parent and its children: one listening socket through every restart, and the next child ready.

Django's ``run_with_reloader`` starts a child, waits for it to exit with status 3 after a code change, and starts
another, which imports Python, Django and the project afresh and binds the port anew. Between the two, a browser's
connections are refused; and the developer waits for the new child's imports after every save. Here:

- The parent binds the listening sockets once (``Runner`` calls ``bind``) and every child serves the same ones
  (``RELOADER_SOCKETS_ENV``): while one child stops and the next starts, new connections wait in the sockets'
  backlog and are answered by the new code, instead of being refused.
- The next child is started ahead, as a standby (``standby``): it imports the libraries (Django, cheroot, this
  package: ``WARM_MODULES``), no project code, and waits. When the serving child sees a change, it tells the parent
  (``reloading``, on a pipe) and stops; the parent tells the standby to go on at once, while the old child finishes
  its requests in flight. The standby then runs the command as a fresh child would (``manage.py`` or ``-m``, with
  the same arguments), so the project's code, settings and checks are loaded after the change, and only their cost
  is left between a save and the new code.
- SIGINT and SIGTERM are passed on to the serving child, which stops gracefully, and no child is started after
  one; a standby ignores them (a terminal's Ctrl-C reaches the whole process group) and ends when its pipe closes.
  SIGUSR1 and SIGHUP are passed on too (the child reopens its access log, loads its certificate again).
"""

import contextlib
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time

from django.utils import autoreload

__all__ = [
    "RELOADER_SOCKETS_ENV",
    "RELOAD_EXIT_CODE",
    "STANDBY_ENV",
    "STOP_SIGNALS",
    "WARM_MODULES",
    "pending_signals",
    "resumed_at",
    "INHERITS",
    "ReloaderLink",
    "SignalHandlers",
    "get_reloader",
    "reloader_link",
    "restart_with_reloader",
    "standby",
]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

RELOAD_EXIT_CODE = 3
"""The child's exit status that asks for a restart (``django.utils.autoreload.trigger_reload``)."""

RELOADER_SOCKETS_ENV = "RUNCHERRYPY_RELOADER_SOCKETS"
"""Set by the parent in each child's environment: ``"FD,FD:NOTIFY_FD"``, the inherited listening descriptors and
the pipe on which the child says ``reloading``."""

STANDBY_ENV = "RUNCHERRYPY_RELOADER_STANDBY"
"""Set by the parent in each child's environment: the descriptor on which a standby waits for ``go``."""

INHERITS = os.name == "posix"
"""Whether children inherit descriptors (``pass_fds``). Where they cannot (Windows), each child binds the sockets
itself and is started when needed, as under Django's own reloader: no socket held through restarts, no standby."""

WARM_MODULES = (
    "django.core.management",
    "django.core.management.commands.runserver",
    "django.core.handlers.wsgi",
    "django.contrib.staticfiles.finders",
    "django.db.models",
    "django.forms",
    "django.http",
    "django.template.loader",
    "django.urls",
    "cheroot.wsgi",
    "devserver.management.commands.runcherrypy",
)
"""What a standby imports before it is needed: libraries only, never the project (its settings, apps and URLs
are imported after the change). Each is imported if it can be; one that fails is left to the command."""


resumed_at = None
"""``time.time()`` when this process, a standby until then, was told to go on: the project's code is loaded after it,
so a change made since may not be in what it runs (``Runner`` looks for one once its watcher is set up). ``None`` in
any other process."""

pending_signals = []
"""SIGINT and SIGTERM received by a standby before its command took the signals over (the ``-c`` code records
them from its first statement): the command acts on them then (``Runner``), so that a Ctrl-C at that moment is
neither lost nor a ``KeyboardInterrupt`` traceback."""


class ReloaderLink:
    """A child's side: ``sockets`` (``socket.socket`` objects, in the parent's order) and ``reloading()``, which
    tells the parent that this child is stopping for a code change, so that the standby goes on now."""

    def __init__(self, descriptors, notify_fd):
        self.sockets = []
        for fd in descriptors:
            sock = socket.socket(fileno=fd)
            sock.set_inheritable(False)
            self.sockets.append(sock)
        self.notify_fd = notify_fd
        if notify_fd is not None:
            os.set_inheritable(notify_fd, False)  # a process this one starts must not hold the parent's pipe open

    def reloading(self):
        if self.notify_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.notify_fd, b"reloading\n")


def reloader_link(environ=None):
    """The ``ReloaderLink`` of a reloader's child (from ``RELOADER_SOCKETS_ENV``, which is then removed from
    ``environ``, by default ``os.environ``), or ``None`` outside one."""
    environ = os.environ if environ is None else environ
    value = environ.pop(RELOADER_SOCKETS_ENV, None)
    if not value:
        return None
    descriptors, _, notify = value.partition(":")
    return ReloaderLink([int(fd) for fd in descriptors.split(",") if fd], int(notify) if notify else None)


def get_reloader():
    """The file watcher for the reloader's child: django-watchfiles' ``WatchfilesReloader`` when it is installed
    (``pip install django-watchfiles``: it sees a change as it happens, through inotify, where Django's
    ``StatReloader`` looks once a second), else Django's choice (``WatchmanReloader`` when Watchman runs, else
    ``StatReloader``). Importing ``django_watchfiles`` installs it as Django's ``autoreload.get_reloader``, as
    adding it to ``INSTALLED_APPS`` does."""
    try:
        import django_watchfiles  # noqa: F401 - installs its reloader in django.utils.autoreload
    except ImportError:
        pass
    return autoreload.get_reloader()


class _Child:
    """A child process started as a standby: ``go()`` sets it serving, ``dismiss()`` ends it unused; ``notices``
    is the read end of its pipe (``reloading`` lines, then the end of file when it exits)."""

    def __init__(self, arguments, environ, sockets):
        if not INHERITS:  # a plain child, serving at once
            self.go_write = self.notices = None
            self.process = subprocess.Popen(arguments, env=environ)
            return
        go_read, self.go_write = os.pipe()
        self.notices, notify_write = os.pipe()
        descriptors = [sock.fileno() for sock in sockets]
        environ = {
            **environ,
            STANDBY_ENV: str(go_read),
            RELOADER_SOCKETS_ENV: ",".join(map(str, descriptors)) + f":{notify_write}",
        }
        try:
            # In a process group of its own until it goes on (standby() then joins this one's): a terminal's Ctrl-C
            # reaches this one's group, and would interrupt a standby still starting Python with a traceback.
            self.process = subprocess.Popen(
                arguments,
                env=environ,
                close_fds=True,
                pass_fds=[*descriptors, go_read, notify_write],
                process_group=0,
            )
        finally:
            os.close(go_read)
            os.close(notify_write)

    def go(self):
        """Set it serving; ``False`` if it is gone (it could not start)."""
        if self.go_write is None:
            return True
        try:
            os.write(self.go_write, b"go")
        except OSError:
            return False
        finally:
            os.close(self.go_write)
            self.go_write = None
        return True

    def dismiss(self):
        """End a standby that was not needed (it has run no project code: killed, rather than waited for while it
        imports), and close its pipes."""
        if self.go_write is not None:
            os.close(self.go_write)
            self.go_write = None
        if self.notices is not None:
            os.close(self.notices)
            self.notices = None
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()

    def next_notice(self):
        """Block until the child says ``reloading`` (``True``) or exits (``False``); the pipe is closed then."""
        if self.notices is None:
            return False
        data = b""
        try:
            while b"\n" not in data:
                chunk = os.read(self.notices, 64)
                if not chunk:
                    return False
                data += chunk
            return True
        finally:
            os.close(self.notices)
            self.notices = None


class SignalHandlers:
    """A context manager: each signal in ``handlers`` (a dict) gets its handler while it lasts, on the main thread
    only (elsewhere ``signal.signal`` is not allowed: it then does nothing). ``handler`` handles SIGINT and
    SIGTERM, unless ``others`` says otherwise."""

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


def _standby_arguments():
    """``autoreload.get_child_arguments()`` made to start a standby: the interpreter and its ``-W``/``-X``
    options, then ``-c`` running ``standby()``, then the script (or ``-m MODULE``) and its arguments.

    The ``-c`` code first makes ``sys.path`` what the command's own start gives it (``sys.path[0]``: the script's
    folder, where ``python manage.py`` puts it; ``-c`` puts the working folder there), and appends the folder this
    package was imported from, last, so that ``devserver`` is found even where the project's ``manage.py`` or
    settings add its folder to ``sys.path`` themselves."""
    arguments = autoreload.get_child_arguments()
    position = 1
    while position < len(arguments) and arguments[position].startswith(("-W", "-X")):
        position += 1
    package_folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        # First of all, a stop signal is recorded, not obeyed: a terminal's Ctrl-C reaches the standbys too.
        "import signal; pending = []; record = lambda signum, frame: pending.append(signum); "
        "signal.signal(signal.SIGINT, record); signal.signal(signal.SIGTERM, record); "
        "import os, sys; sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[1])); "
        f"sys.path.append({package_folder!r}); from devserver.reloader import standby; standby(pending)"
    )
    return [*arguments[:position], "-c", code, *arguments[position:]]


def restart_with_reloader(sockets=()):
    """Run this command again as a child with the reloader on, again each time it reloads; return the last
    child's exit status (0 after a stop signal that it obeyed).

    ``sockets``: listening sockets, bound once here, that every child serves in turn. See the module's docstring.
    """
    environ = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    arguments = _standby_arguments() if INHERITS else autoreload.get_child_arguments()
    state = {"child": None, "stopping": False}

    def pass_on(signum, frame):
        child = state["child"]
        if child is not None and child.process.poll() is None:
            child.process.send_signal(signum)

    def forward(signum, frame):
        state["stopping"] = True
        pass_on(signum, frame)

    passed = {signal.SIGUSR1: pass_on, signal.SIGHUP: pass_on} if hasattr(signal, "SIGUSR1") else None

    def go(child):
        state["child"] = child  # before it goes on: a stop signal from now on is passed to it
        started = child.go()
        if started and state["stopping"]:
            pass_on(signal.SIGTERM, None)  # it may have come just before: the same signal twice counts once
        return started

    with SignalHandlers(forward, passed):
        child = _Child(arguments, environ, sockets)
        go(child)
        while True:
            standby = _Child(arguments, environ, sockets) if INHERITS and not state["stopping"] else None
            reloading = child.next_notice()
            if not reloading:
                status = child.process.wait()
                reloading = status == RELOAD_EXIT_CODE
            else:
                threading.Thread(target=child.process.wait, daemon=True).start()  # reaped while it finishes
            if not reloading or state["stopping"]:
                if standby is not None:
                    standby.dismiss()
                status = child.process.wait()
                return 0 if status == RELOAD_EXIT_CODE else status
            if standby is None or not go(standby):
                if standby is not None:
                    standby.dismiss()  # it could not start: its pipes are closed
                standby = _Child(arguments, environ, sockets)
                go(standby)
            child = standby


def standby(pending=None):
    """A standby child's start (``python -c``, with the command's script or ``-m MODULE`` and arguments after it):
    import ``WARM_MODULES``, wait on ``STANDBY_ENV``'s pipe, then run the command as a child started afresh would;
    end quietly if the pipe closes first. ``pending``: the list in which the ``-c`` code records SIGINT and SIGTERM
    until the command takes them over (``pending_signals``)."""
    global pending_signals, resumed_at
    if pending is not None:
        pending_signals = pending
    go_fd = int(os.environ.pop(STANDBY_ENV))
    for name in WARM_MODULES:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - the command imports it again, and says what is wrong
            pass
    go = os.read(go_fd, 2)
    os.close(go_fd)
    if go != b"go":
        os._exit(0)
    resumed_at = time.time()
    with contextlib.suppress(OSError):  # the parent's process group, where a terminal's Ctrl-C reaches it
        os.setpgid(0, os.getpgid(os.getppid()))
    arguments = sys.argv[1:]
    if arguments[0] == "-m":
        sys.argv = arguments[1:]
        runpy.run_module(arguments[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = arguments
        runpy.run_path(arguments[0], run_name="__main__")
