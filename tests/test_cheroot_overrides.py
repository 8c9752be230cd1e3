"""What devserver/cheroot_overrides.py relies on in cheroot, pinned so that a cheroot release that moves it fails here;
and the branches of the overrides that ordinary requests do not take (a unix socket, start_response with exc_info,
a file body without a descriptor, cheroot's own line reading)."""

import inspect
import io
import json
import os
import socket

import pytest
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile

from devserver import cheroot_overrides as overrides
from devserver.media import FileIterator

from .http import exchange, raw_request
from .wsgi import serving


def environ_app(environ, start_response):
    seen = {key: value for key, value in environ.items() if isinstance(value, str | bool | tuple)}
    data = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def test_the_internals_it_relies_on_are_there():
    # LineReader reads _pyio's buffer fields of cheroot's StreamReader.
    assert overrides.LINE_READER_USABLE
    # The header reader and the connection are wired through cheroot's class attributes.
    assert "header_reader" in vars(cheroot_server.HTTPRequest)
    assert "RequestHandlerClass" in vars(cheroot_server.HTTPConnection)
    assert list(inspect.signature(cheroot_server.HTTPConnection.__init__).parameters) == [
        "self",
        "server",
        "sock",
        "makefile",
    ]
    assert inspect.signature(cheroot_server.HTTPConnection.__init__).parameters["makefile"].default is MakeFile
    # The one-send path swaps the connection's wfile around send_headers, which writes the head with one write.
    assert "self.conn.wfile.write" in inspect.getsource(cheroot_server.HTTPRequest.send_headers)
    # Request.send_headers drains the body itself, or swaps a received one out of cheroot's reach: cheroot reads
    # the rest of self.rfile in one call.
    assert "self.rfile.read(remaining)" in inspect.getsource(cheroot_server.HTTPRequest.send_headers)
    # The header reader folds the headers cheroot lists as comma-separated.
    assert b"Accept" in cheroot_server.comma_separated_headers
    # read_head reads a socket with a timeout through its descriptor, which must then be non-blocking; cheroot's
    # expiry of idle connections reads conn.last_used, which Server.put_conn sets after cheroot's put.
    with socket.socket() as probe:
        probe.settimeout(5)
        assert not os.get_blocking(probe.fileno())
    server = wsgi.Server(("127.0.0.1", 0), None)
    server.prepare()
    try:
        assert "last_used" in inspect.getsource(type(server._connections)._expire)
        assert "last_used = time.time()" in inspect.getsource(type(server._connections).put)
        # stop_accepting and waiting_connections: the listening socket is in the selector, with the server as data.
        assert [conn for _, conn in server._connections._selector.connections] == [server]
        overrides.stop_accepting(server)
        assert overrides.waiting_connections(server) == [] and list(server._connections._selector.connections) == []
    finally:
        server.stop()
    # The pool size is read from the pool's private worker list, which grow() clears of exited workers first.
    pool = wsgi.Server(("127.0.0.1", 0), None).requests
    assert isinstance(pool._threads, list) and callable(pool._clear_dead_threads)


def test_the_environ_is_cheroots_plus_the_file_wrapper(monkeypatch):
    """Our copy of Gateway_10.get_environ gives what cheroot's gives (a key cheroot adds shows here)."""
    seen = []

    def both(self):
        ours, theirs = overrides.Gateway.get_environ.__wrapped__(self), wsgi.Gateway_10.get_environ(self)
        seen.append((ours, theirs))
        return ours

    both.__wrapped__ = overrides.Gateway.get_environ
    monkeypatch.setattr(overrides.Gateway, "get_environ", both)
    with serving(environ_app) as server:
        raw_request(
            server.bind_addr[1],
            b"POST /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
            b"X-One: 1\r\nConnection: close\r\n\r\n",
        )
    ((ours, theirs),) = seen
    assert ours.pop("wsgi.file_wrapper") is FileIterator
    assert ours == theirs


def test_line_reader_is_not_used_when_the_buffer_fields_are_gone(monkeypatch):
    class CBufferedReader(io.BufferedReader):  # the C implementation: no _read_buf, no _read_pos
        def __init__(self, sock, mode="rb", bufsize=io.DEFAULT_BUFFER_SIZE):
            super().__init__(socket.SocketIO(sock, "rb"), bufsize)

    monkeypatch.setattr(overrides, "StreamReader", CBufferedReader)
    assert not overrides._has_buffer_fields()


def test_cheroots_own_line_reading_serves_as_well(monkeypatch):
    monkeypatch.setattr(overrides, "LINE_READER_USABLE", False)
    with serving(environ_app) as server:
        responses = exchange(
            server.bind_addr[1],
            b"GET /first HTTP/1.1\r\nHost: h\r\nX-Long: " + b"v" * 20000 + b"\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
    assert [json.loads(body)["PATH_INFO"] for _, _, body in responses] == ["/first", "/second"]


def test_a_unix_socket_environ(tmp_path):
    path = str(tmp_path / "server.sock")
    with serving(environ_app, bind_addr=path, peercreds_enabled=True), socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(path)
        client.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    seen = json.loads(data.partition(b"\r\n\r\n")[2])
    assert seen["SERVER_PORT"] == "" and seen["PATH_INFO"] == "/x"
    assert seen["X_REMOTE_PID"] == str(os.getpid())
    assert seen["X_REMOTE_UID"] == str(os.getuid())


def failing_app(environ, start_response):
    """Starts a 200, then fails before any body: start_response again with exc_info decides the status."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"error"]


def test_start_response_again_with_exc_info_replaces_the_status_and_headers():
    with serving(failing_app) as server:
        data = raw_request(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert head.lower().count(b"content-type:") == 1  # cheroot's own appends the second call's headers
    assert b"Content-Length: 5" not in head
    assert b"error" in body


def test_start_response_with_exc_info_after_the_headers_went_out_raises_it():
    raised = []

    def app(environ, start_response):
        import sys

        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        write(b"hel")  # the headers are out
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except RuntimeError as error:
                raised.append(error)
                raise

    with serving(app) as server:
        data = raw_request(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert [str(error) for error in raised] == ["boom"]
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b"hel"  # cut short: the client knows it is incomplete


def test_start_response_a_second_time_without_exc_info_is_an_error():
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    with serving(app) as server:
        ((status, _, body),) = exchange(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert status.startswith("HTTP/1.1 500")
    assert b"Traceback" not in body


def test_a_file_body_without_a_descriptor_goes_block_by_block(monkeypatch):
    calls = []
    monkeypatch.setattr(socket.socket, "sendfile", lambda *args, **kwargs: calls.append(args))
    content = os.urandom(300_000)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(content)))])
        return environ["wsgi.file_wrapper"](io.BytesIO(content), 65536)

    with serving(app) as server:
        ((status, _, body),) = exchange(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert body == content
    assert calls == []


@pytest.mark.parametrize("count", [1, 3])
def test_worker_count(count):
    with serving(environ_app, numthreads=count, max=count) as server:
        assert overrides.worker_count(server.requests) == count


def test_a_pool_that_shrank_grows_again():
    import time

    with serving(environ_app, numthreads=2, max=6) as server:
        pool = server.requests
        server.pool_sizer.stop()  # the pool is driven by hand here
        overrides.grow(pool, 4)
        assert overrides.worker_count(pool) == 6
        pool.shrink(4)
        deadline = time.monotonic() + 5
        while overrides.worker_count(pool) > 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert overrides.worker_count(pool) == 2
        pool.grow(4)  # cheroot's own: its exited workers still count against max (the finding)
        assert overrides.worker_count(pool) == 2
        overrides.grow(pool, 4)
        assert overrides.worker_count(pool) == 6
