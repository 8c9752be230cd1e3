"""Around binding, in production: ``--pidfile``, ``--user``/``--group`` (root given up once the sockets are bound),
and the banner's warning about DEBUG on an address other machines can reach."""

import json
import os
import pwd

import pytest

from .http import fetch
from .process import manage


def uid_of(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Uid:"))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_pid_file(start_server, tmp_path, workers):
    path = tmp_path / "server.pid"
    running = start_server("127.0.0.1:0", "--noreload", "--workers", workers, "--pidfile", str(path))
    assert path.read_text() == f"{running.process.pid}\n"  # the master's, with workers
    assert running.stop() == 0
    assert not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_root_is_given_up_once_bound(start_server, workers, tmp_path):
    nobody = pwd.getpwnam("nobody")
    tmp_path.chmod(0o755)  # the database's folder: nobody may look, not write
    running = start_server("127.0.0.1:0", "--noreload", "--workers", workers, "--user", "nobody")
    # One process: it switches. With workers, each worker does; the master keeps root, as gunicorn's does.
    assert uid_of(running.process.pid) == (nobody.pw_uid if workers == "1" else 0)
    for _ in range(4):
        status, _, body = fetch(running, "/test/pid/")
        assert status == 200 and uid_of(json.loads(body)["pid"]) == nobody.pw_uid
    assert running.stop() == 0


def test_user_errors_are_one_line(tmp_path):
    result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", "--noreload", "--user", "no-such-user-here")
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: --user: no such user: no-such-user-here."


def test_debug_on_a_reachable_address_is_warned_about(start_server):
    reachable = start_server("0.0.0.0:0", "--noreload")
    assert "Warning: DEBUG is on and other machines can reach this address" in reachable.output
    local = start_server("127.0.0.1:0", "--noreload")
    assert "Warning" not in local.output


def test_a_pid_file_that_cannot_be_written_is_one_line(tmp_path):
    path = tmp_path / "missing" / "server.pid"
    result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", "--noreload", "--pidfile", str(path))
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"CommandError: Cannot write the pid file {path}: its folder is missing or read-only."
    )


def test_socket_group_errors_are_one_line(tmp_path):
    result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", "--noreload", "--socket-group", "no-such-group-here")
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: --socket-group: no such group: no-such-group-here."
