"""``manage.py runcherrypy``: the project on cheroot, with media and static files, reloaded on code changes and
stopped gracefully."""

import errno
import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.runserver import Command as RunserverCommand
from django.core.servers.basehttp import get_internal_wsgi_application
from django.db import connections
from django.utils import autoreload

from devserver.mounts import file_mounts
from devserver.reloader import (
    RELOAD_EXIT_CODE,
    RELOAD_GRACE,
    is_reloader_child,
    restart_with_reloader,
    run_reloader_child,
)
from devserver.server import Server, StopSignals, build_application, serve_in_thread, stop_gracefully

# runserver's wording for the usual bind failures.
BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


def whole_number(minimum):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise ValueError(f"expected a whole number of at least {minimum}, got {text!r}")
        return value

    return convert


def seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < float("inf"):
        raise ValueError(f"expected a number of seconds, 0 or more, got {text!r}")
    return value


@dataclass(frozen=True)
class ServerOption:
    """A command-line option that becomes a keyword argument of ``cheroot.wsgi.Server``.

    ``convert`` turns the text into the value or raises ``ValueError`` with the reason; ``default`` is
    cheroot's own, shown in the help: an option left out is not passed, so cheroot's default applies.
    """

    flag: str
    keyword: str
    convert: Callable[[str], object]
    default: object
    metavar: str
    help: str


SERVER_OPTIONS = (
    ServerOption("--threads", "numthreads", whole_number(1), 10, "MIN", "Worker threads kept ready."),
    ServerOption(
        "--max-threads",
        "max",
        whole_number(1),
        100,
        "MAX",
        "The most worker threads: while every worker is busy and requests wait, the pool grows toward MAX; idle "
        "workers above MIN are retired.",
    ),
    ServerOption(
        "--shutdown-timeout",
        "shutdown_timeout",
        seconds,
        5,
        "SECONDS",
        "Seconds that requests in flight get to finish on CONTROL-C or SIGTERM.",
    ),
)


def threads_range(pool):
    if pool.max == pool.min:
        return f"{pool.min} worker thread{'s' if pool.min > 1 else ''}"
    return f"{pool.min} to {pool.max} worker threads"


class Command(RunserverCommand):
    help = "Starts the project on cheroot, a multithreaded HTTP/WSGI server, serving MEDIA_URL and STATIC_URL too."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--host", help="Address or host name to listen on (instead of addrport).")
        parser.add_argument("-p", "--port", help="Port to listen on (instead of addrport).")
        for option in SERVER_OPTIONS:
            parser.add_argument(
                option.flag,
                dest=option.keyword,
                metavar=option.metavar,
                help=f"{option.help} Default: {option.default}.",
            )
        parser.add_argument(
            "--nostatic",
            action="store_false",
            dest="use_static_handler",
            help="Do not serve static files at STATIC_URL.",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            dest="insecure_serving",
            help="Serve static files through the staticfiles finders even if DEBUG is False.",
        )

    def handle(self, *args, **options):
        self.server_options = self.server_keywords(options)
        host, port = options["host"], options["port"]
        if host is not None or port is not None:
            if options["addrport"]:
                raise CommandError("Give either addrport or --host/--port, not both.")
            host = host or (self.default_addr_ipv6 if options["use_ipv6"] else self.default_addr)
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            options["addrport"] = f"{host}:{port or self.default_port}"
        # runserver's parsing and checks: addrport, -6, ALLOWED_HOSTS when DEBUG is off.
        super().handle(*args, **options)

    def run(self, **options):
        if not 0 <= int(self.port) <= 65535:
            raise CommandError(f"{self.port} is not a valid port number (0 to 65535).")
        self.server = None
        if not options["use_reloader"]:
            self.inner_run(None, **options)
        elif is_reloader_child():
            self._server_lock = threading.Lock()
            self._stopping = False
            run_reloader_child(self.reloader_main, self.stop_reloader_server, on_stopping=self.on_stopping, **options)
        else:
            status = restart_with_reloader()
            if status:
                sys.exit(status)

    def inner_run(self, *args, **options):
        # An exception silenced in ManagementUtility.execute (under the reloader) is raised here, as runserver does.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            # All checks, as runserver's inner_run asks BaseCommand for them (runserver's own get_check_kwargs
            # says "none", so that execute() leaves them to this point).
            check_kwargs = super(RunserverCommand, self).get_check_kwargs(options)
            check_kwargs["display_num_errors"] = True
            self.check(**check_kwargs)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()

        self.mounts = file_mounts(serve_static=options["use_static_handler"], insecure=options["insecure_serving"])
        application = build_application(self.get_handler(*args, **options), self.mounts)
        server = Server((self.addr, int(self.port)), application, **self.server_options)
        if threading.current_thread() is threading.main_thread():
            self.prepare(server)
            self.on_bind(server.bind_addr[1], server=server)
            self.serve_until_signalled(server)
            return
        # Under the reloader: the main thread watches files and stops the server (stop_reloader_server).
        with self._server_lock:
            if self._stopping:
                return
            self.prepare(server)
            self.server = server
        self.on_bind(server.bind_addr[1], server=server)
        server.serve()

    def serve_until_signalled(self, server):
        """Serve until SIGINT or SIGTERM, then stop gracefully; a second signal gives up (exit status 1)."""
        self.server = server
        failure = []
        with StopSignals(on_first=self.on_stopping) as signals:

            def on_exit(error):
                if error is not None:
                    failure.append(error)
                signals.requested.set()

            serve_in_thread(server, on_exit)
            signals.requested.wait()
            stopped = stop_gracefully(server, give_up=signals.give_up)
        if failure:
            raise failure[0]
        self.finish(stopped, exit_status=1)

    def reloader_main(self, **options):
        """``inner_run`` in the reloader's child thread, where a ``CommandError`` (a port in use) must end the
        process: the thread cannot exit it, and the reloader would keep waiting for a server that never came."""
        try:
            self.inner_run(None, **options)
        except CommandError as error:
            self.stderr.write(f"CommandError: {error}")
            self.stderr.flush()
            os._exit(1)

    def stop_reloader_server(self, reloading, give_up):
        with self._server_lock:
            self._stopping = True
            server = self.server
        if server is None:
            return
        if not reloading:
            self.finish(stop_gracefully(server, give_up=give_up), exit_status=1)
            return
        # A reload must not wait on a download or a long poll: requests get RELOAD_GRACE seconds, then the old
        # process ends and its connections close with it.
        server.shutdown_timeout = min(server.shutdown_timeout, RELOAD_GRACE)
        if not stop_gracefully(server, grace=RELOAD_GRACE, give_up=give_up):
            self.stderr.write(f"Reloading: requests still running after {2 * RELOAD_GRACE:g} s were cut off.")
            self.stderr.flush()
            os._exit(RELOAD_EXIT_CODE)

    def on_stopping(self, signum):
        timeout = f" up to {self.server.shutdown_timeout:g} s" if self.server is not None else ""
        self.stdout.write(f"Stopping: waiting{timeout} for requests in flight...")
        self.stdout.flush()

    def finish(self, stopped, *, exit_status):
        """Say how the server stopped; when requests were still running, end the process with ``exit_status``
        (their threads would keep it alive)."""
        if stopped:
            self.stdout.write("Server stopped.")
            return
        self.stderr.write("Requests were still running when the shutdown timeout ran out; exiting anyway.")
        self.stdout.flush()
        self.stderr.flush()
        os._exit(exit_status)

    @staticmethod
    def server_keywords(options):
        """The ``cheroot.wsgi.Server`` keyword arguments the user set, converted; ``CommandError`` if one is
        wrong. ``--nothreading`` means a single worker thread."""
        keywords = {}
        for option in SERVER_OPTIONS:
            text = options.get(option.keyword)
            if text is None:
                continue
            try:
                keywords[option.keyword] = option.convert(str(text))
            except ValueError as error:
                raise CommandError(f"{option.flag}: {error}.") from None
        if not options["use_threading"]:
            keywords["numthreads"] = keywords["max"] = 1
        if keywords.get("max", float("inf")) < keywords.get("numthreads", 1):
            raise CommandError("--max-threads must be at least --threads.")
        return keywords

    def get_handler(self, *args, **options):
        """The project's WSGI application (WSGI_APPLICATION, so middleware in its wsgi.py is kept)."""
        return get_internal_wsgi_application()

    def prepare(self, server):
        """Bind and start the workers; a bind failure becomes one ``CommandError`` line."""
        try:
            server.prepare()
        except OSError as error:
            cause = server.bind_error or error
            if isinstance(cause, socket.gaierror):
                message = f"Cannot resolve that host name: {cause.strerror}."
            else:
                message = BIND_ERRORS.get(cause.errno) or cause.strerror or str(cause)
            raise CommandError(f"{message} ({self.display_addr()}:{self.port})") from None

    def display_addr(self):
        if self._raw_ipv6:
            return f"[{self.addr}]"
        return "0.0.0.0" if self.addr == "0" else self.addr

    def on_bind(self, server_port, server=None):
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        now = datetime.now().strftime("%B %d, %Y - %X")
        lines = [
            now,
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}",
            f"Starting cheroot server at {self.protocol}://{self.display_addr()}:{server_port}/ "
            f"with {threads_range(server.requests)}",
        ]
        for mount in self.mounts:
            where = mount.url if mount.prefix is not None else mount.setting
            lines.append(f"  {where}: {mount.source}")
        lines.append(f"Quit the server with {quit_command}.")
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
