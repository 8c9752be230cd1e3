"""Where ``runcherrypy`` listens besides a TCP address: a unix socket (``--unix-socket``, ``--socket-mode``), the
sockets systemd passes (socket activation, run under the distribution's ``systemd-socket-activate``), and what it
tells systemd (``NOTIFY_SOCKET``)."""

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from .http import fetch, raw_request
from .process import ROOT, manage, manage_env
from .tools import require
from .waiting import eventually
from .wsgi import serving


def unix_get(path, target="/test/client/", headers=b""):
    """A GET over the unix socket at ``path``: ``(status, body)``."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(
            b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n" % (target.encode(), headers)
        )
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_unix_socket_instead_of_tcp(start_server, tmp_path):
    path = tmp_path / "site.sock"
    running = start_server("--noreload", "--unix-socket", str(path))
    assert running.urls == [f"unix:{path}"] and running.url is None
    assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o660
    status, body = unix_get(path, headers=b"X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\n")
    # Every peer on a unix socket is a trusted proxy.
    assert status == 200 and json.loads(body)["remote_addr"] == "198.51.100.1" and json.loads(body)["is_secure"]
    assert running.stop() == 0
    assert not path.exists()  # removed on exit


def test_a_unix_socket_and_tcp_together(start_server, tmp_path):
    path = tmp_path / "site.sock"
    running = start_server("127.0.0.1:0", "--noreload", "--unix-socket", str(path), "--socket-mode", "600")
    assert running.urls[1] == f"unix:{path}" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "10 to 100 worker threads each" in running.output
    assert unix_get(path)[0] == 200
    assert fetch(running.url, "/test/client/")[0] == 200
    assert running.stop() == 0 and not path.exists()


@pytest.mark.slow
def test_what_lies_at_the_socket_path_is_not_removed(tmp_path, start_server):
    regular = tmp_path / "notes.txt"
    regular.write_text("keep me")
    result = manage(tmp_path, "runcherrypy", "--noreload", "--skip-checks", "--unix-socket", str(regular))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"CommandError: Cannot listen on the unix socket {regular}: the path exists and is not a socket (left as it "
        "is)."
    )
    assert regular.read_text() == "keep me"

    path = tmp_path / "site.sock"
    running = start_server("--noreload", "--unix-socket", str(path))
    result = manage(tmp_path, "runcherrypy", "--noreload", "--skip-checks", "--unix-socket", str(path))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("another server is listening on it.")
    assert unix_get(path)[0] == 200  # the first server still has its socket
    assert running.stop() == 0


def test_a_socket_file_left_by_a_killed_server_is_replaced(tmp_path, start_server):
    path = tmp_path / "site.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # a socket file that nobody listens on
    running = start_server("--noreload", "--unix-socket", str(path))
    assert unix_get(path)[0] == 200
    assert running.stop() == 0


def test_listen_pid_meant_for_another_process_is_ignored(monkeypatch):
    # cheroot takes descriptor 3 as an IPv4 listening socket whenever LISTEN_PID is set.
    monkeypatch.setenv("LISTEN_PID", "1")
    monkeypatch.setenv("LISTEN_FDS", "1")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with serving(app) as server:
        data = raw_request(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"ok")
        assert "LISTEN_PID" not in os.environ  # no child takes it for its own either


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def test_systemd_socket_activation_of_every_family(tmp_path):
    activate = require("systemd-socket-activate", "systemd")
    port4, port6, path = free_port(), free_port(socket.AF_INET6, "::1"), tmp_path / "activated.sock"
    env = manage_env(tmp_path)
    passed = [f"--setenv={name}={env[name]}" for name in ("DJANGO_SETTINGS_MODULE", "DJANGO_DATABASE", "PATH")]
    process = subprocess.Popen(
        [
            activate,
            f"--listen=127.0.0.1:{port4}",
            f"--listen=[::1]:{port6}",
            f"--listen={path}",
            *passed,
            "--setenv=PYTHONUNBUFFERED=1",
            sys.executable,
            str(ROOT / "manage.py"),
            "runcherrypy",
            "--noreload",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        eventually(path.exists, timeout=10, interval=0.05)
        # The first connection starts the server, which takes the passed sockets: all three answer.
        assert fetch(f"http://127.0.0.1:{port4}/", "/test/client/", timeout=30)[0] == 200
        assert fetch(f"http://[::1]:{port6}/", "/test/client/")[0] == 200
        assert unix_get(path)[0] == 200
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert f"http://127.0.0.1:{port4}/ and http://[::1]:{port6}/ and unix:{path}" in output, output


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.slow
def test_systemd_readiness_notification(tmp_path, start_server, workers):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(10)
        running = start_server("127.0.0.1:0", "--noreload", "--workers", workers, NOTIFY_SOCKET=address)
        assert listener.recv(1024) == b"READY=1"  # the master's, once: its workers do not speak to systemd
        running.signal()
        assert listener.recv(1024) == b"STOPPING=1"
        running.process.wait(15)
        assert running.stop() == 0
        listener.settimeout(0.5)
        with pytest.raises(TimeoutError):
            listener.recv(1024)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["127.0.0.1:0"], {"LISTEN_PID": "self", "LISTEN_FDS": "x"}, "LISTEN_FDS is not a count"),
        (["--socket-mode", "999"], {}, "--socket-mode: expected permission bits in octal"),
    ],
)
def test_socket_option_errors_are_one_line(tmp_path, args, env, message):
    if env.get("LISTEN_PID") == "self":  # the pid is not known before the process starts: go through a shell
        command = " ".join(["exec env LISTEN_PID=$$ LISTEN_FDS=x", sys.executable, "manage.py", "runcherrypy"])
        result = subprocess.run(
            ["sh", "-c", f"{command} --noreload --skip-checks {' '.join(args)}"],
            cwd=ROOT,
            env=manage_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    else:
        result = manage(tmp_path, "runcherrypy", "--noreload", "--skip-checks", *args, **env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"CommandError: {message}"), result.stderr


def test_the_systemd_units_of_deploy_are_valid(tmp_path):
    """``deploy/systemd``'s units, with their example paths replaced, pass ``systemd-analyze verify``; how they run
    is what the socket-activation and notification tests above check."""
    analyze = require("systemd-analyze", "systemd")
    for units in [("runcherrypy.socket", "runcherrypy.service"), ("runscgi-inetd.socket", "runscgi-inetd@.service")]:
        for name in units:
            text = (ROOT / "deploy/systemd" / name).read_text()
            text = text.replace("/srv/site/.venv/bin/python", sys.executable).replace("/srv/site", str(ROOT))
            (tmp_path / name).write_text(text)
        result = subprocess.run(
            [analyze, "verify", *(str(tmp_path / name) for name in units)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr
