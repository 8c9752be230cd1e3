"""``manage.py runcherrypy``: the project on cheroot, with media and static files, stopped gracefully."""

import errno
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.runserver import Command as RunserverCommand
from django.core.servers.basehttp import get_internal_wsgi_application
from django.db import connections

from devserver.mounts import file_mounts
from devserver.server import Server, build_application, serve_until_signalled

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
    ServerOption("--threads", "numthreads", whole_number(1), 10, "N", "Worker threads serving requests at once."),
    ServerOption(
        "--shutdown-timeout",
        "shutdown_timeout",
        seconds,
        5,
        "SECONDS",
        "Seconds that requests in flight get to finish on CONTROL-C or SIGTERM.",
    ),
)


class Command(RunserverCommand):
    help = (
        "Starts the project on cheroot, a multithreaded HTTP/WSGI server, serving MEDIA_URL and STATIC_URL too."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--host", help="Address or host name to listen on (instead of addrport).")
        parser.add_argument("-p", "--port", help="Port to listen on (instead of addrport).")
        for option in SERVER_OPTIONS:
            parser.add_argument(
                option.flag, dest=option.keyword, metavar=option.metavar, help=f"{option.help} Default: {option.default}."
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
        # The reloader comes later; --noreload is accepted now and the server always runs without it.
        self.inner_run(None, **options)

    def inner_run(self, *args, **options):
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            check_kwargs = super().get_check_kwargs(options)
            check_kwargs["display_num_errors"] = True
            self.check(**check_kwargs)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()

        self.mounts = file_mounts(serve_static=options["use_static_handler"], insecure=options["insecure_serving"])
        application = build_application(self.get_handler(*args, **options), self.mounts)
        server = Server((self.addr, int(self.port)), application, **self.server_options)
        self.prepare(server)
        self.on_bind(server.bind_addr[1], threads=server.numthreads)

        def on_stopping(signum):
            self.stdout.write(f"Stopping: waiting up to {server.shutdown_timeout:g} s for requests in flight...")
            self.stdout.flush()

        if not serve_until_signalled(server, on_stopping=on_stopping):
            self.stderr.write("Requests were still running when the shutdown timeout ran out; exiting anyway.")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        self.stdout.write("Server stopped.")

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
            keywords["numthreads"] = 1
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

    def on_bind(self, server_port, threads=None):
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        now = datetime.now().strftime("%B %d, %Y - %X")
        lines = [
            now,
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}",
            f"Starting cheroot server at {self.protocol}://{self.display_addr()}:{server_port}/ "
            f"with {threads} threads",
        ]
        for mount in self.mounts:
            where = mount.url if mount.prefix is not None else mount.setting
            lines.append(f"  {where}: {mount.source}")
        lines.append(f"Quit the server with {quit_command}.")
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
