"""A client that tries to get past the server or take it down, over raw sockets: request framing (RFC 9112 §6, §7),
header syntax (RFC 9110 §5, RFC 9112 §5), limits, and bodies the application does not read. The bytes are those of
the hardening issue's findings; each was answered wrongly before."""

import json
import re
import socket
import time

import pytest

from .http import raw_request
from .wsgi import serving

SEEN = []


def app(environ, start_response):
    """Records each request's path; reads the body only on /read (so / answers like a view refusing a POST)."""
    SEEN.append(environ["PATH_INFO"])
    body = b""
    if environ["PATH_INFO"] == "/read":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    data = json.dumps({"path": environ["PATH_INFO"], "body": body.decode("latin-1")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


@pytest.fixture(scope="module")
def port():
    with serving(app, max_request_body_size=10 * 1024 * 1024) as server:
        yield server.bind_addr[1]


@pytest.fixture(autouse=True)
def _clear_seen():
    SEEN.clear()


def responses(data):
    """The status lines in what came back, in order."""
    return [line.decode() for line in re.findall(rb"HTTP/1\.[01] [0-9]{3} [^\r\n]*", data)]


def still_serving(port):
    data = raw_request(port, b"GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    return responses(data) == ["HTTP/1.1 200 OK"]


def served_throughout(port, seconds):
    """An ordinary request every 0.2 s for ``seconds``, each answered 200: the seconds each one took."""
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert still_serving(port)
        latencies.append(time.monotonic() - started)
        time.sleep(0.2)
    return latencies


def send_and_read(port, raw):
    """``raw_request`` for a server that may answer and close before it has taken all of ``raw``: what came back
    before the connection closed or was reset."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        try:
            client.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := client.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "transfer_encoding",
    [
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding : chunked\r\n",  # whitespace before the colon
        b"Transfer-Encoding:\r\n chunked\r\n",  # obs-fold
        b"Transfer-Encoding: Chunked\r\n",
    ],
)
def test_transfer_encoding_with_content_length_is_400_and_smuggles_nothing(port, transfer_encoding):
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\n"
        + transfer_encoding
        + b"Content-Length: %d\r\n\r\n0\r\n\r\n" % (5 + len(SMUGGLED))
        + SMUGGLED
    )
    data = raw_request(port, raw)
    assert responses(data) == ["HTTP/1.1 400 Bad Request"]
    assert b"Connection: close" in data or not data.endswith(b"HTTP/1.1")
    assert SEEN == []  # before: 403 for the POST, then 200 for the smuggled GET
    assert still_serving(port)


def test_a_chunked_body_the_application_does_not_read_is_not_the_next_request(port):
    data = raw_request(
        port,
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    assert responses(data) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]  # before: 200, then 400 Malformed Request-Line
    assert SEEN == ["/", "/second"]


def test_a_chunked_body_reaches_the_application_with_a_content_length(port):
    data = raw_request(
        port,
        b"POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n, you!\r\n0\r\nX-Trailer: dropped\r\n\r\n",
    )
    assert responses(data) == ["HTTP/1.1 200 OK"]
    assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"path": "/read", "body": "hello, you!"}


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",  # twenty-one f's: more than any body
        b"5\r\nhelloXX0\r\n\r\n",  # data not followed by CRLF
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0_5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhel",  # ends early
    ],
)
def test_bad_chunk_framing_is_400_without_a_traceback(port, body):
    data = raw_request(
        port,
        b"POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body,
        end_of_input=True,
    )
    status = responses(data)
    assert status in (["HTTP/1.1 400 Bad Request"], ["HTTP/1.1 413 Request Entity Too Large"])
    assert b"Traceback" not in data
    assert SEEN == []
    assert still_serving(port)


@pytest.mark.parametrize("value", [b"+3", b"-1", b"0_3", b" 3 3", b"3.0", b"0x3", b"99999999999999999999"])
def test_a_content_length_that_is_not_digits_is_400(port, value):
    data = raw_request(port, b"POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: " + value + b"\r\n\r\nabc")
    assert responses(data) == ["HTTP/1.1 400 Bad Request"]
    assert SEEN == []


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",  # NUL in a value
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",  # a bare CR
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A : a\r\n\r\n",  # whitespace between name and colon
        b"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n",  # an empty name
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost: h\r\nX(A): a\r\n\r\n",  # not a token
        b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n",  # no Host on HTTP/1.1 (RFC 9112 section 3.2)
        b"GET / HTTP/1.1\r\nHost: h\r\nHost: other\r\n\r\n",  # two Hosts
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",  # chunked not final
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # TE on HTTP/1.0
        b"GET /a\x00b HTTP/1.1\r\nHost: h\r\n\r\n",  # NUL in the request target (found by trying)
        b"GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",  # a method that is not a token
        b"GET / HTTP/1.1\nHost: h\n\n",  # bare LF line ends
    ],
)
def test_bad_header_syntax_is_400_and_reaches_no_application(port, head):
    data = raw_request(port, head)
    assert responses(data) == ["HTTP/1.1 400 Bad Request"]
    assert SEEN == []


def test_another_transfer_coding_is_501(port):
    data = raw_request(port, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    assert responses(data) == ["HTTP/1.1 501 Not Implemented"]


def test_http_1_0_needs_no_host(port):
    assert responses(raw_request(port, b"GET /old HTTP/1.0\r\n\r\n")) == ["HTTP/1.1 200 OK"]


def test_connection_close_is_compared_without_case(port):
    data = raw_request(
        port, b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert responses(data) == ["HTTP/1.1 200 OK"]  # closed after the first: the server does not wait for more


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", "414 Request-URI Too Long"),
        (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-A: b\r\n" * 10_000 + b"\r\n", "431 Request Header Fields Too Large"),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nX-A: " + b"b" * 10_000_000 + b"\r\n\r\n",
            "431 Request Header Fields Too Large",
        ),
    ],
    ids=["1 MB request line", "10,000 headers", "10 MB header"],
)
def test_a_request_head_over_the_limits(port, raw, status):
    data = send_and_read(port, raw)
    assert responses(data) == [f"HTTP/1.1 {status}"]
    assert SEEN == []
    assert still_serving(port)


@pytest.mark.parametrize("length", [10 * 1024 * 1024 + 1, 107374182400])
def test_a_body_over_the_limit_is_413_before_it_is_sent(port, length):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % length)
        data = client.recv(65536)  # answered without a byte of the body (before: MemoryError, or a 10 s wait)
    assert responses(data) == ["HTTP/1.1 413 Request Entity Too Large"]
    assert time.monotonic() - started < 2
    assert SEEN == []


def test_a_chunked_body_over_the_limit_is_413(port):
    chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
    head = b"POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        try:
            client.sendall(head + chunk * 11 + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = client.recv(65536)
    assert responses(data) == ["HTTP/1.1 413 Request Entity Too Large"]
    assert SEEN == []


def test_a_small_unread_body_is_dropped_and_the_connection_goes_on(port):
    body = b"x" * 100_000
    data = raw_request(
        port,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
        + b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    assert responses(data) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    assert SEEN == ["/", "/next"]


def test_a_large_unread_body_is_received_on_disk_and_the_connection_goes_on(port):
    # Before: cheroot read the whole rest into memory in one call (a 300 MB POST: +587 MiB). Now the body is
    # received before the application is called, past SPOOL_MEMORY into a temporary file.
    body = b"x" * (9 * 1024 * 1024)
    data = raw_request(
        port,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
        + b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        timeout=10,
    )
    assert responses(data) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    assert SEEN == ["/", "/next"]


@pytest.mark.slow
def test_slow_and_silent_clients_hold_no_worker_and_others_are_served():
    """Finding 7: 150 connections sending a byte every 2 s held all 100 workers; 0 of 28 ordinary requests were
    answered in 30 s. Here 200 such connections and 200 silent ones, for 6 s, against the default pool."""
    import threading

    stop = threading.Event()
    slow, silent = [], []
    with serving(app) as server:
        target = ("127.0.0.1", server.bind_addr[1])
        try:
            for _ in range(200):
                slow.append(socket.create_connection(target, timeout=5))
                silent.append(socket.create_connection(target, timeout=5))
            head = b"GET /slowloris HTTP/1.1\r\nHost: h\r\nX-Padding: " + b"p" * 100

            def drip():
                for position in range(len(head)):
                    for client in slow:
                        try:
                            client.send(head[position : position + 1])
                        except OSError:
                            pass
                    if stop.wait(2):
                        return

            dripper = threading.Thread(target=drip, daemon=True)
            dripper.start()
            latencies = served_throughout(target[1], 6)
            assert max(latencies) < 1, latencies
            assert server.pool_sizer.size < server.requests.max  # before: all 100 workers held
            assert server.pool_sizer.size <= server.requests.min + 2
            assert "/slowloris" not in SEEN
        finally:
            stop.set()
            for client in slow + silent:
                client.close()


@pytest.mark.slow
def test_a_head_that_does_not_arrive_in_time_is_408_and_a_silent_connection_is_closed():
    with serving(app, header_timeout=1) as server:
        target = ("127.0.0.1", server.bind_addr[1])
        with (
            socket.create_connection(target, timeout=5) as partial,
            socket.create_connection(target, timeout=5) as mute,
        ):
            partial.sendall(b"GET /late HTTP/1.1\r\nHost: h\r\n")
            started = time.monotonic()
            data = partial.recv(65536)
            assert responses(data) == ["HTTP/1.1 408 Request Timeout"]
            assert partial.recv(65536) == b""
            assert mute.recv(65536) == b""  # closed, with nothing said: it never started a request
            assert 0.9 < time.monotonic() - started < 3
    assert SEEN == []


def test_a_head_sent_a_byte_at_a_time_within_the_deadline_is_served(port):
    raw = b"GET /bytewise HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in raw:
            client.sendall(bytes([byte]))
            time.sleep(0.005)
        data = client.recv(65536)
    assert responses(data) == ["HTTP/1.1 200 OK"] and SEEN == ["/bytewise"]


@pytest.mark.slow
def test_slow_bodies_hold_no_worker_and_others_are_served():
    """A client that sends a whole head and then its body a byte at a time held a worker per connection (R.U.D.Y.).
    Here 150 such clients, half with a Content-Length, half chunked, drip for 5 s against the default pool; an
    ordinary client is answered throughout, and then each slow body reaches the application whole."""
    import threading

    clients = []
    stop = threading.Event()
    dripper = None
    with serving(app) as server:
        target = ("127.0.0.1", server.bind_addr[1])
        try:
            bodies = []
            for index in range(150):
                client = socket.create_connection(target, timeout=10)
                if index % 2:
                    framing, body = b"Content-Length: 6\r\n", b"abcdef"
                else:
                    framing, body = b"Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
                client.sendall(b"POST /read HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" + framing + b"\r\n")
                clients.append(client)
                bodies.append(body)

            sent = [0] * len(clients)

            def drip():
                while not stop.wait(0.5):
                    for index, (client, body) in enumerate(zip(clients, bodies, strict=True)):
                        if sent[index] < len(body) - 1:  # the last byte is sent after the test below
                            client.send(body[sent[index] : sent[index] + 1])
                            sent[index] += 1

            dripper = threading.Thread(target=drip, daemon=True)
            dripper.start()
            latencies = served_throughout(target[1], 5)
            stop.set()
            dripper.join()
            assert max(latencies) < 1, latencies
            assert server.pool_sizer.size <= server.requests.min + 2  # before: one worker per slow body
            assert SEEN.count("/ok") == len(latencies) and "/read" not in SEEN
            assert min(sent) >= 5
            for index, (client, body) in enumerate(zip(clients, bodies, strict=True)):
                client.sendall(body[sent[index] :])
            for client in clients:
                data = b""
                while chunk := client.recv(65536):
                    data += chunk
                assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"path": "/read", "body": "abcdef"}
        finally:
            stop.set()
            if dripper is not None:
                dripper.join()
            for client in clients:
                client.close()


def test_a_body_is_received_after_100_continue_and_before_the_application_runs(port):
    for framing, body in [
        (b"Content-Length: 5\r\n", b"hello"),
        (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(
                b"POST /read HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nConnection: close\r\n" + framing + b"\r\n"
            )
            assert client.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
            assert SEEN == []  # the application is called once the body is there
            client.sendall(body)
            data = b""
            while chunk := client.recv(65536):
                data += chunk
        assert responses(data) == ["HTTP/1.1 200 OK"]  # and no second 100 Continue
        assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"path": "/read", "body": "hello"}
        SEEN.clear()


@pytest.mark.slow
def test_a_body_that_stops_coming_is_408_and_reaches_no_application():
    with serving(app, timeout=1) as server, socket.create_connection(server.bind_addr, timeout=5) as client:
        client.sendall(b"POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        data = client.recv(65536)
        assert responses(data) == ["HTTP/1.1 408 Request Timeout"]
        assert 0.9 < time.monotonic() - started < 3
    assert SEEN == []


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_sent_a_byte_at_a_time_then_a_pipelined_request(port, framing):
    if framing == "length":
        head, body = b"Content-Length: 11\r\n", b"hello, you!"
    else:
        head, body = b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n6;x=y\r\n, you!\r\n0\r\nT: t\r\n\r\n"
    raw = b"POST /read HTTP/1.1\r\nHost: h\r\n" + head + b"\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in raw:
            client.sendall(bytes([byte]))
            time.sleep(0.002)
        client.sendall(b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    assert responses(data) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    assert b'"body": "hello, you!"' in data
    assert SEEN == ["/read", "/next"]


def test_a_received_body_the_application_does_not_read_is_not_read_into_memory(port, monkeypatch):
    # cheroot reads what the application left of the body in one call before answering: a received 9 MiB body
    # was read back from its temporary file whole.
    from cheroot import server as cheroot_server

    sizes = []
    read = cheroot_server.KnownLengthRFile.read

    def recording_read(self, size=None):
        sizes.append(self.remaining if size is None or size < 0 else size)
        return read(self, size)

    monkeypatch.setattr(cheroot_server.KnownLengthRFile, "read", recording_read)
    for framing, body in [
        (b"Content-Length: %d\r\n" % (9 * 1024 * 1024), b"x" * (9 * 1024 * 1024)),
        (b"Transfer-Encoding: chunked\r\n", (b"100000\r\n" + b"x" * 0x100000 + b"\r\n") * 9 + b"0\r\n\r\n"),
    ]:
        data = raw_request(
            port,
            b"POST / HTTP/1.1\r\nHost: h\r\n" + framing + b"\r\n" + body + b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n",
            timeout=10,
            end_of_input=True,
        )
        assert responses(data) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    assert max(sizes, default=0) <= 65536


def test_the_servers_own_answers_are_in_the_access_log(port, caplog):
    caplog.set_level("INFO", logger="django.server")
    send_and_read(port, b"GET /x HTTP/1.1\r\nHost: h\r\nBad Header: y\r\n\r\n")  # 400, parsed as far as the line
    send_and_read(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")  # 414 before the line is whole
    send_and_read(port, b"POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n")  # 413
    lines = [record.getMessage() for record in caplog.records if record.name == "django.server"]
    assert any(line.startswith('127.0.0.1 "GET /x HTTP/1.1" 400 ') for line in lines), lines
    assert any(line.startswith('127.0.0.1 "-" 414 ') for line in lines), lines
    assert any(line.startswith('127.0.0.1 "POST /read HTTP/1.1" 413 ') for line in lines), lines
    assert still_serving(port)
    ok = [record.getMessage() for record in caplog.records if '"GET /ok HTTP/1.1" 200' in record.getMessage()]
    assert len(ok) == 1  # a request the application answered is logged once


def test_a_500_for_an_application_that_fails_is_in_the_access_log_once(caplog):
    """An application that raises before its response, or gives start_response a header that could split the
    response, gets cheroot's 500; the access log has it, once."""
    caplog.set_level("INFO", logger="django.server")

    def failing(environ, start_response):
        if environ["PATH_INFO"] == "/raise":
            raise RuntimeError("boom")
        start_response("200 OK", [("X-A", "a\x01b")])
        return [b"never"]

    with serving(failing) as server:
        for path in (b"/raise", b"/split"):
            answer = raw_request(server.bind_addr[1], b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 500 ") and b"boom" not in answer and b"\x01" not in answer
    lines = [record.getMessage() for record in caplog.records if record.name == "django.server"]
    for path in ("/raise", "/split"):
        assert sum(f'"GET {path} HTTP/1.1" 500 ' in line for line in lines) == 1, lines


@pytest.mark.slow
def test_a_request_timeout_is_in_the_access_log(caplog):
    caplog.set_level("INFO", logger="django.server")
    with serving(app, header_timeout=1) as server, socket.create_connection(server.bind_addr, timeout=5) as client:
        client.sendall(b"GET /late HTTP/1.1\r\nHost: h\r\n")
        assert responses(client.recv(65536)) == ["HTTP/1.1 408 Request Timeout"]
    assert any(record.getMessage().startswith('127.0.0.1 "-" 408 16') for record in caplog.records)
