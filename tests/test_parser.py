"""The request parser of ``devserver.http.parser``, with no socket: tables of bytes in and verdicts out, in the manner
of h11's and waitress's parser tests; then, over HTTP on loopback, that each request's head is parsed once."""

import socket

import pytest

from devserver.http import parser as parser_module
from devserver.http.parser import Limits, Message, Parser, Refusal

from .waiting import eventually
from .wsgi import serving

LIMITS = Limits(request_line=64, header_size=256, headers=5, body_size=100)


def head(*lines, request_line=b"POST / HTTP/1.1", host=b"Host: h"):
    return b"\r\n".join((request_line, *((host,) if host else ()), *lines)) + b"\r\n\r\n"


def verdict(data, limits=LIMITS):
    """What the parser makes of ``data`` fed at once: a ``Refusal``'s status code, ``None`` (it needs more), or the
    message's ``(length, chunked, expect_continue)`` for a head whose body is still to come, or its body."""
    parser = Parser(limits)
    result = parser.feed(data)
    try:
        if result is None:
            message = parser.message
            return None if message is None else (message.length, message.chunked, message.expect_continue)
        if type(result) is Refusal:
            return int(result.status[:3])
        return ("body", result.body.read() if result.body else b"")
    finally:
        parser.close()
        if type(result) is Message:
            result.close()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (head(), ("body", b"")),
        (head(b"Content-Length: 5"), (5, False, False)),
        (head(b"content-LENGTH:5  "), (5, False, False)),
        (head(b"Content-Length: 5", b"Content-Length: 5"), (5, False, False)),
        (head(b"Content-Length: 0"), ("body", b"")),
        (head(b"Content-Length: 5") + b"hello", ("body", b"hello")),
        (head(b"Transfer-Encoding: chunked"), (None, True, False)),
        (head(b"Transfer-Encoding: Chunked", b"Expect: 100-continue"), (None, True, True)),
        (head(b"Content-Length: 5", b"expect: 100-Continue"), (5, False, True)),
        (head(b"Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n", ("body", b"hello")),
        # RFC 9110 §5.6.1: empty list elements are ignored, so these are chunked too (issue 20, item 5: one reader
        # took the empty line for chunked and another did not).
        (head(b"Transfer-Encoding:", b"Transfer-Encoding: chunked"), (None, True, False)),
        (head(b"Transfer-Encoding: ,chunked"), (None, True, False)),
        (head(b"Transfer-Encoding: chunked,"), (None, True, False)),
        (head(b"Transfer-Encoding: chunked", b"Transfer-Encoding:"), (None, True, False)),
        # RFC 9112 §6.1, §6.3: refused before any body.
        (head(b"Transfer-Encoding:"), 400),
        (head(b"Content-Length: 101"), 413),
        (head(b"Content-Length: +5"), 400),
        (head(b"Content-Length: 5, 5"), 400),
        (head(b"Content-Length: 5", b"Content-Length: 6"), 400),
        (head(b"Transfer-Encoding: chunked", b"Content-Length: 5"), 400),
        (head(b"Transfer-Encoding: gzip, chunked"), 501),
        (head(b"Transfer-Encoding: chunked, gzip"), 400),
        (head(b"Transfer-Encoding: chunked, chunked"), 400),
        (head(b"Transfer-Encoding: chunked", request_line=b"POST / HTTP/1.0"), 400),
        (head(b"Transfer-Encoding : chunked", b"Content-Length: 5"), 400),
        (head(b"Content-Length : 5"), 400),
        (head(b"X: y", b" Content-Length: 5"), 400),  # obs-fold
        (head(b"X: a\rb"), 400),
        (head(b"foo_bar"), 400),  # a line with no colon, whose name would be dropped for its "_"
        (head(b"no colon"), 400),
        (head(b"X: a\x00b"), 400),
        (b"POST / HTTP/1.1\r\nHost: h\nContent-Length: 5\r\n\r\n", 400),  # a bare LF
        (b"POST / HTTP/1.1\r\nHost: h\n\n", 400),
        (b"POST /\r\nContent-Length: 5 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        # Host (RFC 9112 §3.2, RFC 3986 §3.2.2): one, of host[:port] syntax; none on HTTP/1.0 is fine.
        (head(host=None), 400),
        (head(host=None, request_line=b"GET / HTTP/1.0"), ("body", b"")),
        (head(b"Host: h"), 400),
        (head(host=b"Host: a b/c@d"), 400),
        (head(host=b"Host: a/b"), 400),
        (head(host=b"Host: user@h"), 400),
        (head(host=b"Host: [::1]:8000"), ("body", b"")),
        (head(host=b"Host: example.com:"), ("body", b"")),
        (head(host=b"Host: xn--caf-dma.example:443"), ("body", b"")),
        # Limits: 414, 431 (bytes, fields), and a head still arriving.
        (head(request_line=b"GET /" + b"a" * 60 + b" HTTP/1.1"), 414),
        (b"GET /" + b"a" * 400, 414),
        (head(b"X: " + b"v" * 300), 431),
        (head(b"A: 1", b"B: 2", b"C: 3", b"D: 4", b"E: 5"), 431),
        (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: " + b"v" * 300, 431),
        (b"GET / HTTP/1.1\r\nHost: h\r\n", None),
    ],
)
def test_heads(data, expected):
    assert verdict(data) == expected


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (b"GET /a?b=c HTTP/1.1", (b"/a", b"b=c", b"", b"h")),
        (b"GET //path HTTP/1.1", (b"//path", b"", b"", b"h")),  # origin-form (RFC 9112 §3.2.1), not an authority
        (b"GET /a%2Fb%20c HTTP/1.1", (b"/a%2Fb c", b"", b"", b"h")),
        # RFC 9112 §3.2.2: the absolute-form must be accepted, and its authority replaces Host.
        (b"GET http://example.com/p?q=1 HTTP/1.1", (b"/p", b"q=1", b"example.com", b"example.com")),
        (b"GET HTTPS://example.com:8443 HTTP/1.1", (b"/", b"", b"example.com:8443", b"example.com:8443")),
        (b"OPTIONS * HTTP/1.1", (b"*", b"", b"", b"h")),
    ],
)
def test_request_targets(line, fields):
    message = Parser(Limits()).feed(line + b"\r\nHost: h\r\n\r\n")
    assert (message.path, message.qs, message.authority, message.headers[b"Host"]) == fields


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GET http://user@h/ HTTP/1.1", 400),  # RFC 9110 §4.2.4: userinfo is an error
        (b"GET http:///x HTTP/1.1", 400),  # §4.2.1: an empty host is invalid
        (b"GET ftp://h/x HTTP/1.1", 400),
        (b"GET h/x HTTP/1.1", 400),
        (b"GET * HTTP/1.1", 400),
        (b"CONNECT h:443 HTTP/1.1", 405),
        (b"GET /a#b HTTP/1.1", 400),
        (b"GET /caf\xc3\xa9 HTTP/1.1", 400),
        (b"GET / HTTP/2.0", 505),
        (b"GET / HTTP/1.2", 505),
        (b"GET / HTTP/1.00", 400),
        (b"get / HTTP/1.1", 400),
        (b" GET / HTTP/1.1", 400),
    ],
)
def test_refused_request_lines(line, status):
    refusal = Parser(Limits()).feed(line + b"\r\nHost: h\r\n\r\n")
    assert type(refusal) is Refusal and int(refusal.status[:3]) == status


def test_fields_as_the_gateway_sees_them():
    message = Parser(Limits()).feed(
        b"GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b\r\nX-One:  1 \r\nX_Forwarded_Proto: https\r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\nConnection: Close\r\n\r\n"
    )
    assert message.headers == {
        b"Host": b"h",
        b"Accept": b"a, b",
        b"X-One": b"1",
        b"Cookie": b"b=2",
        b"Connection": b"Close",
    }
    assert not message.keep_alive  # tokens compared without case
    http10 = Parser(Limits()).feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert http10.keep_alive and http10.response_protocol == "HTTP/1.0"


REQUESTS = (
    b"POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /two HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: t\r\n\r\n"
    b"GET /three HTTP/1.1\r\nHost: h\r\n\r\n"
)


@pytest.mark.parametrize("size", [1, 2, 7, 50, len(REQUESTS)])
def test_the_same_requests_however_the_bytes_come(size):
    parser, seen = Parser(Limits()), []
    for start in range(0, len(REQUESTS), size):
        result = parser.feed(REQUESTS[start : start + size])
        while result is not None:
            assert type(result) is Message
            seen.append((result.path, result.body.read() if result.body else b""))
            result.close()
            result = parser.feed(b"") if parser.buffer else None
    assert seen == [(b"/one", b"hello"), (b"/two", b"abcde"), (b"/three", b"")]
    assert not parser.receiving


def test_a_head_in_pieces_is_found_wherever_its_blank_line_falls():
    for cut in range(1, 30):
        data = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        parser, seen = Parser(Limits()), []
        for piece in (data[:cut], data[cut:], b""):
            result = parser.feed(piece)
            while result is not None:
                seen.append(result.path)
                result = parser.feed(b"")
        assert seen == [b"/a", b"/b"], cut


def test_100_continue_is_wanted_until_the_body_starts():
    parser = Parser(Limits())
    assert parser.feed(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n") is None
    assert parser.expects_continue and parser.receiving
    assert parser.feed(b"ab") is None and not parser.expects_continue
    assert parser.feed(b"cd").body.read() == b"abcd"


def test_the_end_of_input():
    parser = Parser(Limits())
    assert parser.feed(b"GET / HT") is None and parser.receiving
    assert parser.end_of_input() is None  # mid-head: nothing to answer
    assert parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc") is None
    refusal = parser.end_of_input()  # mid-body: the client may still read a 400
    assert refusal.status == "400 Bad Request" and refusal.request_line == (b"POST", b"/", b"HTTP/1.1")
    assert not parser.receiving


def test_a_bad_body_is_refused_and_the_rest_dropped():
    parser = Parser(LIMITS)
    refusal = parser.feed(head(b"Transfer-Encoding: chunked") + b"zz\r\nGET /smuggled HTTP/1.1\r\n\r\n")
    assert refusal.status == "400 Bad Request" and parser.buffer == b""
    too_large = Parser(LIMITS).feed(head(b"Transfer-Encoding: chunked") + b"65\r\n")
    assert too_large.status.startswith("413")


def test_repeated_field_lines_give_the_same_verdict_each_time():
    """The parser remembers its last verdict on the field lines (keep-alive requests repeat them byte for byte): what
    it gives is the same, and each request gets headers of its own."""
    parser = Parser(Limits())
    fields = b"Host: h\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\n\r\n"
    first = parser.feed(b"POST /a HTTP/1.1\r\n" + fields + b"1\r\nx\r\n0\r\n\r\n")
    second = parser.feed(b"POST /b HTTP/1.1\r\n" + fields + b"2\r\nyz\r\n0\r\n\r\n")
    assert (first.path, first.body.read(), second.path, second.body.read()) == (b"/a", b"x", b"/b", b"yz")
    assert first.headers == {b"Host": b"h", b"Accept": b"*/*", b"Content-Length": b"1"}
    assert second.headers == {b"Host": b"h", b"Accept": b"*/*", b"Content-Length": b"2"}
    first.close()
    second.close()
    # The same lines under another version, or with an absolute-form target, are judged again.
    refusal = parser.feed(b"POST /c HTTP/1.0\r\n" + fields)
    assert refusal.status == "400 Bad Request"
    parser = Parser(Limits())
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").headers[b"Host"] == b"h"
    assert parser.feed(b"GET http://other/ HTTP/1.1\r\nHost: h\r\n\r\n").headers[b"Host"] == b"other"
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").headers[b"Host"] == b"h"


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    data = f"{environ['PATH_INFO']} {environ.get('HTTP_HOST')} {len(body)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def test_each_head_is_parsed_once(monkeypatch):
    """The done-when of issue 17: the parser's entry point runs once per request, whether the head comes in pieces,
    with a body that trickles in, or pipelined behind another request."""
    parsed, fed = [], []
    parse_head, feed = parser_module.parse_head, Parser.feed

    def counting_parse_head(data, *args):
        parsed.append(data.split(b" ", 2)[1])
        return parse_head(data, *args)

    def counting_feed(self, data):
        fed.append(len(data))
        return feed(self, data)

    monkeypatch.setattr(parser_module, "parse_head", counting_parse_head)
    monkeypatch.setattr(Parser, "feed", counting_feed)
    pieces = [b"POST /a HTTP/1.1\r\nHo", b"st: h\r\nContent-Length: 6\r\n", b"\r\nabc", b"def"]
    pieces.append(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    with serving(echo) as server, socket.create_connection(server.bind_addr, timeout=5) as client:
        for piece in pieces:
            count = len(fed)
            client.sendall(piece)
            eventually(lambda count=count: len(fed) > count)  # the server has read this piece before the next
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3 and data.endswith(b"/c h 0") and b"/a h 6" in data
    assert parsed == [b"/a", b"/b", b"/c"]
