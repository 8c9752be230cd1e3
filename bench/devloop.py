"""The development loop, runcherrypy beside runserver: Ctrl-C, SIGTERM and reloads, with streams open.

    python bench/devloop.py [--rounds 3] [--only runcherrypy|runserver] [--cases ctrl-c,reload,...]

Each server runs under its reloader (DEBUG on) on a copy of the sample project, on 127.0.0.1, one case after the
other, the two servers alternating within each round. Times are wall-clock seconds, so a range over the rounds is
given; the load is light (at most 50 streams), so pinning to a CPU is not needed. Cases:

- ``ctrl-c``: SIGINT to the process group (a terminal's Ctrl-C) with nothing open; ``ctrl-c N streams`` with N
  server-sent event streams open (``/events/``); ``ctrl-c 3 long polls`` (``/poll/``); ``sigterm 5 streams``: SIGTERM
  to the process alone. Time from the signal to the process's exit, and its exit status.
- ``reload``: ``views.py`` replaced (as editors save); time from the server's "changed, reloading." line to the
  first answer from the new code (a new connection every 5 ms), with and without a stream open.
- ``stream at reload``: whether an open stream ends cleanly (the last chunk of a chunked body, or the end of a
  close-delimited one) rather than being cut, and how long after the change was seen.
- ``browser-reload``: the tile page in headless Chromium (Debian's, driven by Playwright) with
  django-browser-reload; time from the change being seen to the page's reload.
- ``shutdown-timeout``: runcherrypy alone, ``--shutdown-timeout`` 0, 1 and 5 with a 5 s request in flight:
  the time from SIGTERM to the exit (status 1 when the request was abandoned, 0 when it finished in time).
- ``requests during reloads``: a client making one request after another, each on a new connection, through
  ``--reloads`` reloads: how many failed (refused, reset, or no answer).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("runcherrypy", "runserver")
CASES = (
    "ctrl-c",
    "streams",
    "long-polls",
    "sigterm",
    "reload",
    "reload-stream",
    "browser-reload",
    "requests-during-reloads",
    "shutdown-timeout",
)
MARK = '{"slept":'


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port, path, timeout=2.0):
    """One GET on a new connection: ``(status, body)``; ``OSError`` when it fails."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ConnectionError("no answer")
    return int(head.split()[1]), body


class Server:
    """``manage.py SERVER 127.0.0.1:PORT`` on ``project``, under the reloader; output lines kept with the time
    each was read."""

    def __init__(self, name, project, *arguments):
        self.name = name
        self.port = free_port()
        self.lines = []
        self.changed = threading.Condition()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "cherrytest.settings"}
        env["PYTHONPATH"] = os.environ.get("EXTRA_PATH", "") + str(ROOT)
        env.pop("DJANGO_DEBUG", None)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", name, f"127.0.0.1:{self.port}", *arguments],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_serving()

    def _read(self):
        for line in self.process.stdout:
            with self.changed:
                self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))
                self.changed.notify_all()

    def wait_for(self, pattern, after=0, timeout=20):
        """The time the first line past ``after`` matching ``pattern`` was read, or ``None``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while time.monotonic() < deadline:
                for at, line in self.lines[after:]:
                    if re.search(pattern, line):
                        return at
                self.changed.wait(0.1)
        return None

    def wait_serving(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if request(self.port, "/sleep/?seconds=0")[0] == 200:
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(line for _, line in self.lines))

    def stop_timed(self, signum, group):
        """Send ``signum`` (to the group, as a terminal does, or to the process): ``(seconds, status)``."""
        started = time.monotonic()
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        try:
            status = self.process.wait(30)
        except subprocess.TimeoutExpired:
            status = None
        seconds = time.monotonic() - started
        self.kill()
        return seconds, status

    def kill(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        else:
            # The reloader's child may outlive a parent that was killed.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Stream:
    """A raw HTTP/1.1 GET whose body is read on a thread until the server ends it: ``clean`` says whether it
    ended as its framing says a body ends (the last chunk, or the end of a close-delimited body) and ``ended_at``
    when."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.data = b""
        self.ended_at = None
        self.clean = None
        self.error = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
        except OSError as error:
            self.error = error
        self.ended_at = time.monotonic()
        head = self.data.partition(b"\r\n\r\n")[0].lower()
        chunked = b"transfer-encoding: chunked" in head
        self.clean = self.error is None and (self.data.endswith(b"\r\n0\r\n\r\n") if chunked else bool(head))
        self.sock.close()

    def close(self):
        self.sock.close()


def copy_project(folder):
    project = Path(folder) / "project"
    project.mkdir()
    shutil.copy(ROOT / "manage.py", project)
    shutil.copytree(ROOT / "cherrytest", project / "cherrytest", ignore=shutil.ignore_patterns("__pycache__", "media"))
    return project


def edit_views(project, number):
    """Replace views.py with one whose sleep view answers with ``edit`` = ``number``, atomically."""
    views = project / "cherrytest/app/views.py"
    text = re.sub(r'\{"edit": \d+, "slept":', MARK, views.read_text())
    temporary = views.with_name("views.py.tmp")
    temporary.write_text(text.replace(MARK, f'{{"edit": {number}, "slept":'))
    os.replace(temporary, views)
    return f'"edit": {number},'.encode()


def wait_new_code(server, marker, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = request(server.port, "/sleep/?seconds=0", timeout=5)
            if status == 200 and marker in body:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    return None


def case_stop(name, project, signum, group=True, streams=0, polls=0):
    server = Server(name, project)
    opened = [Stream(server.port, "/events/?interval=1") for _ in range(streams)]
    opened += [Stream(server.port, "/poll/?seconds=30") for _ in range(polls)]
    time.sleep(1.2)  # every stream under way: its first event sent, or its poll waiting
    seconds, status = server.stop_timed(signum, group)
    for stream in opened:
        stream.thread.join(5)
        stream.close()
    return {"seconds": seconds, "status": status}


def case_reload(name, project, number, stream=False):
    server = Server(name, project)
    time.sleep(1.2)  # the watcher's first pass has recorded the files
    opened = Stream(server.port, "/events/?interval=1") if stream else None
    if opened:
        time.sleep(0.3)
    after = len(server.lines)
    marker = edit_views(project, number)
    served = wait_new_code(server, marker)
    seen = server.wait_for(r"changed, reloading", after=after, timeout=1)
    result = {"seconds": served - seen if served and seen else None}
    if opened:
        opened.thread.join(5)
        result["clean"] = opened.clean
        result["stream ended"] = opened.ended_at - seen if opened.ended_at and seen else None
        opened.close()
    server.kill()
    return result


def case_requests_during_reloads(name, project, first, reloads):
    server = Server(name, project)
    time.sleep(1.2)
    failures, done = [], [0]
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                status, _ = request(server.port, "/sleep/?seconds=0", timeout=10)
                if status != 200:
                    failures.append(status)
            except OSError as error:
                failures.append(type(error).__name__)
            done[0] += 1

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    for number in range(first, first + reloads):
        marker = edit_views(project, number)
        if wait_new_code(server, marker) is None:
            failures.append("no reload")
        time.sleep(0.3)  # the new process's watcher records the files before the next edit
    stop.set()
    thread.join(15)
    server.kill()
    return {"failed": len(failures), "requests": done[0], "kinds": sorted(set(map(str, failures)))}


def case_shutdown_timeout(name, project, number, timeout):
    """runcherrypy only: ``--shutdown-timeout TIMEOUT`` with a 5 s request in flight, SIGTERM: the time to exit,
    against the timeout."""
    if name != "runcherrypy":
        return {"seconds": None}
    server = Server(name, project, "--shutdown-timeout", str(timeout))
    slow = Stream(server.port, "/sleep/?seconds=5")
    seconds, status = server.stop_timed(signal.SIGTERM, group=False)
    slow.close()
    return {"seconds": seconds, "status": status}


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]


def case_browser_reload(name, project, number):
    """The tile page open in headless Chromium with django-browser-reload: time from the change being seen to
    the page's next ``load``."""
    from playwright.sync_api import sync_playwright

    server = Server(name, project)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.port}/", wait_until="load")
            page.wait_for_timeout(1500)  # the page's worker has its event stream open; the watcher is ready
            after = len(server.lines)
            with page.expect_event("load", timeout=20_000):
                edit_views(project, number)
            loaded = time.monotonic()
        finally:
            browser.close()
    seen = server.wait_for(r"changed, reloading", after=after, timeout=1)
    server.kill()
    return {"seconds": loaded - seen if seen else None}


def measurements(selected, reloads):
    """The cases chosen, in order: ``(label, measure(name, project, number))``, where ``number`` is the first
    edit number the case may use."""
    chosen = []
    if "ctrl-c" in selected:
        chosen.append(("Ctrl-C, nothing open", lambda name, project, number: case_stop(name, project, signal.SIGINT)))
    if "streams" in selected:
        for count in (1, 5, 50):
            chosen.append(
                (
                    f"Ctrl-C, {count} stream{'s' if count > 1 else ''} open",
                    lambda name, project, number, count=count: case_stop(name, project, signal.SIGINT, streams=count),
                )
            )
    if "sigterm" in selected:
        chosen.append(
            (
                "SIGTERM, 5 streams open",
                lambda name, project, number: case_stop(name, project, signal.SIGTERM, group=False, streams=5),
            )
        )
    if "long-polls" in selected:
        chosen.append(
            ("Ctrl-C, 3 long polls", lambda name, project, number: case_stop(name, project, signal.SIGINT, polls=3))
        )
    if "reload" in selected:
        chosen.append(("reload: new code served after the change is seen", case_reload))
    if "reload-stream" in selected:
        chosen.append(
            (
                "reload with a stream open",
                lambda name, project, number: case_reload(name, project, number, stream=True),
            )
        )
    if "shutdown-timeout" in selected:
        for timeout in (0, 1, 5):
            chosen.append(
                (
                    f"SIGTERM, --shutdown-timeout {timeout}, a 5 s request in flight",
                    lambda name, project, number, timeout=timeout: case_shutdown_timeout(
                        name, project, number, timeout
                    ),
                )
            )
    if "browser-reload" in selected:
        chosen.append(("django-browser-reload: page reloaded after the change is seen", case_browser_reload))
    if "requests-during-reloads" in selected:
        chosen.append(
            (
                f"requests during {reloads} reloads",
                lambda name, project, number: case_requests_during_reloads(name, project, number, reloads),
            )
        )
    return chosen


def run(args):
    results = {}
    chosen = measurements(args.cases, args.reloads)
    with tempfile.TemporaryDirectory() as folder:
        project = copy_project(folder)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=project,
            env={**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "cherrytest.settings"},
            check=True,
        )
        number = 1
        for round_ in range(args.rounds):
            for name in args.servers if round_ % 2 == 0 else reversed(args.servers):
                for case, measure in chosen:
                    result = measure(name, project, number)
                    number += args.reloads + 1
                    results.setdefault(case, {}).setdefault(name, []).append(result)
                    print(f"round {round_ + 1} {name:12} {case}: {result}", flush=True)
    return results


def summary(values, unit=" s"):
    values = [value for value in values if value is not None]
    if not values:
        return "-"
    if len(values) == 1 or min(values) == max(values):
        return f"{values[0]:.2f}{unit}"
    return f"{min(values):.2f}-{max(values):.2f}{unit} (median {statistics.median(values):.2f})"


def table(results, servers):
    lines = ["| case | " + " | ".join(servers) + " |", "| --- |" + " --- |" * len(servers)]
    for case, by_server in results.items():
        cells = []
        for name in servers:
            runs = by_server.get(name, [])
            parts = []
            if runs and "seconds" in runs[0]:
                parts.append(summary([run["seconds"] for run in runs]))
            if runs and "status" in runs[0]:
                parts.append("exit " + ",".join(sorted({str(run["status"]) for run in runs})))
            if runs and "clean" in runs[0]:
                clean = sum(1 for run in runs if run["clean"])
                after = summary([run["stream ended"] for run in runs])
                parts.append(f"stream ended cleanly {clean}/{len(runs)}, {after} after the change was seen")
            if runs and "failed" in runs[0]:
                failed = sum(run["failed"] for run in runs)
                total = sum(run["requests"] for run in runs)
                kinds = sorted({kind for run in runs for kind in run["kinds"]})
                parts.append(f"{failed} of {total} requests failed" + (f" ({', '.join(kinds)})" if kinds else ""))
            cells.append("; ".join(parts) or "-")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reloads", type=int, default=10, help="reloads in the requests-during-reloads case")
    parser.add_argument("--only", choices=SERVERS, help="measure one server")
    parser.add_argument("--cases", default=",".join(CASES), help=f"a comma-separated subset of {', '.join(CASES)}")
    args = parser.parse_args()
    args.servers = [args.only] if args.only else list(SERVERS)
    args.cases = set(args.cases.split(","))
    unknown = args.cases - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    results = run(args)
    print()
    print(f"python bench/devloop.py --rounds {args.rounds}: {args.rounds} rounds, Python {sys.version.split()[0]}")
    print(table(results, args.servers))


if __name__ == "__main__":
    main()
