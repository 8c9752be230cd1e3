"""Every option of ``runcherrypy``, declared once.

``OPTIONS`` is the one table: each ``Option`` gives its name, command-line flags, ``RUNCHERRYPY_*`` setting,
converter, real default and help. The command's argparse parser (``add_arguments``), the values the server runs
with (``resolve``: the command line over the settings over the defaults, each checked by the same converter) and
the option table in README.md (``markdown_table``, checked by a test) are all made from it, as gunicorn's
``config.py`` and waitress's ``adjustments.py`` do.

    python -m devserver.options             # prints the README's option table
    python -m devserver.options --readme    # writes it into README.md
"""

import argparse
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .converters import (
    boolean,
    cache_control,
    choice,
    file_mode,
    file_test,
    folders,
    port_number,
    seconds,
    text,
    whole_number,
)
from .media import hashed_name
from .proxy import trusted_peers

__all__ = [
    "DEFAULT_MAX_THREADS",
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "Option",
    "OptionError",
    "add_arguments",
    "markdown_table",
    "resolve",
]


DEFAULT_MAX_THREADS = 100
"""The most threads when ``--max-threads`` is not given (or ``--threads``, if that is more)."""


class OptionError(ValueError):
    """A bad option value; the message names where it came from (``--threads: ...`` or ``RUNCHERRYPY_THREADS:
    ...``) and is one line."""


@dataclass(frozen=True)
class Option:
    """One option.

    ``name``: the key of ``resolve``'s result (and argparse's ``dest``). ``flags``: command-line flags, none for a
    setting-only option; ``off_flags``: flags that turn a switch off (``--noreload``). ``setting``: the Django
    setting that gives the default, or ``None``. ``convert``: turns command-line text or a setting's value into
    the value, raising ``ValueError`` with the reason; ``None`` for a switch (``store_true``/``store_false``).
    ``default``: the value when neither is given; ``debug_default``: the value instead when DEBUG is on.
    ``default_text``: how the README and ``--help`` state the default, when the value alone would mislead.
    ``keyword``: the ``devserver.server.Server`` keyword argument it becomes, if any.
    """

    name: str
    help: str
    flags: tuple = ()
    off_flags: tuple = ()
    setting: str | None = None
    convert: Callable | None = None
    default: object = None
    debug_default: object = None
    default_text: str | None = None
    metavar: str | None = None
    keyword: str | None = None

    @property
    def switch(self):
        return self.convert is None

    def default_for(self, debug):
        if self.debug_default is not None and debug:
            return self.debug_default
        return self.default

    def describe_default(self):
        if self.switch:
            return None  # off unless its flag is given
        if self.default_text is not None:
            return self.default_text
        if self.debug_default is not None:
            return f"{self.debug_default} under DEBUG, else {self.default}"
        return None if self.default is None else str(self.default)


OPTIONS = (
    Option(
        "addrport",
        "Address and port to listen on, as runserver takes them: `8000`, `0.0.0.0:8000`, `[::1]:8000`, "
        "`localhost:8000`; port 0 takes a free port, shown in the banner.",
        convert=text,
        default_text="127.0.0.1:8000",
    ),
    Option(
        "use_ipv6", "Listen on ::1 by default; an address must then be IPv6.", flags=("-6", "--ipv6"), default=False
    ),
    Option(
        "host",
        "Address or host name to listen on, instead of addrport.",
        flags=("--host",),
        convert=text,
        metavar="HOST",
        default_text="127.0.0.1",
    ),
    Option(
        "port",
        "Port to listen on, instead of addrport.",
        flags=("-p", "--port"),
        convert=port_number,
        metavar="PORT",
        default_text="8000",
    ),
    Option(
        "unix_socket",
        "Listen on a unix socket at PATH (for a proxy on the same machine), instead of the TCP address, or as well "
        "when addrport or --host/--port is given. A file there that is not a socket is refused; the socket is "
        "removed on exit.",
        flags=("--unix-socket",),
        setting="RUNCHERRYPY_UNIX_SOCKET",
        convert=text,
        metavar="PATH",
    ),
    Option(
        "plain_http",
        "Also listen on ADDRPORT (`80`, `0.0.0.0:80`, `[::]:80`) in plain HTTP, beside the TLS address: a small site "
        "alone on 443 and 80 at once, for SECURE_SSL_REDIRECT and HSTS. Needs --certificate or --self-signed.",
        flags=("--plain-http",),
        setting="RUNCHERRYPY_PLAIN_HTTP",
        convert=text,
        metavar="ADDRPORT",
    ),
    Option(
        "socket_mode",
        "Permissions of the unix socket, in octal, set before it accepts connections.",
        flags=("--socket-mode",),
        setting="RUNCHERRYPY_SOCKET_MODE",
        convert=file_mode,
        default=0o660,
        default_text="0660",
        metavar="MODE",
        keyword="socket_mode",
    ),
    Option(
        "socket_group",
        "Give the unix socket to GROUP (a name or a number), for a front server that runs as a member of it, as "
        "nginx runs as www-data. Without it, the socket is given to --user and its group (or --group) when "
        "those are given.",
        flags=("--socket-group",),
        setting="RUNCHERRYPY_SOCKET_GROUP",
        convert=text,
        metavar="GROUP",
    ),
    Option(
        "certificate",
        "Serve HTTPS (TLS 1.2 or newer) with the certificate in FILE (PEM, followed by its chain); SIGHUP loads it "
        "again, for renewals. Needs --private-key.",
        flags=("--certificate",),
        setting="RUNCHERRYPY_CERTIFICATE",
        convert=text,
        metavar="FILE",
    ),
    Option(
        "private_key",
        "The certificate's private key (PEM).",
        flags=("--private-key",),
        setting="RUNCHERRYPY_PRIVATE_KEY",
        convert=text,
        metavar="FILE",
    ),
    Option(
        "self_signed",
        "Serve HTTPS with a certificate for localhost, the loopback addresses, the address served and "
        "ALLOWED_HOSTS, issued by a local certificate authority kept for this user (made the first time, with a "
        "word on how to trust it once; `$RUNCHERRYPY_CA_DIR` or `~/.local/share/runcherrypy`; needs `trustme`).",
        flags=("--self-signed",),
        default=False,
    ),
    Option(
        "workers",
        "Worker processes, each with its own pool of threads, on the same sockets: one per core uses every core. "
        "SIGHUP replaces them one by one with freshly loaded code; a worker that dies is replaced. Not with the "
        "reloader.",
        flags=("--workers",),
        setting="RUNCHERRYPY_WORKERS",
        convert=whole_number(1),
        default=1,
        metavar="N",
    ),
    Option(
        "max_requests",
        "With --workers: a worker that has served N requests (plus up to 10%, so that they do not all go at "
        "once) is replaced the same way, to bound slow memory growth. 0: never.",
        flags=("--max-requests",),
        setting="RUNCHERRYPY_MAX_REQUESTS",
        convert=whole_number(0),
        default=0,
        metavar="N",
    ),
    Option(
        "max_rss",
        "With --workers: a worker whose resident memory passes MIB mebibytes is replaced the same way, and the log "
        "says how much it held. 0: never.",
        flags=("--max-rss",),
        setting="RUNCHERRYPY_MAX_RSS",
        convert=whole_number(0),
        default=0,
        metavar="MIB",
    ),
    Option(
        "pidfile",
        "Write the process id (the master's with --workers, the reloader's parent's with the reloader: the process "
        "that lasts) to FILE once the sockets are bound; removed on exit.",
        flags=("--pidfile",),
        setting="RUNCHERRYPY_PIDFILE",
        convert=text,
        metavar="FILE",
    ),
    Option(
        "user",
        "Once the sockets are bound, switch to USER (a name or a number; started as root, so that port 443 can "
        "be bound). Its group too, unless --group names another. With --workers, the workers switch; the master "
        "keeps its user, as gunicorn's does.",
        flags=("--user",),
        setting="RUNCHERRYPY_USER",
        convert=text,
        metavar="USER",
    ),
    Option(
        "group",
        "Once the sockets are bound, switch to GROUP (a name or a number).",
        flags=("--group",),
        setting="RUNCHERRYPY_GROUP",
        convert=text,
        metavar="GROUP",
    ),
    Option(
        "threads",
        "Threads kept ready to answer requests (in each process, with --workers).",
        flags=("--threads",),
        setting="RUNCHERRYPY_THREADS",
        convert=whole_number(1),
        default=10,
        metavar="MIN",
        keyword="numthreads",
    ),
    Option(
        "max_threads",
        "The most threads: while every thread is busy and requests wait, the pool grows toward MAX; threads "
        "above MIN idle for 10 s are retired.",
        flags=("--max-threads",),
        setting="RUNCHERRYPY_MAX_THREADS",
        convert=whole_number(1),
        default_text=f"{DEFAULT_MAX_THREADS}, or MIN if more",
        metavar="MAX",
        keyword="max",
    ),
    Option(
        "use_threading",
        "One thread: requests are answered one at a time.",
        off_flags=("--nothreading",),
        default=True,
    ),
    Option(
        "shutdown_timeout",
        "Seconds that requests in flight get to finish on Ctrl-C or SIGTERM.",
        flags=("--shutdown-timeout",),
        setting="RUNCHERRYPY_SHUTDOWN_TIMEOUT",
        convert=seconds,
        default=5,
        metavar="SECONDS",
        keyword="shutdown_timeout",
    ),
    Option(
        "shutdown_delay",
        "On SIGTERM, serve on (accepting too) for SECONDS before the graceful stop begins, while a load balancer "
        "or Kubernetes takes this server out of its pool; a second signal stops at once. Not with Ctrl-C.",
        flags=("--shutdown-delay",),
        setting="RUNCHERRYPY_SHUTDOWN_DELAY",
        convert=seconds,
        default=0,
        metavar="SECONDS",
    ),
    Option(
        "max_request_line",
        "The longest request line, in bytes; a longer one is answered 414.",
        flags=("--max-request-line",),
        setting="RUNCHERRYPY_MAX_REQUEST_LINE",
        convert=whole_number(64),
        default=8190,
        metavar="BYTES",
        keyword="max_request_line",
    ),
    Option(
        "max_header_size",
        "The most bytes of header fields in a request; more is answered 431.",
        flags=("--max-header-size",),
        setting="RUNCHERRYPY_MAX_HEADER_SIZE",
        convert=whole_number(256),
        default=65536,
        metavar="BYTES",
        keyword="max_request_header_size",
    ),
    Option(
        "max_headers",
        "The most header fields in a request; more is answered 431.",
        flags=("--max-headers",),
        setting="RUNCHERRYPY_MAX_HEADERS",
        convert=whole_number(1),
        default=100,
        metavar="COUNT",
        keyword="max_headers",
    ),
    Option(
        "max_body_size",
        "The largest request body, in bytes; a larger one is answered 413, before it is read when its "
        "Content-Length says so. 0: no limit.",
        flags=("--max-body-size",),
        setting="RUNCHERRYPY_MAX_BODY_SIZE",
        convert=whole_number(0),
        default=1024**3,
        default_text="1073741824 (1 GiB)",
        metavar="BYTES",
        keyword="max_request_body_size",
    ),
    Option(
        "header_timeout",
        "Seconds a request head (request line and header fields) may take to arrive, from its first byte or from "
        "the connection; then it is answered 408 and closed. Until it has all arrived it holds no thread. A "
        "whole request that then waits longer than this for a thread (all busy) is answered 503.",
        flags=("--header-timeout",),
        setting="RUNCHERRYPY_HEADER_TIMEOUT",
        convert=seconds,
        default=10,
        metavar="SECONDS",
        keyword="header_timeout",
    ),
    Option(
        "request_timeout",
        "Seconds after which a request still running is logged once, at WARNING, with its method, path, client, "
        "worker and the stack of its thread (it is not cut off: a thread cannot be killed). 0: never. "
        "In production, a value above the slowest legitimate request: 30.",
        flags=("--request-timeout",),
        setting="RUNCHERRYPY_REQUEST_TIMEOUT",
        convert=seconds,
        default=0,
        metavar="SECONDS",
        keyword="request_timeout",
    ),
    Option(
        "keep_alive",
        "Seconds an idle keep-alive connection is kept open for its next request; then it is closed. 0: every "
        "response closes its connection.",
        flags=("--keep-alive",),
        setting="RUNCHERRYPY_KEEP_ALIVE",
        convert=seconds,
        default=10,
        metavar="SECONDS",
        keyword="keep_alive",
    ),
    Option(
        "max_connections",
        "The most connections open at once (each process's, with --workers); one past it is answered 503 with "
        "Retry-After and closed at once. 0: no limit (idle connections cost about 3.4 KB each, and hold no "
        "thread).",
        flags=("--max-connections",),
        setting="RUNCHERRYPY_MAX_CONNECTIONS",
        convert=whole_number(0),
        default=0,
        metavar="COUNT",
        keyword="max_connections",
    ),
    Option(
        "backlog",
        "Connections the kernel queues, accepted by no one yet, before it refuses more (listen()'s backlog; the "
        "system caps it at net.core.somaxconn).",
        flags=("--backlog",),
        setting="RUNCHERRYPY_BACKLOG",
        convert=whole_number(1),
        default=socket.SOMAXCONN,
        metavar="COUNT",
        keyword="request_queue_size",
    ),
    Option(
        "forwarded_allow_ips",
        "Peers trusted as proxies, separated by commas: addresses, networks (`10.0.0.0/8`) or `*`. From them "
        "(and from every peer on a unix socket) `X-Forwarded-For`/`-Proto`/`-Host`/`-Port`, or else `Forwarded`, "
        "set the client's address, the scheme (`request.is_secure()`) and the host; from anyone else they are "
        "removed.",
        flags=("--forwarded-allow-ips",),
        setting="RUNCHERRYPY_FORWARDED_ALLOW_IPS",
        convert=trusted_peers,
        default=trusted_peers("127.0.0.1,::1"),
        default_text="127.0.0.1,::1",
        metavar="ADDRESSES",
    ),
    Option(
        "access_log",
        "Write the access log to FILE (`-`: standard output) in the form of --access-log-format (the common log "
        "format, with the duration, by default); SIGUSR1 reopens it, for log rotation. Without it, each response "
        "goes to the `django.server` logger.",
        flags=("--access-log",),
        setting="RUNCHERRYPY_ACCESS_LOG",
        convert=text,
        default_text="the django.server logger",
        metavar="FILE",
    ),
    Option(
        "access_log_format",
        "The form of --access-log's lines: `common` (the common log format, then the duration in seconds), "
        "`combined` (then the referer and the user agent, quoted, as nginx's and Apache's combined), or `json` (one "
        "object a line: time, client, method, path, query, protocol, status, bytes, duration_ms, referer, "
        "user_agent, worker; escaped by the JSON encoder, so no client can forge a field).",
        flags=("--access-log-format",),
        setting="RUNCHERRYPY_ACCESS_LOG_FORMAT",
        convert=choice("common", "combined", "json"),
        default="common",
        metavar="FORMAT",
    ),
    Option("no_access_log", "No access log at all.", flags=("--no-access-log",), default=False),
    Option(
        "use_reloader",
        "Restart when the project's Python code changes (`--reload`) or not (`--noreload`); each restart says "
        "which file changed.",
        flags=("--reload",),
        off_flags=("--noreload",),
        setting="RUNCHERRYPY_RELOAD",
        convert=boolean,
        default=False,
        debug_default=True,
        default_text="on under DEBUG, else off",
    ),
    Option("use_static_handler", "Do not serve static files at STATIC_URL.", off_flags=("--nostatic",), default=True),
    Option(
        "insecure_serving",
        "Serve static files through the staticfiles finders even when DEBUG is off.",
        flags=("--insecure",),
        default=False,
    ),
    Option(
        "static_max_age",
        "Seconds a browser may reuse a static file without asking; 0 sends `Cache-Control: no-cache` "
        "(revalidate each time).",
        setting="RUNCHERRYPY_STATIC_MAX_AGE",
        convert=whole_number(0),
        default=60,
        debug_default=0,
        default_text="0 under DEBUG, else 60",
    ),
    Option(
        "immutable_file_test",
        "Static files that never change, which get `max-age=31536000, immutable`: a callable taking the path "
        "below STATIC_URL, or a regular expression searched in it.",
        setting="RUNCHERRYPY_IMMUTABLE_FILE_TEST",
        convert=file_test,
        default=hashed_name,
        default_text="names with ManifestStaticFilesStorage's hash (`base.27e20196a850.css`)",
    ),
    Option(
        "link_roots",
        "Folders that symlinks in MEDIA_ROOT and STATIC_ROOT may lead into, besides the root itself, the installed "
        "apps' folders and STATICFILES_DIRS; a file that a link leads anywhere else is a 404.",
        setting="RUNCHERRYPY_LINK_ROOTS",
        convert=folders,
        default=(),
        default_text="none",
    ),
    Option(
        "media_cache_control",
        "Cache-Control of media files (uploads may be replaced under the same name); `None` for none.",
        setting="RUNCHERRYPY_MEDIA_CACHE_CONTROL",
        convert=cache_control,
        default="no-cache",
    ),
)

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def add_arguments(parser, hidden=()):
    """Add every option that has flags to an argparse ``parser``; those named in ``hidden`` are left out of its
    ``--help`` (a command that refuses them with a sentence of its own: ``runscgi`` and TLS). Values stay text
    (``None`` when not given): ``resolve`` converts them, so that a bad value is one ``OptionError`` whatever its
    source."""
    for option in OPTIONS:
        help_text = option.help.replace("`", "").replace("%", "%%")
        default = option.describe_default()
        if option.name == "addrport":
            help_text = f"{help_text} [default: {default}]"
        elif option.off_flags and not option.switch or option.flags and not option.switch and default is not None:
            help_text += f" [default: {default}]"
        if option.name in hidden:
            help_text = argparse.SUPPRESS
        if option.name == "addrport":
            parser.add_argument("addrport", nargs="?", help=help_text)
        elif option.switch:
            action = "store_false" if option.off_flags else "store_true"
            flags = option.off_flags or option.flags
            parser.add_argument(*flags, action=action, dest=option.name, default=option.default, help=help_text)
        elif option.off_flags:  # on, off, or (None) as the setting or DEBUG says
            parser.add_argument(*option.flags, action="store_const", const=True, dest=option.name, help=help_text)
            off_help = argparse.SUPPRESS if option.name in hidden else f"The opposite of {option.flags[0]}."
            parser.add_argument(*option.off_flags, action="store_const", const=False, dest=option.name, help=off_help)
        elif option.flags:
            parser.add_argument(*option.flags, dest=option.name, metavar=option.metavar, help=help_text)
    return parser


def resolve(names, given, settings):
    """Return ``{name: value}`` for the options named: the command-line value in ``given`` when it is not
    ``None``, else the option's setting when ``settings`` has it, else its default (by ``settings.DEBUG``).

    Command-line text and settings' values go through the same converter; a switch's ``True``/``False`` from
    argparse is taken as it is. ``OptionError`` names the flag or the setting of a bad value.
    """
    values = {}
    for name in names:
        option = OPTIONS_BY_NAME[name]
        value, source = given.get(name), max(option.flags, key=len) if option.flags else None
        if isinstance(value, bool):
            values[name] = value
            continue
        if value is None and option.setting is not None and hasattr(settings, option.setting):
            value, source = getattr(settings, option.setting), option.setting
            if isinstance(value, str) and getattr(option.convert, "numeric", False):
                raise OptionError(f"{source}: expected a number, not the text {value!r}.")
        elif value is None:
            values[name] = option.default_for(getattr(settings, "DEBUG", False))
            continue
        try:
            values[name] = option.convert(value) if option.convert is not None else value
        except ValueError as error:
            raise OptionError(f"{source}: {error}.") from None
    return values


def check_combinations(values, given, *, platform=sys.platform):
    """Raise ``OptionError`` (one line) for options that do not go together: ``values`` as ``resolve`` gives them,
    ``given`` the command line's own (argparse's dests, before settings and defaults: ``addrport``, ``host``,
    ``port``, ``self_signed``, ``access_log``, ``no_access_log``)."""
    if given.get("no_access_log") and given.get("access_log") is not None:
        raise OptionError("Give either --access-log or --no-access-log, not both.")
    if (given.get("host") is not None or given.get("port") is not None) and given.get("addrport"):
        raise OptionError("Give either addrport or --host/--port, not both.")
    certificate, private_key = values.get("certificate"), values.get("private_key")
    if given.get("self_signed") and (certificate or private_key):
        raise OptionError("Give either --self-signed or --certificate and --private-key, not both.")
    if bool(certificate) != bool(private_key):
        raise OptionError("--certificate and --private-key go together.")
    if values.get("plain_http") and not (certificate or given.get("self_signed")):
        raise OptionError("--plain-http is beside HTTPS: give --certificate and --private-key, or --self-signed.")
    if values.get("workers", 1) > 1 and platform == "win32":
        raise OptionError("--workers passes the listening sockets to its workers, which Windows cannot do.")
    if values.get("workers", 1) > 1 and values.get("use_reloader"):
        raise OptionError("--workers runs without the reloader (SIGHUP reloads the workers): add --noreload.")
    threads, most = values.get("threads"), values.get("max_threads")
    if given.get("use_threading", True) and threads is not None and most is not None and most < threads:
        raise OptionError("--max-threads must be at least --threads.")


def markdown_table():
    """The README's option table: flag or setting, default, meaning."""
    rows = ["| option | setting | default | what it does |", "| --- | --- | --- | --- |"]
    for option in OPTIONS:
        if option.name == "addrport":
            flags = "`addrport`"
        else:
            shown = [*option.flags, *option.off_flags]
            if option.metavar:
                shown = [f"{flag} {option.metavar}" if flag in option.flags else flag for flag in shown]
            flags = ", ".join(f"`{flag}`" for flag in shown) or "—"
        setting = f"`{option.setting}`" if option.setting else "—"
        default = option.describe_default() or "—"
        rows.append(f"| {flags} | {setting} | {default} | {option.help} |")
    return "\n".join(rows)


README_START = "<!-- options: made by `python -m devserver.options`; do not edit -->"
README_END = "<!-- /options -->"


def replace_readme_table(text):
    """``text`` (a README) with the table between ``README_START`` and ``README_END`` made anew."""
    before, _, rest = text.partition(README_START)
    _, _, after = rest.partition(README_END)
    return f"{before}{README_START}\n{markdown_table()}\n{README_END}{after}"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--readme"]:  # rewrite README.md's table in place
        with open("README.md", encoding="utf-8") as file:
            text = file.read()
        with open("README.md", "w", encoding="utf-8") as file:
            file.write(replace_readme_table(text))
    else:
        print(markdown_table())
