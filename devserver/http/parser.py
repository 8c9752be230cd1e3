"""HTTP/1.1 requests parsed from bytes, with no I/O: ``Parser.feed(data)`` answers ``None`` (need more), a
``Message`` (a whole request: its head parsed, its body received) or a ``Refusal`` (the status to answer with, and
why; the connection is then closed).

Every rule of the request's syntax, framing and limits is here, once: the request line (RFC 9112 §3), the field
lines (RFC 9112 §5, RFC 9110 §5), Host (RFC 9112 §3.2), the framing (RFC 9112 §6: Content-Length, Transfer-Encoding),
the chunked coding (RFC 9112 §7.1) and the body, held in memory and then in a temporary file. The selector's side
(``devserver.http.receive``) feeds it what the socket gives; the worker gets the ``Message``. Its tests are tables of
bytes in and verdicts out (``tests/test_parser.py``); ``tests/test_differential.py`` compares it with llhttp.
"""

import io
import re
import tempfile
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

__all__ = [
    "FRAMING_ALLOWANCE",
    "MAX_TRAILER_LINES",
    "SPOOL_MEMORY",
    "ChunkedDecoder",
    "Limits",
    "MalformedBody",
    "BodyTooLarge",
    "Message",
    "Parser",
    "Refusal",
    "head_end",
    "parse_head",
]

SPOOL_MEMORY = 64 * 1024
"""Bytes of a request body held in memory before it is spooled to a temporary file: a thousand connections that
stall their uploads midway hold 64 MiB."""

MAX_TRAILER_LINES = 100
"""Trailer lines after a chunked body are read and dropped; more than this many is a 400."""

FRAMING_ALLOWANCE = 4096
"""Bytes of chunked framing (size lines, extensions, the CRLF after each chunk, trailers) a body may have before it
must carry at least 8 bytes of data for each byte of framing: decoding costs about 4 µs a chunk, so a body of
one-byte chunks (or of long extensions, as in Node's CVE-2024-22019) would cost far more to read than to send."""

_TOKEN_TEXT = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
TOKEN = re.compile(_TOKEN_TEXT)
# RFC 9110 §5.1: a field name is a token; §5.5: a field value is visible characters, SP and HTAB (obs-text too).
# One match per line (without its CRLF): the name, and the value without the blanks before it (those after it are
# stripped apart: a lazy quantifier costs nine times as much).
_FIELD = re.compile(rb"(%s):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)" % _TOKEN_TEXT)
_FIELD_LINE = re.compile(rb"%s\r\n" % _FIELD.pattern)
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# What the field lines may hold: HTAB, visible characters and obs-text, and CR and LF as the CRLFs between them.
_FIELD_BYTES = b"\t\r\n" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_SPECIAL = frozenset((b"Transfer-Encoding", b"Content-Length"))
BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A request line as browsers and proxies send it (RFC 9112 §3): an upper-case method, an origin-form target (a path
# starting with "/", printable ASCII without "#"), an optional query, HTTP/1.0 or HTTP/1.1. Any other line is
# checked against _REQUEST_LINE and taken apart by _parse_target.
_PLAIN_REQUEST_LINE = re.compile(
    rb"([A-Z]+) ((/[^#?\x00-\x20\x7f-\xff]*)(?:\?([^#\x00-\x20\x7f-\xff]*))?) HTTP/1\.([01])\r\n"
)
# RFC 9112 §3: method SP request-target SP HTTP-version CRLF, one space each, nothing around it; the version is
# "HTTP/" DIGIT "." DIGIT (§2.3). (cheroot stripped whitespace around the line and read the version with int().)
_REQUEST_LINE = re.compile(rb"(%s) ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])\r\n" % _TOKEN_TEXT)
# RFC 3986 §3.2.2 and §3.2.3 for a Host value or an authority: an IP literal or a reg-name, then an optional port.
_HOST = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_ABSOLUTE = re.compile(rb"[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)([^?#]*)(?:\?([^#]*))?")
_QUOTED_SLASH = re.compile(rb"(?i)%2F")
_DIGITS = re.compile(rb"[0-9]{1,19}")
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), a name a
# token, a value a token or a quoted-string.
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*\r\n" % (_TOKEN_TEXT, _TOKEN_TEXT, _QUOTED)
)

# Fields whose repeated lines are joined with ", " (RFC 9110 §5.3); for the others the last line wins.
_COMMA_SEPARATED = frozenset(
    b"Accept Accept-Charset Accept-Encoding Accept-Language Accept-Ranges Allow Cache-Control Connection "
    b"Content-Encoding Content-Language Expect If-Match If-None-Match Pragma Proxy-Authenticate Te Trailer "
    b"Transfer-Encoding Upgrade Vary Via Warning Www-Authenticate".split()
)
_HOSTS = set()  # Host values found valid, bounded: a site is asked for by a few names
_TITLES = {}  # field name as sent -> its title-cased form (b"" for a name with "_"), bounded: clients choose names


class Limits(NamedTuple):
    """What a request may hold: ``request_line`` bytes of request line (414), ``header_size`` bytes and ``headers``
    fields in the header section (431), ``body_size`` bytes of body (413; 0 for no limit)."""

    request_line: int = 8190
    header_size: int = 65536
    headers: int = 100
    body_size: int = 0


class Refusal(NamedTuple):
    """A request the server answers itself and then closes the connection: ``status`` (``"400 Bad Request"``),
    ``reason`` (the body, one line for a person) and ``request_line`` (what was parsed of it, for the access log:
    ``(method, target, version)`` as bytes, or ``None``)."""

    status: str
    reason: str
    request_line: tuple = None


class Refused(ValueError):
    """Raised inside the parser for a ``Refusal``: ``args`` are the refusal's."""


class MalformedBody(ValueError):
    """A chunked request body that does not follow RFC 9112 §7.1: answered 400."""


class BodyTooLarge(ValueError):
    """A request body over the limit: answered 413."""


class Message:
    """A parsed request, with the fields cheroot's ``HTTPRequest`` has (all bytes): ``method``, ``uri`` (the
    request-target as sent), ``path`` (percent-decoded, ``%2F`` kept), ``qs`` (the query, not decoded),
    ``authority`` (of an absolute-form target, else ``b""``), ``request_protocol`` (``b"HTTP/1.1"``),
    ``response_protocol`` (``"HTTP/1.1"``, or ``"HTTP/1.0"`` for a 1.0 client), ``headers`` (title-cased names
    to values; repeated fields joined as RFC 9110 §5.3 allows; names with ``_`` dropped); ``keep_alive``; and, once
    received, ``body`` (a binary file at position 0, or ``None`` for no body) and ``length`` (its size in bytes).
    A chunked body is de-chunked: ``headers`` then says ``Content-Length`` and no longer ``Transfer-Encoding``."""

    __slots__ = (
        "method",
        "uri",
        "path",
        "qs",
        "authority",
        "request_protocol",
        "response_protocol",
        "headers",
        "keep_alive",
        "expect_continue",
        "chunked",
        "length",
        "body",
    )

    def close(self):
        """Close the body's file, if any."""
        if self.body is not None:
            self.body.close()
            self.body = None


def head_end(data, start=0):
    """Where the head in ``data`` ends (just after its blank line), or 0 if it has not yet; ``start``: where to look
    from (the bytes before it are known to hold no blank line: a head that comes in pieces is not scanned again
    from its start each time). A blank line of bare LFs counts too, so that the head is refused rather than waited
    for."""
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        bare = data.find(b"\n\n", start, end)
        return end + 4 if bare < 0 else bare + 2
    bare = data.find(b"\n\n", start)
    return bare + 2 if bare >= 0 else 0


def _title(name):
    """The title-cased form of a field name (``b"Content-Type"``), or ``b""`` for a name with ``_``, which is dropped
    as runserver, nginx and Apache drop it; remembered for up to 512 names of at most 64 bytes."""
    title = b"" if b"_" in name else name.title()
    if len(_TITLES) < 512 and len(name) <= 64:
        _TITLES[name] = title
    return title


def _line_error(line):
    """Why a header line (without its CRLF) did not match, for the 400's body."""
    if b"\n" in line or line.endswith(b"\r"):
        return "HTTP requires CRLF terminators"
    if line[:1] in (b" ", b"\t"):
        return "Obsolete line folding is not accepted."
    if BAD_VALUE_BYTE.search(line):
        return "Illegal character in a header field."
    return "Illegal header line."


def _refuse_line(lines, request_line):
    for line in lines:
        if _FIELD.fullmatch(line) is None:
            raise Refused("400 Bad Request", _line_error(line), request_line)
    raise Refused("400 Bad Request", "Illegal header line.", request_line)


def _decode_path(path):
    """Percent-decode ``path`` (bytes), keeping ``%2F`` as it is, as cheroot does (RFC 3986 §2.4: a path is split
    into segments before they are decoded)."""
    if b"%" not in path:
        return path
    return b"%2F".join(unquote_to_bytes(part) for part in _QUOTED_SLASH.split(path))


def _parse_target(method, target, request_line):
    """``(path, query, authority)`` for a request-target that the plain line's pattern did not take (RFC 9112 §3.2):
    origin-form with ``%`` or ``#``, absolute-form (the host then comes from it: §3.2.2), ``*`` for OPTIONS."""
    if method == b"CONNECT":
        raise Refused("405 Method Not Allowed", "CONNECT is not supported: this is not a proxy.", request_line)
    if b"#" in target:
        raise Refused("400 Bad Request", "Illegal #fragment in Request-URI.", request_line)
    if any(byte > 0x7E for byte in target):
        raise Refused("400 Bad Request", "Malformed Request-URI.", request_line)
    if target.startswith(b"/"):
        path, _, query = target.partition(b"?")
        return path, query, b""
    if target == b"*" and method == b"OPTIONS":
        return b"*", b"", b""
    matched = _ABSOLUTE.fullmatch(target)
    if matched is None:
        raise Refused("400 Bad Request", "Invalid path in Request-URI: not origin-form or absolute-form.", request_line)
    authority, path, query = matched.groups()
    # RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid; §4.2.4: userinfo is an error.
    if not authority or b"@" in authority or _HOST.fullmatch(authority) is None or authority.startswith(b":"):
        raise Refused("400 Bad Request", "Invalid authority in Request-URI.", request_line)
    return path or b"/", query or b"", authority


def parse_head(head, limits, memo=None):
    """Parse a request head (``head``: bytes up to and with its blank line) into a ``Message`` whose body is still to
    come (``length``: its Content-Length, ``None`` for a chunked body, 0 for none); raises ``Refused``. ``memo``: a
    list kept by the connection's ``Parser``, where the verdict on the field lines is remembered for the next head
    (the field lines of keep-alive requests often repeat byte for byte).

    - At most one empty line before the request line is ignored (RFC 9112 §2.2).
    - The request line is ``method SP request-target SP HTTP/D.D CRLF`` with nothing around it; a method in upper
      case; HTTP/1.0 or 1.1 (505 for another version); over ``limits.request_line`` bytes, 414.
    - Field lines are ``name ":" OWS value OWS CRLF``, the name a token with no whitespace before the colon, the value
      free of control characters but HTAB; no obs-fold; more than ``limits.headers`` fields or ``limits.header_size``
      bytes, 431. Names with ``_`` are dropped, as runserver, nginx and Apache drop them (``X_Forwarded_Proto``
      would pose as ``X-Forwarded-Proto`` in the WSGI environ).
    - Host: exactly one on HTTP/1.1, at most one on 1.0, of ``host[:port]`` syntax (RFC 3986 §3.2.2), else 400; an
      absolute-form target's authority replaces it (RFC 9112 §3.2.2).
    - Framing (RFC 9112 §6): Transfer-Encoding with Content-Length, or on HTTP/1.0, or without ``chunked`` as its
      last coding once, is a 400; another coding before ``chunked`` a 501; empty list elements are ignored (RFC 9110
      §5.6.1: ``Transfer-Encoding: ,chunked`` is chunked). Content-Length is digits, the same on every line; over
      ``limits.body_size``, 413.
    """
    start = 2 if head.startswith(b"\r\n") else 0
    line_end = head.find(b"\n", start) + 1
    if line_end - start > limits.request_line:
        raise Refused("414 Request-URI Too Long", "The request line is too long.")
    matched = _PLAIN_REQUEST_LINE.match(head, start)
    if matched is not None and matched.end() == line_end and matched[1] != b"CONNECT":
        method, uri, path, query, minor = matched.groups()
        if query is None:
            query = b""
        if b"%" in path:
            path = _decode_path(path)
        authority = b""
        request_protocol = b"HTTP/1.1" if minor == b"1" else b"HTTP/1.0"
        http11 = minor == b"1"
    else:
        matched = _REQUEST_LINE.match(head, start)
        if matched is None or matched.end() != line_end:
            raise Refused("400 Bad Request", "Malformed Request-Line.")
        method, uri, major, minor = matched.groups()
        request_protocol = b"HTTP/%s.%s" % (major, minor)
        request_line = (method, uri, request_protocol)
        if method != method.upper():
            raise Refused("400 Bad Request", "Malformed method name: methods are case-sensitive.", request_line)
        if major != b"1" or minor not in (b"0", b"1"):
            raise Refused("505 HTTP Version Not Supported", "Cannot fulfill request", request_line)
        http11 = minor == b"1"
        path, query, authority = _parse_target(method, uri, request_line)
        path = _decode_path(path)
    message = Message()
    message.method, message.uri, message.path, message.qs, message.authority = method, uri, path, query, authority
    message.request_protocol = request_protocol
    message.response_protocol = "HTTP/1.1" if http11 else "HTTP/1.0"

    request_line = (method, uri, request_protocol)
    if not head.endswith(b"\r\n\r\n"):
        raise Refused("400 Bad Request", "HTTP requires CRLF terminators", request_line)
    if len(head) - line_end > limits.header_size:
        raise Refused("431 Request Header Fields Too Large", "The request's header fields are too large.", request_line)
    # The field lines, checked with C passes over them all and a few C calls a line (a regular expression per line
    # cost twice as much): no control character but HTAB, no CR or LF but the CRLFs between lines, each line a
    # token, a colon and a value. The line at fault is looked for with _FIELD only then, for the 400's
    # reason.
    block = head[line_end:-4]
    if memo and memo[0] == block and memo[1] == http11 and not authority:
        # The same field lines as the connection's last request (a browser's or a load generator's keep-alive
        # requests often repeat them byte for byte): the same verdict.
        headers, message.keep_alive, message.length, message.chunked, message.expect_continue = memo[2]
        message.headers = headers.copy()
        message.body = None
        return message
    lines = block.split(b"\r\n") if len(head) > line_end + 2 else ()
    if len(lines) > limits.headers:
        raise Refused("431 Request Header Fields Too Large", f"More than {limits.headers} header fields.", request_line)
    if lines and (
        block.translate(None, _FIELD_BYTES)
        or block.count(b"\r") != len(lines) - 1
        or block.count(b"\n") != len(lines) - 1
    ):
        _refuse_line(lines, request_line)
    headers = {}
    lengths = codings = None
    titles = _TITLES.get
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            _refuse_line(lines, request_line)
        title = titles(name)
        if not title:
            if title is None:
                if not name or name.translate(None, _TOKEN_BYTES):
                    _refuse_line(lines, request_line)
                title = _title(name)
            if not title:  # a name with "_": dropped
                continue
        value = value.strip(b" \t")
        if title in _SPECIAL:
            if title == b"Transfer-Encoding":
                if codings is None:
                    codings = []
                codings += (coding.strip().lower() for coding in value.split(b","))
            elif title == b"Content-Length":
                if lengths is None:
                    lengths = set()
                lengths.add(value)
        if title in headers:
            if title == b"Host":
                raise Refused("400 Bad Request", "More than one Host header.", request_line)
            existing = headers[title]
            if title in _COMMA_SEPARATED and existing:
                value = existing + b", " + value if value else existing
        headers[title] = value
    message.headers = headers

    host = headers.get(b"Host")
    if host is None:
        if http11:
            raise Refused("400 Bad Request", "Missing Host header.", request_line)
    elif host not in _HOSTS:
        if _HOST.fullmatch(host) is None:
            raise Refused("400 Bad Request", "Invalid Host header.", request_line)
        if len(_HOSTS) < 256:
            _HOSTS.add(host)
    if authority:
        headers[b"Host"] = authority

    connection = headers.get(b"Connection")
    if connection is None:
        message.keep_alive = http11
    else:
        connection = connection.lower()
        if connection == b"keep-alive":
            message.keep_alive = True
        elif connection == b"close":
            message.keep_alive = False
        else:
            tokens = {token.strip() for token in connection.split(b",")}
            message.keep_alive = b"close" not in tokens if http11 else b"keep-alive" in tokens

    message.body = None
    message.chunked = False
    message.expect_continue = False
    if codings is not None:
        codings = [coding for coding in codings if coding]  # RFC 9110 §5.6.1: empty elements are ignored
        if lengths is not None:
            raise Refused("400 Bad Request", "Transfer-Encoding and Content-Length together.", request_line)
        if not http11:
            raise Refused("400 Bad Request", "Transfer-Encoding in an HTTP/1.0 request.", request_line)
        if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
            raise Refused("400 Bad Request", "chunked must be the final transfer coding, once.", request_line)
        if len(codings) > 1:
            raise Refused(
                "501 Not Implemented", "Transfer codings other than chunked are not implemented.", request_line
            )
        message.chunked = True
        message.length = None
    elif lengths is not None:
        if len(lengths) > 1:
            raise Refused("400 Bad Request", "Conflicting Content-Length headers.", request_line)
        (value,) = lengths
        if not _DIGITS.fullmatch(value):
            raise Refused("400 Bad Request", "Malformed Content-Length header.", request_line)
        message.length = int(value)
        if limits.body_size and message.length > limits.body_size:
            raise Refused("413 Request Entity Too Large", "The request body is over the size limit.", request_line)
    else:
        message.length = 0
    if message.length != 0 and http11:
        expect = headers.get(b"Expect")
        message.expect_continue = expect is not None and expect.lower() == b"100-continue"
    if memo is not None and not authority:
        memo[:] = (
            block,
            http11,
            (headers.copy(), message.keep_alive, message.length, message.chunked, message.expect_continue),
        )
    return message


_SIZE_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _DONE = range(5)
_LINE_BOUND = {_SIZE_LINE: 4096, _CHUNK_END: 2, _TRAILER: 8192}


class ChunkedDecoder:
    """The chunked transfer coding of RFC 9112 §7.1, decoded as it arrives: ``feed(data)`` writes the chunks' data
    to ``out`` (a binary file) and returns how many bytes of ``data`` belonged to the body; ``done`` once the
    last chunk and the trailer section have been read, ``length`` the body's size in bytes.

    Chunk sizes are 1 to 16 hex digits (Python's ``int(x, 16)`` takes ``0x5``, ``+5`` and ``0_5``); chunk
    extensions must be of RFC 9112 §7.1.1's grammar (whitespace only around ``;`` and ``=``, names tokens, values
    tokens or quoted strings), and are ignored; chunk data must be followed by CRLF; up to ``MAX_TRAILER_LINES``
    trailer lines, each a field line (§7.1.2), are read and dropped; past ``FRAMING_ALLOWANCE`` bytes of framing,
    the data must be 8 times the framing. Raises ``MalformedBody`` for anything else and ``BodyTooLarge`` past
    ``limit`` bytes (0: no limit).
    """

    def __init__(self, out, limit):
        self.out = out
        self.limit = limit
        self.length = 0
        self.done = False
        self._state = _SIZE_LINE
        self._line = b""
        self._left = 0  # bytes of chunk data still to come
        self._trailers = 0
        self._framing = 0  # bytes of lines read

    def feed(self, data):
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self._state == _CHUNK_DATA:
                take = min(self._left, end - pos)
                self.out.write(data[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._state = _CHUNK_END
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                if len(self._line) > _LINE_BOUND[self._state]:
                    raise MalformedBody("Malformed chunked body.")
                return end
            line, self._line, pos = self._line + data[pos : newline + 1], b"", newline + 1
            self._line_ended(line)
        return pos

    def _line_ended(self, line):
        state = self._state
        if len(line) > _LINE_BOUND[state] or not line.endswith(b"\r\n"):
            raise MalformedBody(
                "Chunk data not followed by CRLF." if state == _CHUNK_END else "Malformed chunked body."
            )
        self._framing += len(line)
        if self._framing > FRAMING_ALLOWANCE and self._framing * 8 > self.length:
            raise MalformedBody("The chunks are too small for their framing.")
        if state == _SIZE_LINE:
            matched = _CHUNK_SIZE_LINE.fullmatch(line)
            if matched is None:
                raise MalformedBody("Malformed chunk size.")
            size = int(matched[1], 16)
            if not size:
                self._state = _TRAILER
                return
            self.length += size
            if self.limit and self.length > self.limit:
                raise BodyTooLarge("The request body is over the size limit.")
            self._state, self._left = _CHUNK_DATA, size
        elif state == _CHUNK_END:
            if line != b"\r\n":
                raise MalformedBody("Chunk data not followed by CRLF.")
            self._state = _SIZE_LINE
        elif line == b"\r\n":
            self._state, self.done = _DONE, True
        elif _FIELD_LINE.fullmatch(line) is None:
            # RFC 9112 §7.1.2: a trailer section is field lines. A request line here (the next request, after a
            # last chunk with no final CRLF), a bare CR, a NUL, an obs-fold: a front end could frame it otherwise.
            raise MalformedBody("Malformed trailer field.")
        else:
            self._trailers += 1
            if self._trailers > MAX_TRAILER_LINES:
                raise MalformedBody("Too many trailer lines.")


class _LengthBody:
    """A body of a known length, received into ``out``: ``feed`` as ``ChunkedDecoder``'s."""

    def __init__(self, out, length):
        self.out = out
        self.length = length
        self.done = False
        self._left = length

    def feed(self, data):
        used = min(self._left, len(data))
        self.out.write(data[:used] if used < len(data) else data)
        self._left -= used
        self.done = not self._left
        return used


class Parser:
    """The requests of one connection, from the bytes that come, one at a time.

    ``feed(data)`` takes the bytes received (``b""`` to look again at what is buffered: a pipelined request) and
    answers ``None`` while the request is incomplete, then the ``Message``, whole with its body, or a ``Refusal``
    (after which the connection is to be closed: nothing it sent can be trusted to be framed right). Bytes that
    follow a whole request stay in ``buffer`` for the next ``feed``. ``expects_continue``: the head asked for
    ``100 Continue`` and no body byte has come (RFC 9110 §10.1.1); ``receiving``: part of a request has come.
    ``end_of_input()`` says what the client closing its side means: a ``Refusal`` mid-body (the client may still
    read the answer), else ``None``.
    """

    def __init__(self, limits):
        self.limits = limits
        self.buffer = b""
        self.message = None  # the head parsed, its body still coming
        self._body = None
        self._most = limits.request_line + limits.header_size + 4  # past this, no head can be whole
        self._memo = []  # parse_head's memory of the last field lines
        self._scanned = 0  # bytes at the start of buffer known to hold no blank line

    @property
    def receiving(self):
        return bool(self.buffer) or self.message is not None

    @property
    def expects_continue(self):
        message = self.message
        return message is not None and message.expect_continue and not self._received

    def feed(self, data):
        if self.message is None:
            buffer = self.buffer + data if self.buffer else data
            scanned = self._scanned if self.buffer else 0  # what holds no blank line: looked through already
            end = head_end(buffer, scanned - 3 if scanned > 3 else 0)
            if not end:
                if len(buffer) > self._most:
                    self.buffer = b""
                    line_end = buffer.find(b"\n", 0, self.limits.request_line + 3)
                    if line_end < 0 or line_end + 1 > self.limits.request_line + 2:
                        return Refusal("414 Request-URI Too Long", "The request line is too long.")
                    return Refusal("431 Request Header Fields Too Large", "The request's header fields are too large.")
                self.buffer, self._scanned = buffer, len(buffer)
                return None
            self._scanned = 0  # what follows this head is looked through anew
            try:
                message = parse_head(buffer[:end] if end < len(buffer) else buffer, self.limits, self._memo)
            except Refused as refused:
                self.buffer = b""
                return Refusal(*refused.args)
            if message.length == 0:
                self.buffer = buffer[end:]
                return message
            self.message = message
            self._received = False
            data, self.buffer = buffer[end:], b""
            if message.chunked:
                self._body = ChunkedDecoder(tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY), self.limits.body_size)
            elif len(data) >= message.length:  # all there: no file to spool to
                message.body, message.length = io.BytesIO(data[: message.length]), message.length
                self.message, self.buffer = None, data[message.length :]
                return message
            else:
                out = io.BytesIO() if message.length <= SPOOL_MEMORY else tempfile.SpooledTemporaryFile(SPOOL_MEMORY)
                self._body = _LengthBody(out, message.length)
            if not data:
                return None
        return self._feed_body(data)

    def _feed_body(self, data):
        body = self._body
        self._received = True
        try:
            used = body.feed(data)
        except (MalformedBody, BodyTooLarge) as error:
            return self._refuse_body(error)
        if not body.done:
            return None
        message, self.message, self._body = self.message, None, None
        message.body, message.length = body.out, body.length
        message.body.seek(0)
        if message.chunked:
            headers = message.headers
            del headers[b"Transfer-Encoding"]
            headers[b"Content-Length"] = str(message.length).encode("ascii")
        self.buffer = data[used:]
        return message

    def _refuse_body(self, error):
        message, self.message = self.message, None
        self._body.out.close()
        self._body, self.buffer = None, b""
        request_line = (message.method, message.uri, message.request_protocol)
        if isinstance(error, BodyTooLarge):
            return Refusal("413 Request Entity Too Large", str(error), request_line)
        return Refusal("400 Bad Request", str(error), request_line)

    def end_of_input(self):
        if self.message is None:
            self.buffer = b""
            return None
        return self._refuse_body(MalformedBody("The request body ended early."))

    def close(self):
        """Drop what is buffered, and a body being received."""
        if self._body is not None:
            self._body.out.close()
        self.message = self._body = None
        self.buffer = b""
