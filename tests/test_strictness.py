"""Stricter where a front end could be fooled (issue 20): the trailer section, chunk-size lines and the request
line, each a table of bytes in and the verdict out; the decoder with no socket, the request line over raw HTTP."""

import io
import socket

import pytest

from devserver.http.parser import ChunkedDecoder
from devserver.http.parser import MalformedBody as _MalformedBody

from .http import exchange, raw_request
from .wsgi import serving


def decode(data):
    out = io.BytesIO()
    decoder = ChunkedDecoder(out, 0)
    used = decoder.feed(data)
    return out.getvalue(), decoder.done, used


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5 ; a = b\r\nhello\r\n0\r\n\r\n", b"hello"),  # BWS around ";" and "=" (RFC 9112 §7.1.1)
        (b'5;a;b=c;d="q \\" x"\r\nhello\r\n0\r\n\r\n', b"hello"),  # a quoted-string value
        (b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nY:\r\n\r\n", b"hello"),  # trailer field lines
    ],
)
def test_valid_chunked_bodies(body, expected):
    data, done, used = decode(body)
    assert (data, done, used) == (expected, True, len(body))


@pytest.mark.parametrize(
    "body",
    [
        # Trailer lines that are not field lines (RFC 9112 §7.1.2): a request smuggled where a front end that ends the
        # message at the last chunk, or takes a bare CR for a line end, sees one.
        b"0\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n",
        b"0\r\n\rGET /smuggled HTTP/1.1\r\n\r\n",
        b"0\r\nno colon\r\n\r\n",
        b"0\r\nX: a\r\n folded\r\n\r\n",  # obs-fold
        b"0\r\nX: t\x00\r\n\r\n",
        b"0\r\nX: t\r\r\n\r\n",
        b"0\r\nX : t\r\n\r\n",
        # Chunk-size lines (§7.1.1): whitespace only around ";" and "=", extensions of tokens and quoted strings.
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\t\r\nhello\r\n0\r\n\r\n",
        b"5;\x00\r\nhello\r\n0\r\n\r\n",
        b'5;ext=1"\r\nhello\r\n0\r\n\r\n',
        b"5;a\rX\r\nhello\r\n0\r\n\r\n",
        b"5;\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_malformed_chunked_bodies_are_refused(body):
    with pytest.raises(_MalformedBody):
        decode(body)


def app(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {environ['SERVER_PROTOCOL']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def port():
    with serving(app) as server:
        yield server.bind_addr[1]


@pytest.mark.parametrize(
    "line",
    [
        # RFC 9112 §2.3: one digit on each side of the dot (cheroot read them with int()).
        b"GET /x HTTP/+1.1",
        b"GET /x HTTP/ 1.1",
        b"GET /x HTTP/1.\t1",
        b"GET /x HTTP/01.1",
        b"GET /x HTTP/1.01",
        b"GET /x HTTP/1.00",
        # §3: no whitespace around the line, one space between its parts (cheroot stripped it; nginx refuses it).
        b" GET /x HTTP/1.1",
        b"\x0bGET /x HTTP/1.1",
        b"\tGET /x HTTP/1.1",
        b"GET /x HTTP/1.1\x0c",
        b"GET /x HTTP/1.1\r",
        b"GET  /x HTTP/1.1",
        b"GET /x  HTTP/1.1",
        b"GET /x%zz HTTP/1.1 ",
    ],
)
def test_a_malformed_request_line_is_a_400_and_the_connection_closes(port, line):
    answer = raw_request(port, line + b"\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert answer.count(b"HTTP/1.1 ") == 1  # nothing after it is taken for a request


@pytest.mark.parametrize(
    "line, seen",
    [
        (b"GET /x HTTP/1.1", b"GET /x HTTP/1.1"),
        (b"GET /x%20y?q=1 HTTP/1.1", b"GET /x y HTTP/1.1"),  # not the fast path: cheroot's parse
        (b"get /x HTTP/1.0", None),  # a method is case-sensitive: cheroot's strict mode refuses it
        (b"\r\nGET /x HTTP/1.1", b"GET /x HTTP/1.1"),  # one empty line before the request line is ignored (§2.2)
    ],
)
def test_valid_request_lines_are_served(port, line, seen):
    answer = raw_request(port, line + b"\r\nHost: a\r\nConnection: close\r\n\r\n")
    if seen is None:
        assert answer.startswith(b"HTTP/1.1 400 "), answer
    else:
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(seen), answer


@pytest.mark.parametrize(
    "framing", [b"Transfer-Encoding:\r\nTransfer-Encoding: chunked", b"Transfer-Encoding: ,chunked"]
)
def test_a_body_that_stops_midway_holds_no_thread(framing):
    """Issue 20, item 5: the selector's framing code read an empty Transfer-Encoding line before ``chunked`` as no
    body while the header reader read it as chunked, so a worker read the body, blocking: with one thread, a client
    that stopped mid-body left every other request unanswered. One parse of the head frames it once; the body is
    received on the selector's thread, and the other client is answered at once (not after the 30 s timeouts)."""
    with (
        serving(app, numthreads=1, max=1, timeout=30, header_timeout=30) as server,
        socket.create_connection(server.bind_addr, timeout=5) as stalled,
    ):
        stalled.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n\r\n5\r\nhel")
        ((status, _, body),) = exchange(
            server.bind_addr[1], b"GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        assert (status, body) == ("HTTP/1.1 200 OK", b"GET /other HTTP/1.1")
        stalled.sendall(b"lo\r\n0\r\n\r\n")  # and the first request, once whole, is served
        assert stalled.recv(65536).startswith(b"HTTP/1.1 200 OK")
