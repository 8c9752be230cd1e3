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
