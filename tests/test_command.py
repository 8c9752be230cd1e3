"""The runcherrypy command line: addrport and options as runserver takes them, and one-line errors."""

import socket

import pytest
from django.core.management import CommandError, call_command

from devserver.management.commands.runcherrypy import Command

from .process import manage


@pytest.fixture
def parsed(monkeypatch):
    """Run the command's parsing only: ``run`` is replaced by a recorder of what it would serve on."""
    seen = {}

    def record(self, **options):
        seen.update(
            addr=self.addr,
            port=self.port,
            ipv6=self.use_ipv6,
            server=self.server_options,
            reload=self.values["use_reloader"],
            options=options,
        )

    monkeypatch.setattr(Command, "run", record)

    def parse(*args):
        seen.clear()
        call_command("runcherrypy", *args)
        return seen

    return parse


@pytest.mark.parametrize(
    "args, addr, port, ipv6",
    [
        ((), "127.0.0.1", "8000", False),
        (("8001",), "127.0.0.1", "8001", False),
        (("0.0.0.0:8002",), "0.0.0.0", "8002", False),
        (("[::1]:8003",), "::1", "8003", True),
        (("-6",), "::1", "8000", True),
        (("--ipv6", "8004"), "::1", "8004", True),
        (("localhost:8005",), "localhost", "8005", False),
        (("--host", "0.0.0.0", "-p", "9000"), "0.0.0.0", "9000", False),
        (("--host", "::", "--port", "9001"), "::", "9001", True),
        (("-p", "9002"), "127.0.0.1", "9002", False),
        (("-6", "-p", "9003"), "::1", "9003", True),
        (("--host", "example.test"), "example.test", "8000", False),
    ],
)
def test_addrport_as_runserver_takes_it(parsed, args, addr, port, ipv6):
    seen = parsed(*args)
    assert (seen["addr"], seen["port"], seen["ipv6"]) == (addr, port, ipv6)


LIMITS = {
    "max_request_line": 8190,
    "max_request_header_size": 65536,
    "max_headers": 100,
    "max_request_body_size": 1024**3,
    "header_timeout": 10,
    "socket_mode": 0o660,
    "keep_alive": 10,
    "max_connections": 0,
    "request_timeout": 0,
    "request_queue_size": socket.SOMAXCONN,
}


def test_the_server_gets_the_options_over_the_settings_over_the_defaults(parsed, settings):
    def server(*args):
        keywords = parsed(*args)["server"]
        assert {name: keywords.pop(name) for name in LIMITS} == LIMITS
        return keywords

    assert server() == {"numthreads": 10, "shutdown_timeout": 5}
    assert server("--threads", "4", "--shutdown-timeout", "0.5") == {"numthreads": 4, "shutdown_timeout": 0.5}
    assert server("--threads", "2", "--max-threads", "2") == {"numthreads": 2, "max": 2, "shutdown_timeout": 5}
    assert server("--nothreading") == {"numthreads": 1, "max": 1, "shutdown_timeout": 5}
    settings.RUNCHERRYPY_THREADS = 3
    settings.RUNCHERRYPY_MAX_THREADS = 30
    settings.RUNCHERRYPY_SHUTDOWN_TIMEOUT = 1.5
    assert server() == {"numthreads": 3, "max": 30, "shutdown_timeout": 1.5}
    assert server("--threads", "5") == {"numthreads": 5, "max": 30, "shutdown_timeout": 1.5}
    settings.RUNCHERRYPY_MAX_BODY_SIZE = 0
    assert parsed("--max-headers", "20")["server"]["max_headers"] == 20
    assert parsed()["server"]["max_request_body_size"] == 0


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("RUNCHERRYPY_THREADS", 0, "RUNCHERRYPY_THREADS: expected a whole number of at least 1, got 0."),
        ("RUNCHERRYPY_THREADS", "4", "RUNCHERRYPY_THREADS: expected a number, not the text '4'."),
        ("RUNCHERRYPY_SHUTDOWN_TIMEOUT", -1, "RUNCHERRYPY_SHUTDOWN_TIMEOUT: expected a number of seconds"),
        ("RUNCHERRYPY_RELOAD", "yes", "RUNCHERRYPY_RELOAD: expected True or False, got 'yes'."),
    ],
)
def test_a_bad_setting_is_the_same_one_line_error(settings, setting, value, message):
    setattr(settings, setting, value)
    with pytest.raises(CommandError) as raised:
        call_command("runcherrypy")
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    "debug, args, setting, expected",
    [
        (True, (), None, True),
        (False, (), None, False),  # production: no restart on a file change unless asked for
        (False, ("--reload",), None, True),
        (True, ("--noreload",), None, False),
        (False, (), True, True),
        (True, (), False, False),
        (True, ("--reload",), False, True),
    ],
)
def test_the_reloader_follows_debug_unless_told(parsed, settings, debug, args, setting, expected):
    settings.DEBUG = debug
    if setting is not None:
        settings.RUNCHERRYPY_RELOAD = setting
    assert parsed(*args)["reload"] is expected


def test_noreload_and_static_options_are_accepted(parsed):
    options = parsed("--noreload", "--nostatic", "--insecure")["options"]
    assert options["use_reloader"] is False
    assert options["use_static_handler"] is False
    assert options["insecure_serving"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (("abc:def",), "is not a valid port number or address:port pair"),
        (("8000", "--host", "0.0.0.0"), "not both"),
        (("8000", "--port", "9000"), "not both"),
        (("-6", "127.0.0.1:8000"), "is not a valid IPv6 address"),
        (("127.0.0.1:99999",), "not a valid port number (0 to 65535)"),
        (("--threads", "0"), "--threads: expected a whole number of at least 1, got '0'"),
        (("--threads", "many"), "--threads: expected a whole number"),
        (("--threads", "20", "--max-threads", "10"), "--max-threads must be at least --threads"),
        (("--max-threads", "0"), "--max-threads: expected a whole number of at least 1"),
        (("--shutdown-timeout=-1",), "--shutdown-timeout: expected a number of seconds"),
        (("--shutdown-timeout", "nan"), "--shutdown-timeout: expected a number of seconds"),
        (("--port", "x"), "--port: expected a port number from 0 to 65535, got 'x'"),
        (("-p", "65536"), "--port: expected a port number from 0 to 65535, got '65536'"),
        (("--host", ""), "--host: expected some text, got ''"),
    ],
)
def test_a_wrong_command_line_is_a_command_error(args, message):
    with pytest.raises(CommandError) as raised:
        call_command("runcherrypy", *args)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def assert_one_line_error(result, expected):
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"CommandError: {expected}"]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = manage(tmp_path, "runcherrypy", f"127.0.0.1:{port}", "--noreload", "--skip-checks")
    assert_one_line_error(result, f"That port is already in use. (127.0.0.1:{port})")


def test_a_host_that_does_not_resolve_is_one_line_and_exit_1_under_the_reloader(tmp_path):
    # With the reloader on, the reloader's parent binds the socket that every child serves: the error comes from it,
    # before any child starts.
    result = manage(tmp_path, "runcherrypy", "no-such-host.invalid:8000", "--skip-checks")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "Watching for file changes" not in result.stdout
    assert line.startswith("CommandError: Cannot resolve that host name")
    assert line.endswith("(no-such-host.invalid:8000)")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--threads=-3",), "--threads: expected a whole number of at least 1, got '-3'."),
        # argparse alone takes "-3" for an option (since -6 is one) and exits with its usage and status 2.
        (("--threads", "-3"), "--threads: expected a whole number of at least 1, got '-3'."),
        (("--shutdown-timeout", "-1"), "--shutdown-timeout: expected a number of seconds, 0 or more, got '-1'."),
        (("-p", "-1"), "--port: expected a port number from 0 to 65535, got '-1'."),
        (("--port", "x"), "--port: expected a port number from 0 to 65535, got 'x'."),
        (("--threads",), "argument --threads: expected one argument."),
        (("--no-such-option",), "unrecognized arguments: --no-such-option."),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_1(tmp_path, args, expected):
    result = manage(tmp_path, "runcherrypy", *args)
    assert_one_line_error(result, expected)
    assert "usage:" not in result.stdout + result.stderr


def test_the_help_says_what_runcherrypy_takes(tmp_path):
    result = manage(tmp_path, "runcherrypy", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "localhost:8000" in text and "[::1]:8000" in text and "port 0 takes a free port" in text
    assert "One thread: requests are answered one at a time" in text
    assert "Optional port number, or ipaddr:port" not in text  # runserver's
    assert "Tells Django to NOT use threading" not in text
    assert "[default: 100, or MIN if more]" in text
    assert "--reload" in text and "--noreload" in text


def test_debug_off_without_allowed_hosts_is_refused(tmp_path):
    result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="", timeout=30)
    assert_one_line_error(result, "You must set settings.ALLOWED_HOSTS if DEBUG is False.")


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_debug_off_with_nothing_in_static_root_is_said_at_start_up(start_server, tmp_path, state):
    static_root = tmp_path / "static-root"
    if state == "empty":
        static_root.mkdir()
    server = start_server(
        "127.0.0.1:0", DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1", DJANGO_STATIC_ROOT=str(static_root)
    )
    words = "is empty" if state == "empty" else "does not exist"
    assert f"STATIC_ROOT: (devserver.W001) STATIC_ROOT {words}: with DEBUG off" in server.output
    assert f"/static/: STATIC_ROOT {static_root}, which {words}: every static file is a 404" in server.output


def test_the_static_root_check_is_quiet_when_it_does_not_apply(settings, tmp_path):
    from devserver.checks import static_root_check

    settings.DEBUG, settings.STATIC_ROOT = False, str(tmp_path)
    assert [warning.id for warning in static_root_check()] == ["devserver.W001"]
    (tmp_path / "base.css").write_text("body {}")
    assert static_root_check() == []  # collected
    (tmp_path / "base.css").unlink()
    settings.DEBUG = True
    assert static_root_check() == []  # served through the finders
    settings.DEBUG, settings.STATIC_URL = False, "https://cdn.example.com/static/"
    assert static_root_check() == []  # served elsewhere


def test_version_names_this_package_django_and_cheroot(tmp_path):
    import importlib.metadata

    import cheroot
    import django

    result = manage(tmp_path, "runcherrypy", "--version")
    assert result.returncode == 0
    version = importlib.metadata.version("django-runcherrypy")
    expected = f"django-runcherrypy {version} (Django {django.get_version()}, cheroot {cheroot.__version__})"
    assert result.stdout.strip() == expected


def test_runscgi_help_lists_only_its_own_options(tmp_path):
    result = manage(tmp_path, "runscgi", "--help")
    assert result.returncode == 0
    for flag in ("--certificate", "--private-key", "--self-signed", "--forwarded-allow-ips", "--access-log"):
        assert flag not in result.stdout
    for flag in ("--inetd", "--unix-socket", "--workers", "--max-body-size", "--header-timeout"):
        assert flag in result.stdout
    assert "SUPPRESS" not in result.stdout


def test_backlog_and_keep_alive_reach_the_server(tmp_path):
    """--backlog is listen()'s (ss shows it as the listening socket's Send-Q); --keep-alive the server's."""
    import shutil
    import subprocess

    from .process import Runcherrypy

    ss = shutil.which("ss")
    running = Runcherrypy(tmp_path, "127.0.0.1:0", "--noreload", "--backlog", "37", "--keep-alive", "3")
    try:
        if ss:
            listening = subprocess.run([ss, "-ltnH", f"sport = :{running.port}"], capture_output=True, text=True)
            assert listening.stdout.split()[2] == "37", listening.stdout
        from .http import raw_request

        answer = raw_request(
            running.port,
            b"GET /test/headers/ HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
            end_of_input=True,
        )
        assert b"Keep-Alive: timeout=3" in answer
    finally:
        assert running.stop() == 0
