"""``manage.py runcherrypy`` started as a subprocess, the way a user starts it."""

import os
import re
import signal as signals
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BANNER = re.compile(r"Starting cheroot (?:SCGI )?server at (?P<urls>\S+(?: and \S+)*) with ")
SAMPLE = {"DJANGO_SETTINGS_MODULE": "cherrytest.settings"}
"""The environment that runs ``manage.py`` on the sample project (``cherrytest``) instead of the tests' own."""


def manage_env(tmp_path, **extra):
    """The environment for a manage.py subprocess: the tests' project (``**SAMPLE`` for the sample), its own
    database in ``tmp_path``, unbuffered output."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.project.settings",
        DJANGO_DATABASE=str(tmp_path / "db.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(tmp_path, *args, timeout=60, **env):
    """Run ``manage.py *args`` to completion and return the ``CompletedProcess`` (text output)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class Runcherrypy:
    """A running ``manage.py runcherrypy``; ``url`` is read from its banner, its output is kept in ``lines``."""

    command = "runcherrypy"

    def __init__(
        self,
        tmp_path,
        *args,
        start_timeout=30,
        cwd=ROOT,
        python=sys.executable,
        script="manage.py",
        environ=None,
        **env,
    ):
        self.lines = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [python, str(script), self.command, *args],
            cwd=cwd,
            start_new_session=True,  # its own process group, for a Ctrl-C sent to the group
            env=environ if environ is not None else manage_env(tmp_path, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        # Drain the pipe all along: a full pipe would block the server's access log.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for_banner(start_timeout)

    def wait_for_banner(self, timeout=30, after=0):
        """Wait for a "Starting cheroot server at URL [and URL...]" line past the first ``after`` lines; set
        ``urls`` (``http://...`` and ``unix:PATH``), ``url`` and ``port`` (of the first TCP one; else ``None``)."""
        match = self.wait_for(BANNER, timeout, after=after)
        if match is None:
            self.stop()
            raise RuntimeError("runcherrypy did not start:\n" + self.output)
        self.urls = match["urls"].split(" and ")
        self.url = next((url for url in self.urls if url.startswith(("http", "scgi"))), None)
        self.port = int(self.url.rsplit(":", 1)[1].rstrip("/")) if self.url else None

    def _read(self):
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self):
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern, timeout=10, after=0):
        """Wait until an output line past the first ``after`` matches ``pattern`` (a compiled regex or a
        substring); return the match or ``None`` when the time runs out or the process ends."""
        deadline = time.monotonic() + timeout
        if isinstance(pattern, str):
            pattern = re.compile(re.escape(pattern))
        seen = after
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    return None
                self._changed.wait(min(remaining, 0.5))

    def signal(self, signum=signals.SIGTERM):
        self.process.send_signal(signum)

    def signal_group(self, signum=signals.SIGINT):
        """Send ``signum`` to the whole process group, as a terminal's Ctrl-C does."""
        os.killpg(self.process.pid, signum)

    def stop(self, timeout=15):
        """SIGTERM, then wait; return the exit status (a process that will not stop is killed, status ``None``)."""
        if self.process.poll() is None:
            self.process.send_signal(signals.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            status = None
        self._reader.join(5)
        self.process.stdout.close()
        return status


class Runscgi(Runcherrypy):
    """A running ``manage.py runscgi`` (the long-running SCGI server); ``url`` is ``scgi://host:port/``."""

    command = "runscgi"
