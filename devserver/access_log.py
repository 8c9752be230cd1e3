"""Where the line logged for each response goes: the ``django.server`` logger (runserver's way, the default), or a
file (or standard output) in the common or combined log format of nginx and Apache, or as JSON lines, reopened on
request for log rotation.

A line names the client (``REMOTE_ADDR``, after ``devserver.proxy`` has resolved it behind a trusted proxy), the
request line, the status, the body bytes sent and the time the response took; a response cut off because the client
left or read too slowly says so, with the length it announced.
"""

import contextlib
import json
import logging
import os
import sys
import threading
import time

__all__ = ["NO_ACCESS_FIELDS", "FileAccessLog", "LoggerAccessLog", "access_logger", "fields"]

access_logger = logging.getLogger("django.server")
"""runserver's logger: LOGGING settings apply, and Django's ``ServerFormatter`` adds the time and colours."""


NO_ACCESS_FIELDS = {
    **dict.fromkeys(
        ("client", "method", "path", "query", "protocol", "status", "bytes", "duration_ms", "referer", "user_agent")
    ),
    "worker": os.getpid(),
    "status_code": None,
}
"""``extra`` for the other records of ``django.server`` (a stuck request, a certificate reloaded): the access
fields, empty, so that a project's formatter that names them formats these too."""


class LoggerAccessLog:
    """Each response through ``django.server``: 5xx as errors, 4xx and cut-off responses as warnings, the rest as
    info, with ``status_code`` for Django's ``ServerFormatter`` colours, as runserver logs it:
    ``127.0.0.1 "GET / HTTP/1.1" 200 1234 2.1 ms``."""

    def log(
        self, client, request_line, status, size, duration, announced=None, cut_off=False, referer=None, agent=None
    ):
        """``status``: the status code (int); ``size``: body bytes sent; ``duration``: seconds; ``announced``: the
        Content-Length sent, if any; ``cut_off``: whether the response ended before its end; ``referer`` and
        ``agent``: the request's Referer and User-Agent, if any. The fields of ``fields()`` are attributes of the
        ``LogRecord`` too, for a project's own formatter."""
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 or cut_off else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        message, args = '%s "%s" %s %s %.1f ms', [client or "-", request_line, status, size, duration * 1000]
        if cut_off:
            message += " (cut off; %s announced)" if announced is not None else " (cut off)"
            if announced is not None:
                args.append(announced)
        access_logger.log(
            level,
            message,
            *args,
            extra={
                "status_code": status,
                "server_time": time.strftime("%d/%b/%Y %H:%M:%S"),
                **fields(client, request_line, status, size, duration, referer, agent),
            },
        )


def fields(client, request_line, status, size, duration, referer=None, agent=None):
    """The fields of a response's line, by name: ``client``, ``method``, ``path``, ``query``, ``protocol`` (from
    ``request_line``; ``None`` for what it does not have), ``status``, ``bytes``, ``duration_ms``, ``referer``,
    ``user_agent``, ``worker`` (this process's id)."""
    parts = request_line.split(" ", 2) if request_line and request_line != "-" else []
    method, target, protocol = (parts + [None, None, None])[:3]
    path, _, query = target.partition("?") if target else (None, "", "")
    return {
        "client": client or None,
        "method": method,
        "path": path,
        "query": query or None,
        "protocol": protocol,
        "status": status,
        "bytes": size,
        "duration_ms": round(duration * 1000, 3),
        "referer": referer,
        "user_agent": agent,
        "worker": os.getpid(),
    }


class FileAccessLog:
    """Each response as a line of ``path`` (``-``: standard output), in the ``form`` given:

    - ``common``: the common log format, with the duration in seconds after it:
      ``127.0.0.1 - - [22/Nov/2026:02:30:00 +0000] "GET / HTTP/1.1" 200 1234 0.002104``;
    - ``combined``: the same, then the Referer and the User-Agent quoted, as in nginx's and Apache's combined format
      (``"-"`` for none); quotes and backslashes in them escaped as nginx escapes them;
    - ``json``: one object a line, the ``fields()`` with ``time`` (ISO 8601) first, escaped by the JSON encoder, so
      that no client can forge a field or a line.

    ``reopen()`` may be called from a signal handler (SIGUSR1): the file is opened again under the same name before
    the next line, so that a rotated log (``logrotate``'s ``create``) is written anew; a file that cannot be opened
    leaves the current one in use. Lines are written whole, one ``write`` each (``O_APPEND``, unbuffered), from any
    thread. ``OSError`` from opening the file is raised at once, by the constructor only.

    A line that cannot be written (a full disk: ``ENOSPC``) is dropped, as nginx drops it: ``log`` never raises, so a
    failing log never touches the connection of the response it logs. While writes fail, a warning goes to standard
    error once every ``WARN_EVERY`` seconds with the count of lines lost; writing goes on by itself once the disk
    has room again, and says so.
    """

    WARN_EVERY = 60.0

    FORMS = ("common", "combined", "json")

    def __init__(self, path, form="common"):
        if form not in self.FORMS:
            raise ValueError(f"form: one of {', '.join(self.FORMS)}, not {form!r}")
        self.path = path
        self.form = form
        self._lock = threading.Lock()
        self._reopen = False
        self._second, self._stamp = None, ""
        self._lost = 0
        self._warned_at = None
        self._fd = self._open()

    def _open(self):
        if self.path == "-":
            return sys.stdout.fileno()
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def reopen(self):
        """Reopen the file before the next line (safe in a signal handler: it only sets a flag)."""
        self._reopen = True

    def close(self):
        with self._lock:
            if self.path != "-":
                with contextlib.suppress(OSError):
                    os.close(self._fd)

    def _timestamp(self):
        now = int(time.time())
        if now != self._second:
            self._second, self._stamp = now, time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
        return self._stamp

    def log(
        self, client, request_line, status, size, duration, announced=None, cut_off=False, referer=None, agent=None
    ):
        """As ``LoggerAccessLog.log``; never raises."""
        if self.form == "json":
            record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            record.update(fields(client, request_line, status, size, duration, referer, agent))
            if cut_off:
                record["cut_off"], record["announced"] = True, announced
            line = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
        else:
            line = f'{client or "-"} - - [{self._timestamp()}] "{_quoted(request_line)}" {status} {size} {duration:.6f}'
            if cut_off:
                line += f" cut-off/{announced}" if announced is not None else " cut-off"
            if self.form == "combined":
                line += f' "{_quoted(referer or "-")}" "{_quoted(agent or "-")}"'
        data = (line + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            if self._reopen:
                self._reopen = False
                self._reopen_now()
            try:
                if self.path == "-":
                    sys.stdout.flush()  # what was printed before, first
                os.write(self._fd, data)
            except (OSError, ValueError) as error:
                self._lost += 1
                now = time.monotonic()
                if self._warned_at is None or now - self._warned_at >= self.WARN_EVERY:
                    self._warned_at = now
                    _say(
                        f"Cannot write the access log {self.path}: {error.strerror or error}; {self._lost} line(s) "
                        f"lost so far (said again every {self.WARN_EVERY:g} s while it lasts)."
                    )
            else:
                if self._lost:
                    _say(f"The access log {self.path} is written again; {self._lost} line(s) were lost.")
                    self._lost, self._warned_at = 0, None

    def _reopen_now(self):
        if self.path == "-":
            return
        try:
            new = self._open()
        except OSError as error:  # keep writing where it was
            _say(f"Cannot reopen the access log {self.path} (still writing to the file it had): {error.strerror}.")
            return
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = new


def _quoted(text):
    """``text`` for a quoted field of a log line: quotes, backslashes, control characters and every byte past ASCII
    escaped as nginx escapes them (``\\xHH``), so that the line stays parseable and one line."""
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\x5C").replace('"', "\\x22")
    if not text.isascii() or any(ord(character) < 0x20 or ord(character) == 0x7F for character in text):
        # Past ASCII too: U+0085 (NEL) and U+2028 are line ends to str.splitlines(), and a log reader.
        text = "".join(f"\\x{ord(c):02X}" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0xFF else c for c in text)
        text = "".join(f"\\u{ord(c):04X}" if ord(c) > 0xFF else c for c in text)
    return text


def _say(message):
    """A line to standard error, for what the access log cannot write to itself; never raises."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)
