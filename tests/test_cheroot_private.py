"""What devserver/http/ relies on in cheroot (``cheroot_private`` and the behaviours its docstring lists), pinned so
that a cheroot release that moves it fails here; what replaces cheroot's own code checked against it (the request
line's fields, the header block, the environ); and the branches of the gateway that ordinary requests do not take
(a unix socket, start_response with exc_info, a file body without a descriptor)."""

import errno
import inspect
import io
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile

from devserver.http import cheroot_private as private
from devserver.http import request as request_module
from devserver.http import response
from devserver.http.file_wrapper import FileIterator
from devserver.http.gateway import Gateway
from devserver.http.parser import Limits, Refused, parse_head
from devserver.http.request import Request

from .http import exchange, raw_request
from .waiting import eventually
from .wsgi import serving


def environ_app(environ, start_response):
    seen = {key: value for key, value in environ.items() if isinstance(value, str | bool | tuple)}
    data = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def test_the_internals_it_relies_on_are_there():
    # The request is wired through cheroot's class attribute; the connection makes its reader and writer with the
    # makefile it is given (Connection passes one that makes no reader), and cheroot's connection manager asks the
    # reader's has_data() whether a pipelined request waits, and closes it with the connection.
    assert "RequestHandlerClass" in vars(cheroot_server.HTTPConnection)
    source = inspect.getsource(cheroot_server.HTTPConnection.__init__)
    assert "self.rfile = makefile(sock, 'rb'" in source and "self.wfile = makefile(sock, 'wb'" in source
    assert "self.rfile.close()" in inspect.getsource(cheroot_server.HTTPConnection.close)
    assert "conn.rfile.has_data()" in inspect.getsource(cheroot_server.connections.ConnectionManager.put)
    # What cheroot reads off conn.rfile anywhere, Connection's stand-in (request._Pending) has.
    import re

    import cheroot

    used = set()
    for path in Path(cheroot.__file__).parent.rglob("*.py"):
        if "test" not in path.parts:
            used.update(re.findall(r"conn\.rfile\.(\w+)", path.read_text()))
    assert used == {"has_data", "closed", "bytes_read"}
    pending = request_module._Pending(None)
    assert all(hasattr(pending, name) for name in used | {"close"})
    # communicate() calls parse_request, then respond if ready (Request fills both from the parsed message).
    source = inspect.getsource(cheroot_server.HTTPConnection.communicate)
    assert "req.parse_request()" in source and "if not req.ready:" in source and "req.respond()" in source
    assert list(inspect.signature(cheroot_server.HTTPConnection.__init__).parameters) == [
        "self",
        "server",
        "sock",
        "makefile",
    ]
    assert inspect.signature(cheroot_server.HTTPConnection.__init__).parameters["makefile"].default is MakeFile
    # Request.send_headers (header_block) replaces cheroot's: cheroot still reaches it through
    # ensure_headers_sent, and writes a body in the chunked coding that header_block chose through chunked_write.
    assert "self.send_headers()" in inspect.getsource(cheroot_server.HTTPRequest.ensure_headers_sent)
    assert "self.chunked_write" in inspect.getsource(cheroot_server.HTTPRequest.write)
    # Gateway.start_response replaces cheroot's, whose write() reads what it sets.
    source = inspect.getsource(wsgi.Gateway.write)
    assert "self.started_response" in source and "self.remaining_bytes_out" in source
    # receive reads a socket with a timeout through its descriptor, which must then be non-blocking; cheroot's
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
        private.stop_accepting(server)
        assert private.waiting_connections(server) == [] and list(server._connections._selector.connections) == []
    finally:
        server.stop()
    # The pool size is read from the pool's private worker list, which grow() clears of exited workers first.
    pool = wsgi.Server(("127.0.0.1", 0), None).requests
    assert isinstance(pool._threads, list) and callable(pool._clear_dead_threads)


def test_the_environ_is_cheroots_plus_the_file_wrapper(monkeypatch):
    """Our copy of Gateway_10.get_environ gives what cheroot's gives (a key cheroot adds shows here)."""
    seen = []

    def both(self):
        ours, theirs = Gateway.get_environ.__wrapped__(self), wsgi.Gateway_10.get_environ(self)
        seen.append((ours, theirs))
        return ours

    both.__wrapped__ = Gateway.get_environ
    monkeypatch.setattr(Gateway, "get_environ", both)
    with serving(environ_app) as server:
        raw_request(
            server.bind_addr[1],
            b"POST /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
            b"X-One: 1\r\nConnection: close\r\n\r\n",
        )
    ((ours, theirs),) = seen
    assert ours.pop("wsgi.file_wrapper") is FileIterator
    assert ours == theirs


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
        assert private.worker_count(server.requests) == count


def test_a_pool_that_shrank_grows_again():

    with serving(environ_app, numthreads=2, max=6) as server:
        pool = server.requests
        server.pool_sizer.stop()  # the pool is driven by hand here
        private.grow(pool, 4)
        assert private.worker_count(pool) == 6
        pool.shrink(4)
        eventually(lambda: private.worker_count(pool) == 2)
        pool.grow(4)  # cheroot's own: its exited workers still count against max (the finding)
        assert private.worker_count(pool) == 2
        private.grow(pool, 4)
        assert private.worker_count(pool) == 6


@contextmanager
def requests_of(server):
    """A function making a ``Request`` of ``server`` on a connection from a socketpair on which the bytes it is
    given have arrived; the connections are closed after the ``with`` block."""
    conns = []

    def make(data):
        client, inner = socket.socketpair()
        with client:
            client.sendall(data)
        conns.append(server.ConnectionClass(server, inner))
        return Request(server, conns[-1])

    try:
        yield make
    finally:
        for conn in conns:
            conn.close()


REQUEST_FIELDS = ("method", "uri", "path", "qs", "authority", "scheme", "request_protocol", "response_protocol")

PLAIN_LINES = [
    b"GET / HTTP/1.1",
    b"GET /hello/ HTTP/1.1",
    b"GET /static/app/site.css?v=3&x=%20y HTTP/1.1",
    b"POST /form/? HTTP/1.1",
    b"HEAD /a?b?c HTTP/1.0",
    b"OPTIONS /x HTTP/1.1",
    b"DELETE /a;b=c/d.e HTTP/1.1",
    b"PROPFIND /~user/_-.!$&'()*+,;=:@ HTTP/1.1",
]

OTHER_LINES = [
    b"GET //evil.example/x HTTP/1.1",  # urlsplit takes it for an authority
    b"GET /a%2Fb%20c HTTP/1.1",  # unquoted, %2F kept
    b"GET /a#fragment HTTP/1.1",
    b"CONNECT /x HTTP/1.1",
    b"GET http://h/x HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"get / HTTP/1.1",
    b"GET / HTTP/2.0",
    b"GET / HTTP/1.2",
    b"GET /caf\xc3\xa9 HTTP/1.1",
    b"GET /?q=caf\xc3\xa9 HTTP/1.1",
    b"GET  / HTTP/1.1",
    b"GET / HTTP/1.1 ",
    b"GET /\x00 HTTP/1.1",
]


ACCEPTED_OTHERWISE = {
    # RFC 9112 §3.2.1: "//x" is an origin-form path; cheroot's urlsplit takes it for an authority.
    b"GET //evil.example/x HTTP/1.1": {"path": b"//evil.example/x", "authority": b""},
    # RFC 9112 §3.2.2: a server MUST accept the absolute-form; cheroot refuses it unless it is a proxy.
    b"GET http://h/x HTTP/1.1": {"path": b"/x", "authority": b"h"},
    # The asterisk-form: cheroot makes it "/*".
    b"OPTIONS * HTTP/1.1": {"path": b"*"},
}


def cheroots_request_line(server, line):
    """What cheroot's ``read_request_line`` makes of ``line``: its fields, or ``None`` if it refuses it."""
    request = cheroot_server.HTTPRequest(server, None)
    request.rfile = io.BufferedReader(io.BytesIO(line))
    request.simple_response = lambda *args: None
    if not request.read_request_line():
        return None
    return {name: getattr(request, name) for name in REQUEST_FIELDS}


@pytest.mark.parametrize("line", PLAIN_LINES + OTHER_LINES)
def test_the_request_line_is_read_as_cheroot_reads_it(line):
    """parse_head sets the fields cheroot's read_request_line sets, the same for every line both accept; it refuses
    more (whitespace, versions, NUL, bytes past ASCII) and accepts the forms RFC 9112 says a server must. A cheroot
    release that parses differently fails here."""
    server = wsgi.Server(("127.0.0.1", 0), None)
    theirs = cheroots_request_line(server, line + b"\r\n")
    try:
        message = parse_head(line + b"\r\nHost: h\r\n\r\n", Limits())
    except Refused:
        assert line in OTHER_LINES
        assert theirs is None or b" HTTP/1.1 " in line + b" " or line.strip() != line  # stricter than cheroot
        return
    ours = {name: getattr(message, name) for name in REQUEST_FIELDS if name != "scheme"}
    expected = dict(theirs or {}, **ACCEPTED_OTHERWISE.get(line, {}))
    expected.pop("scheme", None)
    if line in ACCEPTED_OTHERWISE:
        expected.update(method=line.split()[0], uri=line.split()[1], qs=b"", request_protocol=b"HTTP/1.1")
        expected.update(response_protocol="HTTP/1.1", authority=expected.get("authority", b""))
    assert ours == expected


@pytest.mark.parametrize(("size", "status"), [(64, "HTTP/1.1 200 OK"), (65, "HTTP/1.1 414 Request-URI Too Long")])
def test_a_request_line_over_the_limit_is_a_414(size, status):
    line = b"GET /" + b"a" * (size - len(b"GET / HTTP/1.1\r\n")) + b" HTTP/1.1\r\n"
    assert len(line) == size
    with serving(environ_app, max_request_line=64) as server:
        ((answer, _, _),) = exchange(server.bind_addr[1], line + b"Host: h\r\nConnection: close\r\n\r\n")
        assert answer == status


HEADER_CASES = [
    # (response protocol, method, status, headers)
    ("HTTP/1.1", b"GET", b"200 OK", [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")]),
    ("HTTP/1.1", b"GET", b"200 OK", [(b"Content-Type", b"text/plain")]),  # chunked
    ("HTTP/1.1", b"HEAD", b"200 OK", [(b"Content-Type", b"text/plain")]),  # closed
    ("HTTP/1.0", b"GET", b"200 OK", [(b"Content-Length", b"5")]),  # Keep-Alive
    ("HTTP/1.0", b"GET", b"200 OK", []),  # closed
    ("HTTP/1.1", b"GET", b"304 Not Modified", [(b"ETag", b'"x"')]),
    ("HTTP/1.1", b"GET", b"204 No Content", []),
    ("HTTP/1.1", b"GET", b"101 Switching Protocols", []),
    ("HTTP/1.1", b"POST", b"413 Request Entity Too Large", [(b"Content-Length", b"0")]),
    ("HTTP/1.1", b"GET", b"200 OK", [(b"Connection", b"close"), (b"Server", b"app"), (b"Content-Length", b"0")]),
    ("HTTP/1.0", b"GET", b"200 OK", [(b"Connection", b"Keep-Alive"), (b"Content-Length", b"0")]),
]


@pytest.mark.parametrize(("protocol", "method", "status", "headers"), HEADER_CASES)
@pytest.mark.parametrize("close_connection", [False, True])
def test_the_header_block_is_cheroots(protocol, method, status, headers, close_connection):
    """header_block completes the headers as cheroot's send_headers does, but for Date, which it formats
    once a second (compared here without it). A cheroot release that completes them differently fails here."""

    class Collector:
        def write(self, data):
            self.data = data

    with serving(environ_app) as server, requests_of(server) as request_on:
        blocks, requests = [], []
        for _ in range(2):
            request = request_on(b"")
            request.response_protocol, request.method, request.status = protocol, method, status
            request.outheaders = list(headers)
            request.close_connection = close_connection
            requests.append(request)
        ours, theirs = requests
        blocks.append(response.header_block(ours))
        theirs.conn.wfile = Collector()
        theirs.rfile = cheroot_server.KnownLengthRFile(io.BytesIO(), 0)  # cheroot's drains what is left of a body
        cheroot_server.HTTPRequest.send_headers(theirs)
        blocks.append(theirs.conn.wfile.data)
    ours_lines, theirs_lines = (
        [line for line in block.split(b"\r\n") if not line.startswith(b"Date: ")] for block in blocks
    )
    assert ours_lines == theirs_lines
    assert all(block.count(b"\r\nDate: ") == 1 for block in blocks)
    assert (ours.close_connection, ours.chunked_write) == (theirs.close_connection, theirs.chunked_write)


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200 OK", [("Content-Type", "text/plain\r\nSet-Cookie: session=stolen")]),
        ("200 OK", [("X-Value", "a\nb")]),
        ("200 OK", [("X-Value", "a\x00b")]),
        ("200 OK", [("Bad Name", "x")]),
        ("200 OK", [("Bad:Name", "x")]),
        ("200 OK", [("", "x")]),
        ("200 OK", [(b"X-Bytes", "x")]),
        ("200 OK", [("X-Bytes", b"x")]),
        ("200 OK", [("X-Text", "\u2603")]),
        ("200 OK\r\nSet-Cookie: session=stolen", []),
        ("OK", []),
        (b"200 OK", []),
    ],
)
def test_a_header_that_could_split_the_response_is_a_500(status, headers):
    """cheroot sent CR and LF in a status or header as given (response splitting, CWE-113): a 500 now, with no
    trace of the header and no traceback (the connection is then closed, as after any failure of the application);
    the server serves the next connection."""

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/ok":
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]
        start_response(status, headers)
        return [b"body"]

    with serving(app) as server:
        ((status_line, head, body),) = exchange(
            server.bind_addr[1], b"GET /bad HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        ((ok_status, _, ok_body),) = exchange(
            server.bind_addr[1], b"GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
    assert status_line.startswith("HTTP/1.1 500")
    assert b"stolen" not in body and "stolen" not in str(head) and b"Traceback" not in body
    assert (ok_status, ok_body) == ("HTTP/1.1 200 OK", b"ok")


def test_a_header_name_is_remembered_only_up_to_a_bound(monkeypatch):
    monkeypatch.setattr(response, "_RESPONSE_NAMES", {})
    monkeypatch.setattr(response, "_CHECKED", {})

    def app(environ, start_response):
        start_response("200 OK", [(f"X-{index}", "v") for index in range(600)] + [("Content-Length", "0")])
        return [b""]

    with serving(app) as server:
        ((status, _, _),) = exchange(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert len(response._RESPONSE_NAMES) == 512
    assert len(response._CHECKED) == 601  # the headers checked, remembered up to 1024


def test_a_header_remembered_as_checked_is_given_back_as_sent(monkeypatch):
    monkeypatch.setattr(response, "_CHECKED", {})
    headers = [("Content-Type", "text/plain"), ["X-List", "a"], ("Content-Length", "2")]
    first = response.check_response("200 OK", headers)
    assert response.check_response("200 OK", headers) == first
    assert first == (
        b"200 OK",
        [(b"Content-Type", b"text/plain"), (b"X-List", b"a"), (b"Content-Length", b"2")],
        {b"content-type", b"x-list", b"content-length"},
        2,
    )
    with pytest.raises(ValueError):
        response.check_response("200 OK", [("X-Long", "v" * 300 + "\r\nSet-Cookie: a=b")])
    assert len(response._CHECKED) == 3  # not the bad one


def test_what_stopping_and_streams_rely_on():
    # SelectorWaker: cheroot's selector takes a registration with any object as data, and its loop hands a ready one
    # to server.process_conn, and stops once _stop_requested is set; ConnectionManager.stop() sets it and waits for
    # the loop, whose select() has expiration_interval for its timeout.
    manager = inspect.getsource(cheroot_server.connections.ConnectionManager._run)
    assert "while not self._stop_requested" in manager and "self.server.process_conn(conn)" in manager
    # ... after taking the key out of the selector: cheroot's stop does not close the waker, Server.stop does.
    assert manager.index("self._selector.unregister(sock_fd)") < manager.index("self.server.process_conn(conn)")
    assert "self._stop_requested = True" in inspect.getsource(cheroot_server.connections.ConnectionManager.stop)
    # Server.settled: ThreadPool.stop() empties _threads before it joins them, so they are taken before the stop.
    assert "self._threads[:] = self._threads[:], []" in inspect.getsource(
        type(wsgi.Server(("127.0.0.1", 0), None).requests)
    )
    # A TLS client gone mid-response becomes ConnectionResetError, which cheroot's communicate() ends quietly.
    assert errno.ECONNRESET in cheroot_server.errors.socket_errors_to_ignore
    assert "errors.socket_errors_to_ignore" in inspect.getsource(cheroot_server.HTTPConnection.communicate)


def test_a_stop_wakes_the_selector_at_once():
    # cheroot's own ConnectionManager.stop() waits out the select() timeout (expiration_interval: 0.5 s by default,
    # 30 s here) once the listening socket is out of the selector; the waker ends it at once.
    from devserver.server import ServingThread, create_server

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "0")])
        return []

    server = create_server(("127.0.0.1", 0), app, shutdown_timeout=1)
    server.expiration_interval = 30
    thread = ServingThread(server)
    thread.start_serving()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 10
    thread.join(5)
    assert not thread.is_alive()


def test_what_accept_pausing_relies_on():
    # prepare() makes a cheroot ConnectionManager, whose class accept_pausing swaps for a subclass; its loop calls
    # _from_server_socket for the listening socket, which lets an accept() error other than the ones it knows out.
    manager = cheroot_server.connections.ConnectionManager
    assert "self._from_server_socket(self.server.socket)" in inspect.getsource(manager._run)
    source = inspect.getsource(manager._from_server_socket)
    assert "server_socket.accept()" in source and source.rstrip().endswith("raise")
    server = wsgi.Server(("127.0.0.1", 0), None)
    server.prepare()
    try:
        assert type(server._connections) is manager
        assert not set(vars(private.ConnectionManager)) - {"__module__", "__doc__", "_from_server_socket"}
    finally:
        server.stop()


def test_an_application_that_closes_an_empty_wsgi_input_spoils_nothing():
    def app(environ, start_response):
        body = b"".join(environ["wsgi.input"]) + environ["wsgi.input"].read()
        environ["wsgi.input"].close()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    with serving(app) as server:
        for _ in range(2):
            ((status, _, body),) = exchange(
                server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            )
            assert (status, body) == ("HTTP/1.1 200 OK", b"")


def test_a_keep_alive_limit_set_on_the_server_is_honoured():
    with serving(environ_app) as server:
        server.keep_alive_conn_limit = 0
        ((_, headers, _),) = exchange(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert headers.get("Connection") == "close"


def test_a_defect_in_receiving_a_pipelined_request_closes_that_connection_only(monkeypatch):
    """A pipelined request is received on the worker that answered the one before it (cheroot's put_conn hands the
    connection straight back to process_conn), where an exception would stop the whole server."""
    import devserver.server

    receive = devserver.server.receive

    def failing_second(server, conn):
        if conn.parser.buffer.startswith(b"GET /two "):  # the pipelined request, handed back by put_conn
            raise RuntimeError("a defect")
        return receive(server, conn)

    monkeypatch.setattr(devserver.server, "receive", failing_second)
    with serving(environ_app) as server:
        answers = exchange(
            server.bind_addr[1], b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        assert [status for status, _, _ in answers] == ["HTTP/1.1 200 OK"]
        ((status, _, _),) = exchange(server.bind_addr[1], b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
