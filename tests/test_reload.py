"""runcherrypy under the autoreloader, on a copy of the sample project: code changes, syntax errors, stopping."""

import json
import os
import re
import shutil
import signal
import socket
import threading
import time

import pytest

from .http import fetch
from .process import ROOT, SAMPLE, Runcherrypy


def free_port():
    # The reloader starts a new process, and a new bind, on every change: it needs a fixed port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port, path, timeout=10):
    status, _, body = fetch(port, path, timeout=timeout)
    return status, body


def wait_for_body(port, path, wanted, timeout):
    """Poll until a 200 body contains ``wanted``; return the seconds it took, or ``None``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            status, body = get(port, path, timeout=2)
            if status == 200 and wanted in body:
                return time.monotonic() - started
        except OSError:
            pass  # restarting: nothing listens for a moment
        time.sleep(0.05)
    return None


@pytest.fixture
def project(tmp_path):
    """A copy of the sample project to edit; devserver still comes from this checkout."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "manage.py", copy)
    shutil.copytree(ROOT / "cherrytest", copy / "cherrytest", ignore=shutil.ignore_patterns("__pycache__", "media"))
    return copy


@pytest.fixture
def reloading(project, tmp_path):
    started = []

    def start(*args, **env):
        server = Runcherrypy(
            tmp_path, f"127.0.0.1:{free_port()}", *args, cwd=project, PYTHONPATH=str(ROOT), **{**SAMPLE, **env}
        )
        started.append(server)
        assert server.wait_for("Watching for file changes with")
        # StatReloader's first pass records the files' mtimes: an edit made before it is the baseline, not a
        # change. It runs as the server starts; give it a moment.
        time.sleep(1.0)
        return server

    yield start
    for server in started:
        server.stop()


def edit(path, old, new):
    """Replace ``old`` by ``new`` in the file at once, as editors that save atomically do: written in place, the
    reloader could see the truncated file and the written one as two changes."""
    text = path.read_text()
    assert old in text
    replace(path, text.replace(old, new))


def replace(path, text):
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def test_a_saved_change_is_served_by_new_code(project, reloading):
    server = reloading()
    status, body = get(server.port, "/sleep/?seconds=0")
    assert status == 200 and "edited" not in json.loads(body)

    edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
    # StatReloader looks once a second, and a new process starts: about 1-2 s.
    seconds = wait_for_body(server.port, "/sleep/?seconds=0", b'"edited": true', timeout=10)
    assert seconds is not None, server.output
    assert server.wait_for("views.py changed, reloading.")
    assert server.output.count("changed, reloading.") == 1
    assert server.output.count("Starting cheroot server at") == 2
    assert server.process.poll() is None


def test_with_debug_off_reload_is_asked_for_and_says_which_file_changed(project, reloading):
    # Django's own lines go through logging, which its default LOGGING shows only under DEBUG.
    server = reloading("--reload", DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
    assert wait_for_body(server.port, "/sleep/?seconds=0", b'"edited": true', timeout=10) is not None, server.output
    changed = server.wait_for(re.compile(r"(\S+) changed, reloading\."))
    assert changed is not None and changed[1].endswith("cherrytest/app/views.py"), server.output
    assert server.output.count("changed, reloading.") == 1


def test_a_syntax_error_is_shown_and_fixing_it_brings_the_server_back(project, reloading):
    server = reloading()
    views = project / "cherrytest/app/views.py"
    good = views.read_text()
    lines_before = len(server.lines)
    replace(views, good + "\ndef broken(:\n")
    assert server.wait_for("SyntaxError", after=lines_before), server.output
    with pytest.raises(ConnectionRefusedError):
        get(server.port, "/")
    assert server.process.poll() is None  # the reloader waits for a fix

    lines_before = len(server.lines)
    # The broken file joins the watch list when the error happens (during the checks, after the watcher's first
    # pass); the next pass records its mtime and only the one after can see a change: up to 2 s.
    time.sleep(2.5)
    replace(views, good)
    server.wait_for_banner(timeout=15, after=lines_before)
    assert get(server.port, "/sleep/?seconds=0")[0] == 200


@pytest.mark.parametrize("how", ["SIGTERM to the server", "Ctrl-C to the process group"])
def test_stopping_under_the_reloader_lets_the_request_in_flight_finish(reloading, how):
    server = reloading()
    result = {}
    client = threading.Thread(target=lambda: result.update(response=get(server.port, "/sleep/?seconds=1.5")))
    client.start()
    time.sleep(0.5)
    if how.startswith("SIGTERM"):
        server.signal(signal.SIGTERM)
    else:
        server.signal_group(signal.SIGINT)
    client.join(10)
    status, body = result["response"]
    assert status == 200 and json.loads(body)["slept"] >= 1.5
    assert server.process.wait(10) == 0, server.output
    assert "Server stopped." in server.output
    with pytest.raises(ConnectionRefusedError):  # the child is gone too
        get(server.port, "/")


def test_a_stalled_download_does_not_hold_up_a_reload(project, reloading, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    with open(media / "huge.bin", "wb") as file:
        file.truncate(256 * 1024 * 1024)  # sparse; far more than the socket buffers hold
    server = reloading(DJANGO_MEDIA_ROOT=str(media))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as download:
        download.sendall(b"GET /media/huge.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = len(download.recv(1024 * 1024))  # then it stops reading
        edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
        seconds = wait_for_body(server.port, "/sleep/?seconds=0", b'"edited": true', timeout=15)
        # Waiting out the download would take the 5 s shutdown timeout and 2 s more.
        assert seconds is not None and seconds < 5, (seconds, server.output)
        # The old process cut the download off: what was in flight arrives, then the end.
        try:
            while chunk := download.recv(1024 * 1024):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < 256 * 1024 * 1024
    assert "were cut off" in server.output
