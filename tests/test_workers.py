"""``runcherrypy --workers N``: worker processes on the same sockets, supervised by a master: replaced when they
die, replaced one by one on SIGHUP and after ``--max-requests`` without failing a request, stopped gracefully."""

import json
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .http import fetch
from .process import manage
from .waiting import eventually

pytestmark = pytest.mark.slow  # each test starts worker processes


def pid_of(target, seconds=0):
    status, _, body = fetch(target, f"/test/pid/?seconds={seconds}", headers={"Connection": "close"})
    assert status == 200
    return json.loads(body)["pid"]


def pids_at_once(target, count=8, seconds=0.3):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return set(pool.map(lambda _: pid_of(target, seconds), range(count)))


def answering(target, count=2, timeout=20):
    """The pids of the processes that answer, once ``count`` of them have (requests sent 8 at a time)."""
    pids = set()

    def enough():
        pids.update(pids_at_once(target))
        return len(pids) >= count

    eventually(enough, timeout, interval=0, context=lambda: f"answered by {sorted(pids)}")
    return pids


def alive(pid):
    """Whether process ``pid`` runs (a zombie, exited and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Load:
    """Requests from ``threads`` threads, each on its own connection, until stopped: the failures are kept."""

    def __init__(self, target, threads=4):
        self.target = target
        self.stopping = threading.Event()
        self.count = 0
        self.failures = []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def run(self):
        while not self.stopping.is_set():
            try:
                status, _, _ = fetch(self.target, "/test/pid/", headers={"Connection": "close"}, timeout=10)
                if status != 200:
                    self.failures.append(status)
            except OSError as error:
                self.failures.append(repr(error))
            self.count += 1

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def test_workers_share_the_socket_and_stop_gracefully(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2")
    assert "with 2 worker processes of 10 to 100 worker threads each" in running.output
    pids = answering(running)
    assert len(pids) == 2 and running.process.pid not in pids
    # A request in flight finishes when the master is told to stop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(fetch, running, "/sleep/?seconds=1")
        time.sleep(0.3)
        running.signal(signal.SIGTERM)
        assert slow.result()[0] == 200
    running.process.wait(15)  # another SIGTERM now would mean "give up"
    assert running.stop() == 0
    assert "Server stopped." in running.output
    assert not any(alive(pid) for pid in pids)


def test_a_worker_that_dies_is_replaced(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2")
    victim = pid_of(running)
    os.kill(victim, signal.SIGKILL)
    assert running.wait_for(f"Worker {victim} was killed by SIGKILL; starting another.")
    pids = answering(running)
    assert len(pids) == 2 and victim not in pids
    assert running.stop() == 0


def test_sighup_under_load_replaces_every_worker_and_fails_no_request(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2")
    before = answering(running)
    load = Load(running)
    try:
        time.sleep(0.5)
        running.signal(signal.SIGHUP)
        assert running.wait_for("Reloaded: every worker runs the new code.", timeout=60)
        time.sleep(0.5)
    finally:
        load.stop()
    assert load.failures == [] and load.count > 20
    after = set()
    for _ in range(10):
        after |= pids_at_once(running)
    assert after and not after & before  # the new code answers
    assert not any(alive(pid) for pid in before)
    assert running.stop() == 0


def test_max_requests_recycles_workers_without_failing_a_request(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2", "--max-requests", "30")
    load = Load(running, threads=2)
    seen = set()

    def four_seen():
        seen.add(pid_of(running))
        return len(seen) >= 4

    try:
        eventually(four_seen, timeout=60, interval=0)
    finally:
        load.stop()
    assert len(seen) >= 4 and load.failures == []
    assert "starting another" not in running.output  # recycled, not died
    assert running.stop() == 0, "\n".join(line for line in running.lines if "GET" not in line)


def test_max_rss_replaces_a_worker_past_it_and_says_how_much_it_held(start_server):
    # 1 MiB: every worker is past it at once, so the first ones are replaced while requests come.
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2", "--max-rss", "1")
    load = Load(running, threads=2)
    seen = set()

    def three_seen():
        seen.add(pid_of(running))
        return len(seen) >= 3

    try:
        eventually(three_seen, timeout=60, interval=0)
    finally:
        load.stop()
    assert load.failures == []
    line = running.wait_for(re.compile(r"Worker (\d+): resident memory (\d+) MiB is past --max-rss 1 MiB"))
    assert int(line[2]) > 1
    assert "starting another" not in running.output  # replaced, not died
    assert running.stop() == 0


def test_a_broken_deploy(start_server, tmp_path):
    broken = tmp_path / "broken"
    # At start-up: the master stops, with status 1.
    broken.touch()
    result = manage(
        tmp_path, "runcherrypy", "127.0.0.1:0", "--noreload", "--workers", "2", DJANGO_BREAK_WORKERS=str(broken)
    )
    assert result.returncode == 1
    assert "before serving; stopping." in result.stderr
    # On SIGHUP: the new worker fails, the running ones stay and serve.
    broken.unlink()
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2", DJANGO_BREAK_WORKERS=str(broken))
    pid_of(running)
    broken.touch()
    running.signal(signal.SIGHUP)
    assert running.wait_for("before serving; the running workers stay.", timeout=30)
    assert pid_of(running) and pid_of(running)
    assert running.stop() == 0


def test_workers_and_the_reloader_do_not_mix(tmp_path):
    result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", "--workers", "2", "--skip-checks")  # DEBUG: reload
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: --workers runs without the reloader (SIGHUP reloads the workers): add --noreload."
    )


def test_workers_stop_when_the_master_is_killed(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2")
    pids = answering(running)
    running.process.kill()
    eventually(lambda: not any(alive(pid) for pid in pids), timeout=15, interval=0.1)


def test_the_processes_are_named_for_ps_and_top(start_server):
    """With the proctitle extra (setproctitle): ``ps`` and ``top`` tell the master from its workers."""
    pytest.importorskip("setproctitle", reason="the proctitle extra is not installed")
    running = start_server("127.0.0.1:0", "--noreload", "--workers", "2")

    def titles():
        master = running.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        names = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() for pid in children]
        return sorted(names) if len(names) == 2 else None

    master = Path(f"/proc/{running.process.pid}/cmdline").read_bytes().split(b"\0")[0]
    assert master == b"runcherrypy master tests.project.settings"  # the project, for two sites on one host
    assert eventually(titles) == [
        "runcherrypy worker 1 tests.project.settings",
        "runcherrypy worker 2 tests.project.settings",
    ]
    assert running.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_shutdown_delay_serves_on_after_sigterm_then_stops(start_server, workers):
    """Kubernetes and load balancers take a server out of their pool some time after SIGTERM: for --shutdown-delay
    it serves on, new connections too, and no request fails; then it stops gracefully, exit 0."""
    running = start_server("127.0.0.1:0", "--noreload", "--workers", workers, "--shutdown-delay", "4")
    load = Load(running, threads=2)
    try:
        eventually(lambda: load.count >= 5)
        running.signal(signal.SIGTERM)
        assert running.wait_for("Stopping in 4 s (--shutdown-delay)")
        counted = load.count
        eventually(lambda: load.count >= counted + 5)  # new connections, each request on its own, served
        assert running.process.poll() is None and "Stopping: " not in running.output  # the delay holds
    finally:
        load.stop()
    assert load.failures == []
    assert running.process.wait(15) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_signal_cuts_the_shutdown_delay_short(start_server, workers):
    """A duplicate of the first SIGTERM (kill and systemd both sending it) is ignored; a later one begins the
    graceful stop at once: exit 0."""
    running = start_server("127.0.0.1:0", "--noreload", "--workers", workers, "--shutdown-delay", "60")
    running.signal(signal.SIGTERM)
    running.signal(signal.SIGTERM)  # a duplicate, within the repeat window
    assert running.wait_for("Stopping in 60 s (--shutdown-delay)")
    assert running.process.poll() is None

    def stopped():
        running.signal(signal.SIGTERM)  # once the window has passed, one of these begins the stop
        return running.process.poll() is not None

    eventually(stopped, timeout=20, interval=0.3)
    assert running.process.wait(15) == 0
