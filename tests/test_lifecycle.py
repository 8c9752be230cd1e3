"""How runcherrypy runs and stops: signals, giving up, a command called from another thread."""

import io
import re
import signal
import threading
import time

import pytest
from django.core.management import call_command

from devserver.lifecycle import REPEAT_SIGNAL_WINDOW, Outcome, StopRequest, stop_gracefully
from devserver.management.commands.runcherrypy import Command

from .http import Stream, fetch
from .process import BANNER
from .waiting import eventually
from .wsgi import serving


def slow_app(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def in_background(url):
    result = {}

    def get():
        try:
            result["status"] = fetch(url, timeout=30)[0]
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    return thread, result


def test_a_stop_signal_repeated_at_once_counts_once_and_a_later_one_gives_up():
    request = StopRequest()
    request.handle(signal.SIGTERM)
    request.handle(signal.SIGTERM)  # the same signal, delivered to the process and to its group
    assert request.requested.is_set() and not request.give_up.is_set()
    time.sleep(REPEAT_SIGNAL_WINDOW + 0.1)
    request.handle(signal.SIGINT)  # Ctrl-C pressed again
    assert request.give_up.is_set()


@pytest.mark.slow
def test_stop_gracefully_says_whether_it_waited_timed_out_or_gave_up():
    with serving(slow_app, shutdown_timeout=0.2) as server:
        port = server.bind_addr[1]
        client, _ = in_background(f"http://127.0.0.1:{port}/?3")
        time.sleep(0.3)
        assert stop_gracefully(server, grace=0.2) is Outcome.TIMED_OUT
        client.join(5)
    with serving(slow_app, shutdown_timeout=10) as server:
        client, _ = in_background(f"http://127.0.0.1:{server.bind_addr[1]}/?3")
        time.sleep(0.3)
        give_up = threading.Event()
        threading.Timer(0.3, give_up.set).start()
        started = time.monotonic()
        assert stop_gracefully(server, give_up=give_up) is Outcome.GAVE_UP
        assert time.monotonic() - started < 2
        client.join(5)
    with serving(slow_app) as server:
        client, result = in_background(f"http://127.0.0.1:{server.bind_addr[1]}/?0.3")
        time.sleep(0.1)
        assert stop_gracefully(server) is Outcome.STOPPED
        client.join(5)
        assert result == {"status": 200}


@pytest.mark.parametrize("reload", ["--noreload", "--reload"])
@pytest.mark.slow
def test_ctrl_c_again_gives_up_and_says_so(start_server, reload):
    server = start_server("127.0.0.1:0", reload, "--shutdown-timeout", "30")
    client, _ = in_background(server.url + "sleep/?seconds=5&say=give-up")
    assert server.wait_for("sleeping: give-up")
    server.signal(signal.SIGINT)
    assert server.wait_for("Stopping: waiting up to 30 s for requests in flight (Ctrl-C again to give up)")
    time.sleep(REPEAT_SIGNAL_WINDOW + 0.2)
    server.signal(signal.SIGINT)
    assert server.process.wait(10) == 1
    server.stop()
    assert "Stopped without waiting: requests still running were abandoned." in server.output
    assert "shutdown timeout ran out" not in server.output


@pytest.mark.parametrize("reload", ["--noreload", "--reload"])
@pytest.mark.parametrize("timeout", [0, 1])
@pytest.mark.slow
def test_the_shutdown_timeout_is_kept_and_its_running_out_said(start_server, reload, timeout):
    # --shutdown-timeout N waits N s for requests in flight, and the server's own work at most GRACE (0.15 s) more
    # (it took N + 2 to N + 3 s); this allows the processes' start and exit on a loaded machine on top.
    server = start_server("127.0.0.1:0", reload, "--shutdown-timeout", str(timeout))
    request = Stream(server.port, "/sleep/?seconds=5&say=timeout")
    assert server.wait_for("sleeping: timeout")  # in flight
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.process.wait(10) == 1
    assert timeout <= time.monotonic() - started < timeout + 1
    server.stop()
    assert f"Stopping: waiting up to {timeout} s for requests in flight" in server.output
    assert "Requests were still running when the shutdown timeout ran out; exiting anyway." in server.output
    request.close()


def test_the_command_runs_from_a_thread_other_than_the_main_one(db):
    # Before: "not the main thread" was taken to mean "under the reloader", and this raised AttributeError.
    output = io.StringIO()
    command = Command(stdout=output, stderr=io.StringIO())
    errors = []

    def run():
        try:
            call_command(command, "127.0.0.1:0", "--noreload", "--skip-checks")
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    match = eventually(lambda: BANNER.search(output.getvalue()) or errors, 10, interval=0.02, context=output.getvalue)
    assert not errors, (errors, output.getvalue())
    assert fetch(match["urls"] + "sleep/?seconds=0")[0] == 200
    command.runner.stop()
    thread.join(10)
    assert not thread.is_alive() and errors == []
    assert "Server stopped." in output.getvalue()


def test_the_reloader_from_another_thread_is_a_command_error(db):
    errors = []

    def run():
        try:
            call_command("runcherrypy", "127.0.0.1:0", "--reload", "--skip-checks")
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert [type(error).__name__ for error in errors] == ["CommandError"]
    assert re.search("main thread only; use --noreload", str(errors[0]))


@pytest.mark.slow
@pytest.mark.parametrize("debug", ["0", "1"])
def test_without_reload_flags_the_reloader_follows_debug(start_server, debug):
    server = start_server("127.0.0.1:0", DJANGO_DEBUG=debug, DJANGO_ALLOWED_HOSTS="127.0.0.1")
    watching = server.wait_for("Watching for file changes with", timeout=1)
    assert (watching is not None) == (debug == "1"), server.output
