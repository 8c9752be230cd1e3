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
        seen.update(addr=self.addr, port=self.port, ipv6=self.use_ipv6, server=self.server_options, options=options)

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


def test_only_the_options_given_reach_the_server(parsed):
    assert parsed()["server"] == {}
    assert parsed("--threads", "4", "--shutdown-timeout", "0.5")["server"] == {"numthreads": 4, "shutdown_timeout": 0.5}
    assert parsed("--threads", "2", "--max-threads", "2")["server"] == {"numthreads": 2, "max": 2}
    assert parsed("--nothreading")["server"] == {"numthreads": 1, "max": 1}


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
    # With the reloader on, the error comes from the child process, after its "Watching for file changes" line
    # (as with runserver), and the parent exits with the child's status.
    result = manage(tmp_path, "runcherrypy", "no-such-host.invalid:8000", "--skip-checks")
    assert result.returncode == 1
    *before, line = result.stderr.strip().splitlines()
    assert len(before) == 1 and before[0].startswith("Watching for file changes with")
    assert line.startswith("CommandError: Cannot resolve that host name")
    assert line.endswith("(no-such-host.invalid:8000)")
    assert "Traceback" not in result.stdout + result.stderr


def test_a_bad_option_value_is_one_line_and_exit_1(tmp_path):
    result = manage(tmp_path, "runcherrypy", "--threads=-3")
    assert_one_line_error(result, "--threads: expected a whole number of at least 1, got '-3'.")


def test_debug_off_without_allowed_hosts_is_refused(tmp_path):
    result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="", timeout=30)
    assert_one_line_error(result, "You must set settings.ALLOWED_HOSTS if DEBUG is False.")
