"""The server under faults: a worker thread that cannot be started, a pool sizer that sleeps when idle, an access
log on a full disk, no file descriptors left. Each fault is injected (a failing ``Thread.start``, a failing write, a
low ``RLIMIT_NOFILE``) and the server is checked over real HTTP on loopback."""

import errno
import http.client
import logging
import os
import selectors
import socket
import sys
import time

import pytest
from cheroot.workers import threadpool

from devserver import access_log
from devserver.access_log import FileAccessLog

from .http import fetch, fetch_at_once, raw_request
from .process import Runcherrypy
from .tools import require
from .waiting import eventually
from .wsgi import serving

pytestmark = pytest.mark.slow  # waits out windows of seconds, under resource limits


def slow_app(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_an_idle_pool_sizer_sleeps_and_wakes_when_requests_wait():
    with serving(slow_app, numthreads=2, max=10) as server:
        sizer = server.pool_sizer
        eventually(lambda: sizer.dozing)
        wakes = sizer.wakes
        time.sleep(1)  # an idle second: nothing should wake it (it woke 50 times a second)
        assert sizer.wakes == wakes and sizer.dozing
        statuses, seconds = fetch_at_once(server.bind_addr[1], "/?0.5", 8)
        assert statuses == [200] * 8
        assert seconds < 2  # eight half-second requests at once, on a pool grown from 2 threads: not four rounds
        assert sizer.wakes > wakes


def test_a_worker_thread_that_cannot_start_is_logged_and_tried_again(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="devserver.server")
    with serving(slow_app, numthreads=2, max=10) as server:
        pool = server.requests
        original = threadpool.WorkerThread.start
        failures = {"left": 2}

        def start(self):
            if failures["left"]:
                failures["left"] -= 1
                raise RuntimeError("can't start new thread")
            original(self)

        monkeypatch.setattr(threadpool.WorkerThread, "start", start)
        statuses, seconds = fetch_at_once(server.bind_addr[1], "/?1", 8)
        assert statuses == [200] * 8
        # Tried again a second later, and grown then: not the four rounds of two threads that 8 s of requests take.
        assert seconds < 3.5
        assert caplog.text.count("Cannot start another worker thread (can't start new thread)") == 1
        assert "Worker threads start again" in caplog.text
        # Every thread the pool counts runs (none was lost to its count: its stop joins them all), and the sizer
        # lives on (the exception ended its thread).
        assert all(worker.is_alive() for worker in pool._threads) and len(pool._threads) > 2
        assert server.pool_sizer.is_alive()
        threads = list(pool._threads)
    eventually(lambda: not any(worker.is_alive() for worker in threads))


def test_an_access_log_on_a_full_disk_drops_lines_and_says_so_once(capsys):
    log = FileAccessLog("/dev/full")  # every write: ENOSPC
    for _ in range(3):
        log.log("127.0.0.1", "GET / HTTP/1.1", 200, 2, 0.001)  # never raises
    err = capsys.readouterr().err
    assert err.count("Cannot write the access log /dev/full: No space left on device; 1 line(s) lost") == 1
    assert "3 line(s)" not in err  # once a minute, not once a line
    log.close()


def test_an_access_log_writes_again_by_itself_when_the_disk_has_room(tmp_path, monkeypatch, capsys):
    path = tmp_path / "access.log"
    log = FileAccessLog(str(path))
    real_write, failing = access_log.os.write, {"left": 3}

    def write(fd, data):
        if failing["left"]:
            failing["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(access_log.os, "write", write)
    for number in range(3):
        log.log("127.0.0.1", f"GET /{number} HTTP/1.1", 200, 2, 0.001)
    log.reopen()  # SIGUSR1 while the disk is full: the next line goes to a file opened anew
    path.rename(tmp_path / "access.log.1")  # rotated
    log.log("127.0.0.1", "GET /after HTTP/1.1", 200, 2, 0.001)
    err = capsys.readouterr().err
    assert "The access log" in err and "is written again; 3 line(s) were lost." in err
    assert path.read_text().count("\n") == 1 and '"GET /after HTTP/1.1" 200' in path.read_text()
    log.close()


def test_a_full_access_log_disk_leaves_keep_alive_and_408s_alone(capsys):
    with serving(slow_app, access_log=FileAccessLog("/dev/full"), header_timeout=0.5) as server:
        port = server.bind_addr[1]
        descriptors = len(os.listdir("/proc/self/fd"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(3):  # one connection: the log's failure does not close it
            assert fetch(port, "/", connection=connection)[0] == 200
        connection.close()
        for _ in range(5):  # half a request head, then silence: a 408, and the socket closed
            answer = raw_request(port, b"GET / HTTP/1.1\r\nHost: a", timeout=5)
            assert answer.startswith(b"HTTP/1.1 408 ")
        eventually(lambda: len(os.listdir("/proc/self/fd")) <= descriptors)
    assert "Traceback" not in capsys.readouterr().err


def cpu_seconds(pid):
    """User and system CPU time of process ``pid`` so far, in seconds (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_it_waits_for_them_instead_of_spinning(tmp_path):
    # 256 descriptors for the server, 400 silent connections: accept() fails with EMFILE. cheroot looped on it at
    # 100% CPU, logged a traceback each time and never closed the idle connections; here the listening socket rests
    # for 0.5 s at a time, idle connections expire at the header timeout, and the rest are accepted as they do.
    prlimit = require("prlimit", "util-linux")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {prlimit} --nofile=256:256 {sys.executable} "$@"\n')
    python.chmod(0o755)
    server = Runcherrypy(tmp_path, "127.0.0.1:0", "--noreload", "--header-timeout", "2", python=str(python))
    try:
        keep_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        assert fetch(server.port, "/test/pid/", connection=keep_alive)[0] == 200
        silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(400)]
        assert server.wait_for("Out of file descriptors (accept: Too many open files)", timeout=10), server.output
        pid = server.process.pid
        before = cpu_seconds(pid)
        time.sleep(2)  # a window in which to measure what it spends while out of descriptors
        assert cpu_seconds(pid) - before < 0.2  # under 10% of a core (cheroot: 100%)
        # The connection already open is served meanwhile.
        assert fetch(server.port, "/test/pid/", connection=keep_alive)[0] == 200
        # Each silent connection is closed at the header timeout, those accepted late too.
        with selectors.DefaultSelector() as selector:
            for sock in silent:
                selector.register(sock, selectors.EVENT_READ)
            deadline = time.monotonic() + 20
            while selector.get_map() and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=1):
                    if not key.fileobj.recv(1024):
                        selector.unregister(key.fileobj)
            assert not selector.get_map(), f"{len(selector.get_map())} still open"
        for sock in silent:
            sock.close()
        assert server.wait_for("Accepting connections again", timeout=10), server.output
        assert fetch(server.port, "/test/pid/")[0] == 200  # a new client, once descriptors are free
        keep_alive.close()
    finally:
        assert server.stop() == 0, server.output
    assert server.output.count("Out of file descriptors") <= 3  # once an episode, not once an accept()
    assert "Traceback" not in server.output
