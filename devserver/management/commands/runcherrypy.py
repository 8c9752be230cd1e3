"""``manage.py runcherrypy``: the project on cheroot, with media and static files.

This module keeps to the command line: parsing (the options are declared in ``devserver.options``), the banner and
the messages. Building the server is ``devserver.mounts.project_application`` and ``devserver.server.create_server``;
running it, reloading and stopping are ``devserver.lifecycle``.
"""

import errno
import importlib.metadata
import ipaddress
import os
import re
import socket
import sys
from datetime import datetime

import cheroot
import django
from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.core.management.commands.runserver import Command as RunserverCommand
from django.db import connections
from django.utils import autoreload

from devserver import options as option_table
from devserver.access_log import FileAccessLog, LoggerAccessLog
from devserver.http.tls import TLSError, load_adapter, self_signed, trust_instructions
from devserver.lifecycle import GRACE, RELOAD_GRACE, Outcome, Reporter, Runner
from devserver.listening import UnixSocketError, close_listening, listen_on
from devserver.mounts import project_application
from devserver.privileges import PidFile, identity, socket_owner
from devserver.reloader import reloader_link
from devserver.server import Server, create_server
from devserver.systemd import ActivationError, listen_sockets, notify
from devserver.workers import Master, worker_link

# runserver's wording for the usual bind failures.
BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}

SERVER_OPTIONS = (
    "threads",
    "max_threads",
    "shutdown_timeout",
    "max_request_line",
    "max_header_size",
    "max_headers",
    "max_body_size",
    "header_timeout",
    "socket_mode",
    "keep_alive",
    "max_connections",
    "request_timeout",
    "backlog",
)
RESOLVED_OPTIONS = (
    *SERVER_OPTIONS,
    "port",
    "host",
    "use_reloader",
    "forwarded_allow_ips",
    "access_log",
    "access_log_format",
    "unix_socket",
    "plain_http",
    "certificate",
    "private_key",
    "workers",
    "max_requests",
    "max_rss",
    "shutdown_delay",
    "pidfile",
    "user",
    "group",
    "socket_group",
)
_NEGATIVE_NUMBER = re.compile(r"-[0-9]*\.?[0-9]+")


class OptionParser(CommandParser):
    """Django's parser, with every error a one-line ``CommandError`` and exit status 1, also from the command line
    (argparse prints its usage and exits with 2); and a negative number after an option that takes a value is
    that value (``--threads -3``: argparse takes ``-3`` for an option, since ``-6`` is one), so that the converter
    says what is wrong with it."""

    def parse_known_args(self, args=None, namespace=None):
        if args is not None:
            args = self._attach_negative_values(list(args))
        return super().parse_known_args(args, namespace)

    def _attach_negative_values(self, args):
        takes_value = {flag for action in self._actions if action.nargs is None for flag in action.option_strings}
        joined = []
        position = 0
        while position < len(args):
            arg = args[position]
            following = args[position + 1] if position + 1 < len(args) else None
            if arg in takes_value and following is not None and _NEGATIVE_NUMBER.fullmatch(following):
                joined.append(f"{arg}={following}" if arg.startswith("--") else f"{arg}{following}")
                position += 2
                continue
            joined.append(arg)
            position += 1
        return joined

    def error(self, message):
        if not self.called_from_command_line:
            raise CommandError(f"Error: {message}")
        self.exit(1, f"CommandError: {message}.\n")


class Command(RunserverCommand, Reporter):
    help = "Serves the project on cheroot, a multithreaded HTTP/WSGI server, with MEDIA_URL and STATIC_URL."
    server_name = "cheroot server"
    server_class = Server

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OptionParser
        return parser

    hidden_options = ()
    """Options of ``devserver.options`` this command refuses, left out of its ``--help`` (``runscgi``: those of
    HTTP and TLS)."""

    def add_arguments(self, parser):
        # Not runserver's: its help texts do not fit (addrport takes host names and port 0; --nothreading means
        # one worker thread), and --reload is new. The dests are runserver's, for its handle().
        option_table.add_arguments(parser, hidden=self.hidden_options)

    def get_version(self):
        """What ``--version`` prints: this package's version, with Django's and cheroot's (Django's own command
        prints Django's alone)."""
        try:
            version = importlib.metadata.version("django-runcherrypy")
        except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
            version = "unknown"
        return f"django-runcherrypy {version} (Django {django.get_version()}, cheroot {cheroot.__version__})"

    def handle(self, *args, **options):
        try:
            self.values = option_table.resolve(RESOLVED_OPTIONS, options, settings)
            option_table.check_combinations(self.values, options)
        except option_table.OptionError as error:
            raise CommandError(str(error)) from None
        self.server_options = self.server_keywords(self.values, use_threading=options["use_threading"])
        # A worker of --workers serves the sockets its master passes; the command line is the master's.
        self.worker = worker_link()
        try:
            self.passed_sockets = self.worker.sockets if self.worker else listen_sockets()
        except ActivationError as error:
            raise CommandError(str(error)) from None
        # In the reloader's child: the sockets its parent bound for every child (devserver.reloader).
        self.reloader = reloader_link()
        self.reloaded_sockets = self.reloader.sockets if self.reloader else []
        given_address = options["addrport"] or options["host"] is not None or options["port"] is not None
        if self.passed_sockets and not self.worker and (given_address or self.values["unix_socket"]):
            raise CommandError("systemd passed the sockets to listen on (LISTEN_FDS): give no address as well.")
        if self.passed_sockets and self.values["use_reloader"]:
            raise CommandError("systemd's sockets (LISTEN_FDS) cannot go to the reloader's children: use --noreload.")
        self.tls = None
        try:
            self.identity = identity(self.values["user"], self.values["group"])
        except ValueError as error:
            raise CommandError(f"{error}.") from None
        if self.identity is not None and os.geteuid() != 0:
            raise CommandError("--user and --group need the server to be started as root.")
        try:
            self.socket_owner = socket_owner(self.identity, self.values["socket_group"])
        except ValueError as error:
            raise CommandError(f"{error}.") from None
        if self.socket_owner is not None:
            self.server_options["socket_owner"] = self.socket_owner
        # The pid file is the master's, or the reloader's parent's: the process that lasts.
        owns_pidfile = self.values["pidfile"] and not self.worker and not self.reloader
        self.pidfile = PidFile(self.values["pidfile"]) if owns_pidfile else None
        if self.pidfile is not None and not os.access(os.path.dirname(os.path.abspath(self.pidfile.path)), os.W_OK):
            raise CommandError(f"Cannot write the pid file {self.pidfile.path}: its folder is missing or read-only.")
        # Without an address, a unix socket (or systemd's sockets) replaces the default TCP one.
        self.serve_tcp = not (self.passed_sockets or self.values["unix_socket"]) or bool(given_address)
        host, port = self.values["host"], self.values["port"]
        if options["host"] is not None or options["port"] is not None:
            if options["host"] is None:
                host = self.default_addr_ipv6 if options["use_ipv6"] else self.default_addr
            if options["port"] is None:
                port = self.default_port
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            options["addrport"] = f"{host}:{port}"
        # runserver's parsing and checks: addrport, -6, ALLOWED_HOSTS when DEBUG is off; it calls run().
        super().handle(*args, **options)

    @staticmethod
    def server_keywords(values, *, use_threading=True):
        """The ``devserver.server.Server`` keyword arguments from resolved option values (checked by
        ``devserver.options.check_combinations``); ``--nothreading`` means a single worker thread."""
        keywords = {
            option_table.OPTIONS_BY_NAME[name].keyword: values[name]
            for name in SERVER_OPTIONS
            if values[name] is not None
        }
        if not use_threading:
            keywords["numthreads"] = keywords["max"] = 1
        return keywords

    def run(self, **options):
        if not 0 <= int(self.port) <= 65535:
            raise CommandError(f"{self.port} is not a valid port number (0 to 65535).")
        self.options = options
        if options.get("self_signed"):
            self.tls = self.make_self_signed()
        if self.tls or self.values["certificate"]:
            self.protocol = "https"
        self.plain_address = self.parse_plain_http()
        try:
            if self.values["workers"] > 1 and not self.worker:
                self.run_master()
                return
            # A worker of --workers does not wait: its master waited before passing SIGTERM on.
            delay = 0 if self.worker else self.values["shutdown_delay"]
            self.runner = Runner(
                self.make_server, self, bind=self.bind_for_children, link=self.reloader, shutdown_delay=delay
            )
            if self.worker:
                self.worker.watch_master(self.runner.stop)
            try:
                self.runner.run(reload=self.values["use_reloader"])
            except RuntimeError as error:
                raise CommandError(str(error)) from None
        finally:
            if self.pidfile is not None:
                self.pidfile.remove()

    def bound(self, *, switch=True):
        """The sockets are bound: write the pid file, and (``switch``) give up root for ``--user``/``--group``. A
        master of ``--workers`` keeps its user, as gunicorn's does: each worker switches once it serves."""
        if self.pidfile is not None:
            try:
                self.pidfile.write()
            except OSError as error:  # checked at start-up; serving goes on
                self._say(self.stderr, f"Cannot write the pid file {self.pidfile.path}: {error.strerror}.")
        if switch and self.identity is not None:
            self.identity.assume()
            self.identity = None

    def run_master(self):
        """``--workers N``: checks once, bind the sockets, and run the workers (``devserver.workers.Master``)
        until stopped; the exit status is the master's."""
        self.prepare_project()
        self.make_ssl_adapter()  # a bad certificate is one error here, not one per worker
        self.make_access_log()
        made = self.bind_addresses()
        sockets = [*self.passed_sockets, *made]
        try:
            self.bound(switch=False)
            _, self.mounts = project_application(
                serve_static=self.options["use_static_handler"], insecure=self.options["insecure_serving"]
            )
            workers, pool = self.values["workers"], self.server_options
            capacity = f"{workers} worker processes of {threads_range_of(pool['numthreads'], pool.get('max'))} each"
            master = Master(
                sockets,
                autoreload.get_child_arguments(),
                workers,
                # The master alone speaks to systemd (NotifyAccess=main): not its workers.
                environ={name: value for name, value in os.environ.items() if name != "NOTIFY_SOCKET"},
                shutdown_timeout=pool["shutdown_timeout"],
                say=lambda message: self._say(self.stderr, message),
                on_ready=lambda: (self.announce(self.socket_urls(sockets, made), capacity), notify("READY=1")),
                shutdown_delay=self.values["shutdown_delay"],
            )
            status = master.run()
        finally:
            for sock in made:
                close_listening(sock)
        self._say(self.stdout if status == 0 else self.stderr, "Server stopped." if status == 0 else "Stopped.")
        if status:
            sys.exit(status)

    def bind_for_children(self):
        """In the reloader's parent: bind the listening sockets once, for every child to serve in turn (a bind
        failure is a ``CommandError`` here, before any child starts), and write the pid file: this process's, the
        one that lasts and passes signals on."""
        made = self.bind_addresses()
        self.bound(switch=False)
        return made

    def bind_addresses(self):
        """Bind ``addresses()`` with ``listen_on``, for a process that hands the sockets to its children (a master of
        ``--workers``, the reloader's parent); a failure is a ``CommandError`` (``bind_failed``), and the sockets
        bound before it are closed."""
        made = []
        try:
            for address in self.addresses():
                try:
                    made.append(
                        listen_on(
                            address,
                            socket_mode=self.values["socket_mode"],
                            owner=self.socket_owner,
                            backlog=self.values["backlog"],
                        )
                    )
                except OSError as error:
                    self.bind_failed(None, error)
        except BaseException:
            for sock in made:
                sock.close()
            raise
        return made

    def addresses(self):
        """The addresses to bind: addrport (unless a unix socket or systemd's sockets replace it), then the unix
        socket, then ``--plain-http``'s."""
        addresses = []
        if self.serve_tcp:
            addresses.append((self.addr, int(self.port)))
        if self.values["unix_socket"]:
            addresses.append(self.values["unix_socket"])
        if self.plain_address is not None:
            addresses.append(self.plain_address)
        return addresses

    plain_address = None
    """``--plain-http``'s ``(host, port)``, or ``None``."""

    def parse_plain_http(self):
        """``--plain-http ADDRPORT`` as ``(host, port)``: ``PORT`` (on addrport's host), ``HOST:PORT`` or
        ``[IPv6]:PORT``; ``CommandError`` for anything else, or for addrport's own port."""
        text = self.values["plain_http"]
        if text is None:
            return None
        host, _, port = text.rpartition(":")
        host = host.strip("[]") or self.addr
        if not port.isdigit() or not 0 < int(port) <= 65535:
            raise CommandError(
                f"--plain-http: expected PORT or ADDRESS:PORT with a port from 1 to 65535, got {text!r}."
            )
        if int(port) == int(self.port) and host == self.addr:
            raise CommandError("--plain-http needs a port of its own: addrport's serves HTTPS.")
        return host, int(port)

    def is_plain(self, address):
        """Whether ``address`` (an address to bind, or a listening socket passed to this process) is
        ``--plain-http``'s: served without TLS."""
        if self.plain_address is None:
            return False
        if isinstance(address, socket.socket):
            return address.family != socket.AF_UNIX and address.getsockname()[1] == self.plain_address[1]
        return isinstance(address, tuple) and tuple(address) == self.plain_address

    def prepare_project(self):
        """What runserver's ``inner_run`` does before serving: the system checks, the migrations warning."""
        options = self.options
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

    def make_server(self):
        """The checks (not in a worker of ``--workers``: its master made them), then the server."""
        if not self.worker:
            self.prepare_project()
        application, self.mounts = project_application(
            serve_static=self.options["use_static_handler"], insecure=self.options["insecure_serving"]
        )
        if self.worker and self.values["max_requests"]:
            application = self.worker.counting(application, self.values["max_requests"])
        if self.worker and self.values["max_rss"]:
            self.worker.watch_memory(self.values["max_rss"], lambda message: self._say(self.stderr, message))
        if self.worker:
            addresses = list(self.passed_sockets)
        else:
            addresses = [*self.passed_sockets, *(self.reloaded_sockets or self.addresses())]
        return create_server(
            addresses if len(addresses) > 1 else addresses[0],
            application,
            ssl_adapter=self.make_ssl_adapter(),
            plain=self.is_plain,
            forwarded_allow_ips=self.forwarded_allow_ips(),
            access_log=self.make_access_log(),
            server_class=self.server_class,
            **self.server_options,
        )

    def forwarded_allow_ips(self):
        return self.values["forwarded_allow_ips"]

    def make_self_signed(self):
        """A certificate for the hosts served, from the user's local certificate authority (made the first time,
        with a word on how to trust it once; ``devserver.http.tls.self_signed``); the reloader's children and the
        workers find the same one."""
        hosts = ["localhost", "127.0.0.1", "::1"]
        if self.addr not in ("0", "0.0.0.0", "::"):
            hosts.append(self.addr)
        hosts.extend(host for host in settings.ALLOWED_HOSTS if host and host[0] not in ".*" and "*" not in host)
        try:
            made = self_signed(hosts)
        except TLSError as error:
            raise CommandError(str(error)) from None
        if made.new_authority:
            self._say(self.stdout, "\n".join(trust_instructions(made.authority)))
        return made

    def make_ssl_adapter(self):
        if self.tls is not None:
            certificate, private_key = self.tls.certificate, self.tls.private_key
        else:
            certificate, private_key = self.values["certificate"], self.values["private_key"]
        if certificate is None:
            return None
        try:
            return load_adapter(certificate, private_key)
        except TLSError as error:
            raise CommandError(str(error)) from None

    def make_access_log(self):
        if self.options.get("no_access_log"):
            return None
        path = self.values["access_log"]
        if path is None:
            return LoggerAccessLog()
        try:
            return FileAccessLog(path, form=self.values["access_log_format"])
        except OSError as error:
            raise CommandError(f"Cannot open the access log {path}: {error.strerror or error}.") from None

    # Reporter: what the lifecycle tells the user.

    def bind_failed(self, server, error):
        cause = (server.bind_error if server is not None else None) or error
        if isinstance(cause, UnixSocketError):
            raise CommandError(cause.strerror) from None
        if isinstance(cause, socket.gaierror):
            message = f"Cannot resolve that host name: {cause.strerror}."
        else:
            message = BIND_ERRORS.get(cause.errno) or cause.strerror or str(cause)
        raise CommandError(f"{message} ({self.display_addr()}:{self.port})") from None

    def fatal(self, error):
        self._say(self.stderr, f"CommandError: {error}")

    def serving(self, server):
        if self.worker:
            self.bound()  # no pid file in a worker: only the user to switch to
            self.worker.ready()  # the master says where it serves, once all are
            return
        self.bound()
        self.on_bind(server.bind_addr[1], server=server)

    def notice(self, message):
        self._say(self.stderr, message)

    def stopping(self, server):
        if self.worker:
            return
        timeout = f" up to {server.shutdown_timeout:g} s" if server is not None else ""
        self._say(self.stdout, f"Stopping: waiting{timeout} for requests in flight (Ctrl-C again to give up)...")

    def stopped(self, outcome, ended=0):
        if self.pidfile is not None:
            self.pidfile.remove()  # the process may end at once
        if outcome is Outcome.STOPPED and self.worker:
            return
        if outcome is Outcome.STOPPED:
            streams = f" ({ended} open stream{'s' if ended != 1 else ''} ended)" if ended else ""
            self._say(self.stdout, f"Server stopped{streams}.")
        elif outcome is Outcome.GAVE_UP:
            self._say(self.stderr, "Stopped without waiting: requests still running were abandoned.")
        else:
            self._say(self.stderr, "Requests were still running when the shutdown timeout ran out; exiting anyway.")

    def exiting(self):
        if self.pidfile is not None:
            self.pidfile.remove()

    def cut_off(self):
        self._say(self.stderr, f"Reloading: requests still running after {RELOAD_GRACE + GRACE:g} s were cut off.")

    @staticmethod
    def _say(stream, message):
        stream.write(message)
        stream.flush()

    def display_addr(self):
        if self._raw_ipv6:
            return f"[{self.addr}]"
        return "0.0.0.0" if self.addr == "0" else self.addr

    def listening_urls(self, server):
        """Where ``server`` (a ``Server`` or a ``ServerGroup``) listens (``socket_urls``)."""
        servers = getattr(server, "servers", [server])
        given = [
            each.socket
            for each in servers
            if each.listening_socket is None or any(each.listening_socket is sock for sock in self.reloaded_sockets)
        ]
        return self.socket_urls([each.socket for each in servers], given)

    def socket_urls(self, sockets, bound_here):
        """``http://host:port/`` for each TCP socket in ``sockets``, with the address as given for those in
        ``bound_here`` (runserver's way) and as bound for systemd's; ``unix:PATH`` for a unix socket."""
        urls = []
        for sock in sockets:
            address = sock.getsockname()
            if sock.family == socket.AF_UNIX:
                urls.append(f"unix:{os.fsdecode(address)}")
            elif any(sock is each for each in bound_here) and not self.is_plain(sock):
                urls.append(f"{self.protocol}://{self.display_addr()}:{address[1]}/")
            else:  # passed by systemd, or --plain-http's
                host = f"[{address[0]}]" if ":" in address[0] else address[0]
                urls.append(f"{'http' if self.is_plain(sock) else self.protocol}://{host}:{address[1]}/")
        return urls

    def on_bind(self, server_port, server=None):
        pool = server.requests
        capacity = threads_range_of(pool.min, pool.max) + (" each" if hasattr(server, "servers") else "")
        self.announce(self.listening_urls(server), capacity)

    def announce(self, urls, capacity):
        """The banner: where it listens (``urls``), with how many threads (``capacity``), what is mounted."""
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        now = datetime.now().strftime("%B %d, %Y - %X")
        lines = [
            now,
            f"Django version {django.get_version()}, using settings {settings.SETTINGS_MODULE!r}",
            f"Starting {self.server_name} at {' and '.join(urls)} with {capacity}",
        ]
        if settings.DEBUG and any(not _loopback(url) for url in urls if not url.startswith("unix:")):
            lines.append(
                "  Warning: DEBUG is on and other machines can reach this address: a development setting, which "
                "shows tracebacks and settings to anyone who gets an error page."
            )
        for mount in self.mounts:
            where = mount.url if mount.prefix is not None else mount.setting
            lines.append(f"  {where}: {mount.source}")
        if self.tls is not None:
            lines.append(
                f"  TLS: a certificate for {', '.join(self.tls.hosts)} from runcherrypy's local authority; trust "
                f"its authority {self.tls.authority} once (curl --cacert, the browser's or the system's store)"
            )
        elif self.values["certificate"]:
            lines.append(f"  TLS: {self.values['certificate']} (SIGHUP loads it again)")
        lines.append(f"Quit the server with {quit_command}.")
        self._say(self.stdout, "\n".join(lines))


def _loopback(url):
    host = url.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def threads_range_of(least, most):
    """``10 to 100 worker threads``; ``most`` ``None``: the default maximum."""
    if most is None:
        most = max(least, option_table.DEFAULT_MAX_THREADS)
    if most == least:
        return f"{least} worker thread{'s' if least > 1 else ''}"
    return f"{least} to {most} worker threads"
