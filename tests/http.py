"""The one HTTP client of the tests: a request on its own connection, raw bytes on a socket, requests at once."""

import http.client
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit


def address(target):
    """``(host, port)`` of a port number, a URL, or anything with ``.port`` (a ``Runcherrypy``) or ``.url``."""
    if isinstance(target, int):
        return "127.0.0.1", target
    url = target if isinstance(target, str) else getattr(target, "url", None)
    if url is None:
        return "127.0.0.1", target.port
    parts = urlsplit(url)
    return parts.hostname, parts.port


def fetch(target, path=None, method="GET", headers=None, body=None, timeout=15, connection=None, tls=None):
    """One request, on its own connection unless ``connection`` (an ``http.client.HTTPConnection`` kept alive) is
    given; returns ``(status, headers, body)``. ``target``: see ``address``; ``path`` defaults to a URL target's
    own path and query, else ``/``; ``tls``: an ``ssl.SSLContext`` for HTTPS."""
    if path is None:
        parts = urlsplit(target) if isinstance(target, str) else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "") if parts else "/"
    own = connection is None
    if own and tls is not None:
        connection = http.client.HTTPSConnection(*address(target), timeout=timeout, context=tls)
    elif own:
        connection = http.client.HTTPConnection(*address(target), timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        if own:
            connection.close()


def fetch_at_once(target, path, count):
    """``count`` requests for ``path``, all at once; returns their statuses and the seconds they took in all."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda _: fetch(target, path), range(count)))
    return [status for status, _, _ in results], time.monotonic() - started


def raw_request(target, raw, timeout=5, end_of_input=False):
    """Send raw bytes and read until the server closes the connection; return what came back. ``end_of_input``:
    shut the connection down for writing once they are sent, as a client that has nothing more to say."""
    with socket.create_connection(address(target), timeout=timeout) as client:
        client.sendall(raw)
        if end_of_input:
            client.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    return data


def exchange(target, raw):
    """``raw_request``, the answer split into responses: a list of ``(status line, headers, body)``."""
    data = raw_request(target, raw)
    responses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", len(rest)))
        responses.append((lines[0], headers, rest[:length]))
        data = rest[length:]
    return responses


class Stream:
    """A GET whose response is read on a thread until the server closes the connection (an event stream, a long
    poll): ``data`` so far, ``ended`` (an event, set at the close), ``error`` (what the read raised, if anything).
    ``http10``: ask in HTTP/1.0, so that the body ends with the connection instead of a last chunk."""

    def __init__(self, target, path, *, http10=False, headers=b"", timeout=60, tls=None):
        import threading

        host, port = address(target)
        sock = socket.create_connection((host, port), timeout=timeout)
        self.socket = tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
        version = b"HTTP/1.0" if http10 else b"HTTP/1.1"
        self.socket.sendall(b"GET " + path.encode() + b" " + version + b"\r\nHost: localhost\r\n" + headers + b"\r\n")
        self.data = b""
        self.error = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            while chunk := self.socket.recv(65536):
                self.data += chunk
        except OSError as error:
            self.error = error
        self.ended.set()

    @property
    def head(self):
        return self.data.partition(b"\r\n\r\n")[0]

    @property
    def body(self):
        return self.data.partition(b"\r\n\r\n")[2]

    @property
    def ended_cleanly(self):
        """Ended as its framing says a body ends: the last chunk of a chunked body, or the close of another; no
        reset."""
        if not self.ended.is_set() or self.error is not None or not self.head.startswith(b"HTTP/1.1 200 "):
            return False
        if b"\r\ntransfer-encoding: chunked" in self.head.lower():
            return self.body.endswith(b"0\r\n\r\n")
        return True

    def close(self):
        self.socket.close()
        self._thread.join(5)
