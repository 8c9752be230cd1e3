"""devserver.server's request reading and WSGI gateway over raw sockets: what an application sees and what a
client gets, including malformed input."""

import json
import socket

import pytest

from .http import exchange, raw_request
from .waiting import eventually
from .wsgi import serving


def echo_app(environ, start_response):
    """Answers with the environ's str values (and the request body) as JSON."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    seen = {key: value for key, value in environ.items() if isinstance(value, str)}
    seen["body"] = body.decode("latin-1")
    seen["file_wrapper"] = environ.get("wsgi.file_wrapper").__name__
    data = json.dumps(seen).encode()
    if environ["PATH_INFO"] == "/bad-header":
        start_response("200 OK", [("X-Number", 42)])
        return [b""]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


@pytest.fixture(scope="module")
def port():
    with serving(echo_app) as server:
        yield server.bind_addr[1]


def environ_of(port, raw):
    ((status, _, body),) = exchange(port, raw)
    assert status == "HTTP/1.1 200 OK", body
    return json.loads(body)


def test_the_environ(port):
    seen = environ_of(
        port,
        b"POST /a%20path/x?q=1&r=%20 HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\nX-Custom: one\r\nConnection: close\r\n\r\nhello",
    )
    assert seen["REQUEST_METHOD"] == "POST"
    assert seen["PATH_INFO"] == "/a path/x"
    assert seen["QUERY_STRING"] == "q=1&r=%20"
    assert seen["REQUEST_URI"] == "/a%20path/x?q=1&r=%20"
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["SERVER_PORT"] == str(port)
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["wsgi.url_scheme"] == "http"
    assert seen["CONTENT_TYPE"] == "text/plain" and "HTTP_CONTENT_TYPE" not in seen
    assert seen["CONTENT_LENGTH"] == "5" and "HTTP_CONTENT_LENGTH" not in seen
    assert seen["HTTP_HOST"] == "example.test"
    assert seen["HTTP_X_CUSTOM"] == "one"
    assert seen["body"] == "hello"
    assert seen["file_wrapper"] == "FileIterator"


def test_header_names_are_case_insensitive_and_comma_separated_ones_are_folded(port):
    seen = environ_of(
        port,
        b"GET / HTTP/1.1\r\nhost: h\r\nACCEPT: text/html\r\naccept: application/json\r\nx-one: 1\r\n"
        b"X-One: 2\r\nConnection: close\r\n\r\n",
    )
    assert seen["HTTP_ACCEPT"] == "text/html, application/json"
    assert seen["HTTP_X_ONE"] == "2"  # not a list header: the last one wins


def test_headers_with_underscores_are_dropped(port):
    seen = environ_of(
        port,
        b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_Proto: https\r\nX-Forwarded-Proto: http\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert seen["HTTP_X_FORWARDED_PROTO"] == "http"


def test_a_header_line_longer_than_the_read_buffer(port):
    long_value = "v" * 20000
    seen = environ_of(port, f"GET / HTTP/1.1\r\nHost: h\r\nX-Long: {long_value}\r\nConnection: close\r\n\r\n".encode())
    assert seen["HTTP_X_LONG"] == long_value


def test_pipelined_requests_are_answered_in_order(port):
    responses = exchange(
        port,
        b"GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /third HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    assert [json.loads(body)["PATH_INFO"] for _, _, body in responses] == ["/first", "/second", "/third"]


def test_a_request_sent_a_byte_at_a_time(port):
    raw = b"GET /slow HTTP/1.1\r\nHost: h\r\nX-A: b\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in raw:
            client.sendall(bytes([byte]))
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(data.partition(b"\r\n\r\n")[2])["HTTP_X_A"] == "b"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n continuation first\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\nX-Bare-LF: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: nope\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
    ],
)
def test_malformed_headers_get_400_and_the_server_carries_on(port, raw):
    ((status, _, _),) = exchange(port, raw)
    assert status.startswith("HTTP/1.1 400")
    assert environ_of(port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")["PATH_INFO"] == "/"


def test_repeated_content_length_headers_that_agree_are_accepted(port):
    seen = environ_of(
        port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    )
    assert (seen["CONTENT_LENGTH"], seen["body"]) == ("2", "hi")


def test_a_header_that_is_not_str_is_a_500(port):
    ((status, _, body),) = exchange(port, b"GET /bad-header HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert status.startswith("HTTP/1.1 500")
    assert b"Traceback" not in body


def test_a_graceful_stop_serves_requests_still_arriving_and_takes_no_new_connection():
    """cheroot's stop() closed every connection whose request had not all arrived, with the listening socket: a
    client that had just connected got no response (seen as failures during a rolling restart of --workers)."""
    import threading
    import time

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with serving(app, shutdown_timeout=5) as server:
        address = ("127.0.0.1", server.bind_addr[1])
        partial = socket.create_connection(address, timeout=5)
        partial.sendall(b"GET /late HTTP/1.1\r\nHost: h\r\n")
        fresh = socket.create_connection(address, timeout=5)  # accepted, nothing sent yet
        time.sleep(0.1)
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        time.sleep(0.7)  # longer than cheroot's selector takes to notice a stop (0.5 s); less than FRESH_CONNECTION
        assert stopping.is_alive()  # waiting for them
        partial.sendall(b"\r\n")
        fresh.sendall(b"GET /fresh HTTP/1.1\r\nHost: h\r\n\r\n")
        for client in (partial, fresh):
            data = b""
            while chunk := client.recv(65536):
                data += chunk
            client.close()
            assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data and data.endswith(b"ok")
        stopping.join(5)
        assert not stopping.is_alive()


def test_keep_alive_closes_an_idle_connection_after_its_seconds():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    with (
        serving(app, keep_alive=1, timeout=30) as server,
        socket.create_connection(server.bind_addr, timeout=8) as client,
    ):
        client.sendall(request)
        assert client.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert client.recv(65536) == b""  # closed after --keep-alive's second, not the 30 s of timeout
    with serving(app, keep_alive=0) as server:
        answer = raw_request(server.bind_addr[1], request)  # read until the server closes
    assert b"Connection: close" in answer
    with serving(app, keep_alive=7) as server:
        answer = raw_request(
            server.bind_addr[1], b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", end_of_input=True
        )
    assert b"Keep-Alive: timeout=7" in answer


def test_past_max_connections_a_new_connection_gets_503_and_the_others_are_served():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    request = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    with serving(app, max_connections=2) as server:
        held = [socket.create_connection(server.bind_addr, timeout=5) for _ in range(2)]
        try:
            eventually(lambda: server.connections_open == 2)
            answer = raw_request(server.bind_addr[1], request)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"Retry-After: 1\r\n" in answer
            held[0].sendall(request)  # the connections already open are served
            assert held[0].recv(65536).startswith(b"HTTP/1.1 200 OK")
            held[0].close()
            eventually(lambda: server.connections_open == 1)
            assert raw_request(server.bind_addr[1], request).startswith(b"HTTP/1.1 200 OK")
        finally:
            for sock in held:
                sock.close()
        eventually(lambda: server.connections_open == 0)
