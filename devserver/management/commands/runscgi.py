"""``manage.py runscgi [addrport | --unix-socket PATH] [--inetd]``: the project over SCGI, for a front server's
``scgi_pass`` (nginx) or ``mod_proxy_scgi`` (Apache).

Long-running, it is ``runcherrypy`` speaking SCGI instead of HTTP (``devserver.server.SCGIServer``): the same
addresses, unix socket, systemd sockets, growing pool, ``--workers``, graceful stop, pid file and user switch.
With ``--inetd`` it answers the one connection a super-server passes on standard input and exits
(``devserver.scgi.serve_inetd``). The front server speaks HTTP and TLS and keeps the access log: the options for
those are refused here, and ``--help`` does not list them.
"""

import logging

from django.conf import settings
from django.core.management.base import CommandError

from devserver import options as option_table
from devserver.server import SCGIServer

from .runcherrypy import Command as RuncherrypyCommand

# runcherrypy's options that are about HTTP, TLS or the access log: the front server's business under SCGI.
HTTP_ONLY = (
    "certificate",
    "private_key",
    "self_signed",
    "plain_http",
    "forwarded_allow_ips",
    "access_log",
    "access_log_format",
    "max_request_line",
    "max_headers",
    "keep_alive",
    "max_connections",
    "request_timeout",
)
WRITE_TIMEOUT = 10.0
"""Seconds each write of ``--inetd``'s response may take: cheroot's ``timeout``, which the long-running server
keeps. Each read of the request may take ``--header-timeout``."""


class Command(RuncherrypyCommand):
    help = (
        "Serves the project over SCGI to a front server (nginx scgi_pass, Apache mod_proxy_scgi), with MEDIA_URL and "
        "STATIC_URL; --inetd answers one connection passed on standard input by a super-server."
    )
    protocol = "scgi"
    server_name = "cheroot SCGI server"
    server_class = SCGIServer
    hidden_options = (*HTTP_ONLY, "no_access_log")  # refused below, and not listed by --help

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--inetd",
            action="store_true",
            help="Answer the one connection on standard input (a socket from inetd, xinetd, systemd's Accept=yes "
            "or systemd-socket-activate --inetd; or a pipe, answered on standard output), then exit. No checks, "
            "no banner: nothing but the response is written to the connection.",
        )

    def handle(self, *args, **options):
        for name in HTTP_ONLY:
            if options.get(name) not in (None, False):
                flag = option_table.OPTIONS_BY_NAME[name].flags[0]
                raise CommandError(
                    f"{flag} is for HTTP: under SCGI the front server speaks HTTP and TLS and keeps the access log."
                )
        try:
            import sioscgi  # noqa: F401
        except ImportError:
            raise CommandError("runscgi needs sioscgi: pip install 'django-runcherrypy[scgi]'.") from None
        if options["inetd"]:
            self.serve_inetd(options)
            return
        super().handle(*args, **options)

    def serve_inetd(self, options):
        """One request from standard input; the limits are the ones given (options or settings)."""
        from devserver.gateway import application
        from devserver.scgi import SCGIError, serve_inetd

        try:
            values = option_table.resolve(("max_header_size", "max_body_size", "header_timeout"), options, settings)
        except option_table.OptionError as error:
            raise CommandError(str(error)) from None
        if not logging.root.handlers:
            logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
        try:
            serve_inetd(
                application,
                read_timeout=values["header_timeout"],
                write_timeout=WRITE_TIMEOUT,
                max_header_size=values["max_header_size"],
                max_body_size=values["max_body_size"],
            )
        except SCGIError as error:
            raise CommandError(f"{error}.") from None

    def make_ssl_adapter(self):
        return None

    def make_access_log(self):
        return None

    def forwarded_allow_ips(self):
        return None  # REMOTE_ADDR and HTTPS come from the front server's variables
