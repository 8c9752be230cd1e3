"""runcherrypy under the autoreloader, on a copy of the sample project: code changes, syntax errors, stopping."""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from .http import Stream, fetch
from .process import ROOT, SAMPLE, Runcherrypy
from .waiting import eventually

pytestmark = pytest.mark.slow  # each test runs the sample under the reloader in a subprocess


def get(port, path, timeout=10):
    status, _, body = fetch(port, path, timeout=timeout)
    return status, body


def wait_for_body(port, path, wanted, timeout):
    """Poll until a 200 body contains ``wanted``; return the seconds it took, or ``None``."""
    started = time.monotonic()

    def served():
        try:
            status, body = get(port, path, timeout=2)
        except OSError:
            return False  # restarting: nothing listens for a moment
        return status == 200 and wanted in body

    try:
        eventually(served, timeout, interval=0.05)
    except AssertionError:
        return None
    return time.monotonic() - started


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
    assert server.process.poll() is None  # the reloader waits for a fix
    # The listening socket outlives the broken child: a request made now waits for the fixed code.
    waiting = {}
    client = threading.Thread(target=lambda: waiting.update(response=get(server.port, "/sleep/?seconds=0", 30)))
    client.start()

    lines_before = len(server.lines)
    # The broken file joins the watch list when the error happens (during the checks, after the watcher's first
    # pass); StatReloader's next pass records its mtime and only the one after can see a change: up to 2 s.
    time.sleep(2.5)
    assert client.is_alive()  # no answer, and no refusal, while the project cannot load
    replace(views, good)
    server.wait_for_banner(timeout=15, after=lines_before)
    client.join(15)
    assert waiting["response"][0] == 200
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


# Streams and long polls (devserver.streams): a stop or a reload ends them at once and cleanly. --shutdown-timeout 30
# makes any wait for them plain: the process would take 30 s to exit.


def open_streams(server, count, path="/events/?interval=0.1", headers=b""):
    streams = [Stream(server.port, path, headers=headers) for _ in range(count)]
    for stream in streams:
        eventually(lambda stream=stream: b"data: " in stream.data, timeout=10)
    return streams


@pytest.mark.parametrize("count", [0, 1, 50])
@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_a_stop_ends_the_open_streams_at_once_and_exits_0(reloading, how, count):
    server = reloading("--shutdown-timeout", "30")
    streams = open_streams(server, count)
    if how == "Ctrl-C":
        server.signal_group(signal.SIGINT)
    else:
        server.signal(signal.SIGTERM)
    assert server.process.wait(10) == 0, server.output
    for stream in streams:
        assert stream.ended.wait(5) and stream.ended_cleanly, stream.data[-100:]
        stream.close()
    ended = f" ({count} open stream{'s' if count > 1 else ''} ended)" if count else ""
    assert server.wait_for(f"Server stopped{ended}."), server.output
    assert "Traceback" not in server.output


def answered_retry(poll):
    """A long poll ended before it said anything: a 503 that asks its client to retry."""
    head = poll.head
    return poll.ended.wait(5) and head.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 1" in head


def test_long_polls_in_flight_are_answered_at_ctrl_c(reloading):
    server = reloading("--shutdown-timeout", "30")
    polls = [Stream(server.port, "/poll/?seconds=60") for _ in range(3)]
    [events] = open_streams(server, 1)  # by the time it has an event, the polls have reached their view
    server.signal_group(signal.SIGINT)
    assert server.process.wait(10) == 0, server.output
    events.close()
    for poll in polls:
        assert answered_retry(poll), poll.data
        poll.close()
    assert server.wait_for("Server stopped (4 open streams ended)."), server.output


def test_a_reload_ends_streams_cleanly_and_their_clients_reconnect_to_new_code(project, reloading):
    server = reloading("--shutdown-timeout", "30")
    [stream] = open_streams(server, 1)
    poll = Stream(server.port, "/poll/?seconds=60")
    old_pid = json.loads(stream.body.split(b"data: ", 1)[1].split(b"\n", 1)[0])["pid"]
    edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
    assert wait_for_body(server.port, "/sleep/?seconds=0", b'"edited": true', timeout=10) is not None, server.output
    assert stream.ended.wait(5) and stream.ended_cleanly
    assert answered_retry(poll)
    [again] = open_streams(server, 1)
    assert json.loads(again.body.split(b"data: ", 1)[1].split(b"\n", 1)[0])["pid"] != old_pid
    for each in (stream, poll, again):
        each.close()
    assert "were cut off" not in server.output and "Traceback" not in server.output


def test_no_request_fails_through_20_reloads(project, reloading):
    # The reloader's parent holds the listening socket: a connection made while one child stops and the next
    # starts waits in its backlog for the new code, instead of being refused or reset.
    server = reloading()
    views = project / "cherrytest/app/views.py"
    original = views.read_text()
    failures, answered = [], []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                status, _, _ = fetch(server.port, "/sleep/?seconds=0", timeout=10)
                (answered if status == 200 else failures).append(status)
            except OSError as error:
                failures.append(repr(error))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for number in range(20):
            # Saved as soon as the new code answers: a save made while the next child starts is not lost either.
            marker = f'{{"reload": {number}, "slept":'
            replace(views, original.replace('{"slept":', marker))
            assert wait_for_body(server.port, "/sleep/?seconds=0", marker.encode(), timeout=10) is not None
    finally:
        stop.set()
        thread.join(15)
    assert failures == [] and len(answered) > 20, (failures, server.output[-2000:])
    assert server.output.count("Starting cheroot server at") == 21


def reconnected_stream(server, path, headers, timeout=20):
    """A stream opened as ``EventSource`` opens it: again, while the one opened ends before any event (it reached
    the old process as it stopped: its streams end at once, cleanly)."""
    opened = []

    def an_event():
        stream = Stream(server.port, path, headers=headers)
        opened.append(stream)
        eventually(lambda: b"data: " in stream.data or stream.ended.is_set(), timeout=10)
        if b"data: " in stream.data:
            return stream
        stream.close()
        return None

    try:
        return eventually(an_event, timeout=timeout, interval=0.05, context=lambda: server.output[-2000:])
    finally:
        for stream in opened[:-1]:
            stream.close()


def test_django_browser_reloads_stream_ends_at_a_reload_and_at_ctrl_c(project, reloading):
    server = reloading("--shutdown-timeout", "30")
    accept = b"Accept: text/event-stream\r\n"
    [events] = open_streams(server, 1, "/__reload__/events/", accept)
    again = None
    try:
        edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
        assert events.ended.wait(10) and events.ended_cleanly, server.output
        # The page's script reconnects, and the new process's version tells it to reload the page.
        again = reconnected_stream(server, "/__reload__/events/", accept)
        version = re.compile(rb'"versionId": "(\w+)"')
        assert version.search(again.data)[1] != version.search(events.data)[1]
        server.signal_group(signal.SIGINT)
        assert server.process.wait(10) == 0, server.output
        assert again.ended.wait(5) and again.ended_cleanly
    finally:
        events.close()
        if again is not None:
            again.close()


def test_a_tls_client_leaving_a_stream_leaves_no_traceback(reloading):
    server = reloading("--self-signed")
    authority = server.wait_for(re.compile(r"trust its authority (\S+)"))
    context = ssl.create_default_context(cafile=authority[1])
    stream = Stream(server.port, "/events/?interval=0.1", tls=context)
    eventually(lambda: stream.data.count(b"data: ") >= 2)
    stream.socket.close()  # as a browser leaving the page does
    # Served on, and the access log shows the stream, ended when its client left.
    assert fetch(server.port, "/sleep/?seconds=0", tls=context)[0] == 200
    assert server.wait_for('"GET /events/?interval=0.1 HTTP/1.1" 200'), server.output
    assert server.stop() == 0
    assert "Traceback" not in server.output and "SSLEOFError" not in server.output, server.output


@pytest.mark.parametrize("watchfiles", [True, False])
def test_the_banner_names_the_watcher_in_use(reloading, tmp_path, watchfiles):
    # django-watchfiles is installed with the tests' requirements; a module that fails to import stands in for its
    # absence.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "django_watchfiles.py").write_text("raise ImportError('not installed, for this test')\n")
    server = reloading(pythonpath=[] if watchfiles else [blocker])
    expected = "WatchfilesReloader" if watchfiles else "StatReloader"
    assert f"Watching for file changes with {expected}" in server.output


def test_a_change_saved_while_the_new_code_starts_is_not_lost(project, reloading):
    # The second save lands once the next child has loaded the project (its banner) and before its watcher watches
    # (setting watchfiles' watches up takes a quarter of a second): the child looks back once its watcher is set up,
    # and reloads for it.
    server = reloading()
    views = project / "cherrytest/app/views.py"
    original = views.read_text()
    banners = len(server.lines)
    replace(views, original.replace('{"slept":', '{"save": 1, "slept":'))
    server.wait_for_banner(timeout=10, after=banners)
    replace(views, original.replace('{"slept":', '{"save": 2, "slept":'))
    assert wait_for_body(server.port, "/sleep/?seconds=0", b'"save": 2', timeout=10) is not None, server.output


def test_started_from_another_folder_it_serves_and_reloads(project, tmp_path):
    # The reloader's children start as standbys (python -c ...): sys.path must be what "python /path/manage.py"
    # gives, not the working folder.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = Runcherrypy(
        tmp_path, "127.0.0.1:0", cwd=elsewhere, script=project / "manage.py", PYTHONPATH=str(ROOT), **SAMPLE
    )
    try:
        assert get(server.port, "/sleep/?seconds=0")[0] == 200
        server.wait_for("Watching for file changes with")
        edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
        assert wait_for_body(server.port, "/sleep/?seconds=0", b'"edited": true', timeout=10) is not None
    finally:
        assert server.stop() == 0, server.output
    assert "Traceback" not in server.output


def test_where_children_cannot_inherit_sockets_each_binds_its_own(project, tmp_path):
    # On Windows (devserver.reloader.INHERITS false) the reloader works as Django's does: each child binds the port
    # and starts when needed. A script that sets INHERITS false before manage.py runs stands in for Windows here.
    (project / "plain.py").write_text(
        "import runpy\nimport devserver.reloader\n\ndevserver.reloader.INHERITS = False\n"
        'runpy.run_path("manage.py", run_name="__main__")\n'
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # each child binds anew: a fixed port
    server = Runcherrypy(tmp_path, f"127.0.0.1:{port}", cwd=project, script="plain.py", PYTHONPATH=str(ROOT), **SAMPLE)
    try:
        assert (
            "standby"
            not in subprocess.run(
                ["ps", "-o", "args=", "--ppid", str(server.process.pid)], capture_output=True, text=True
            ).stdout
        )
        views = project / "cherrytest/app/views.py"
        original = views.read_text()

        def served():
            # Saved again until seen: without a standby, nothing looks back for a save made before the watcher ran.
            replace(views, original.replace('{"slept":', '{"edited": True, "slept":'))
            return wait_for_body(port, "/sleep/?seconds=0", b'"edited": true', timeout=2) is not None

        eventually(served, timeout=20, interval=0)
    finally:
        assert server.stop() == 0, server.output
    assert "Traceback" not in server.output


@pytest.mark.parametrize("delay", [0, 0.03, 0.1])
def test_ctrl_c_just_after_a_reload_stops_quietly(project, reloading, delay):
    # While the next child takes over (a standby until then), a Ctrl-C is recorded, then obeyed: no
    # KeyboardInterrupt traceback, exit status 0.
    server = reloading()
    lines = len(server.lines)
    edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
    assert server.wait_for("changed, reloading.", timeout=10, after=lines)
    time.sleep(delay)  # a moment in the handover
    server.signal_group(signal.SIGINT)
    assert server.process.wait(10) == 0, server.output
    assert "Traceback" not in server.output and "KeyboardInterrupt" not in server.output, server.output


def test_a_file_dated_in_the_future_does_not_reload_for_ever(project, reloading):
    future = time.time() + 3600
    os.utime(project / "cherrytest/app/tiles.py", (future, future))  # a clock ahead, a file from an archive
    server = reloading()
    edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
    assert wait_for_body(server.port, "/sleep/?seconds=0", b'"edited": true', timeout=10) is not None
    time.sleep(2)  # a window in which a loop of reloads would show
    assert server.output.count("Starting cheroot server at") == 2, server.output


def test_the_pid_file_holds_the_reloader_parents_pid_through_reloads(project, reloading, tmp_path):
    pidfile = tmp_path / "server.pid"
    server = reloading("--pidfile", str(pidfile))
    assert pidfile.read_text().strip() == str(server.process.pid)  # the process that lasts, and passes signals on
    edit(project / "cherrytest/app/views.py", '{"slept":', '{"edited": True, "slept":')
    assert wait_for_body(server.port, "/sleep/?seconds=0", b'"edited": true', timeout=10) is not None
    assert pidfile.read_text().strip() == str(server.process.pid)
    assert server.stop() == 0, server.output
    assert not pidfile.exists()
