"""The server's request parsing beside llhttp's (Node's parser, through ``httptools``), issues 17 and 20.

The same bytes go to the server, black-box over a real connection on loopback, and to
``httptools.HttpRequestParser``. The server's side is what an echo application saw (method, PATH_INFO,
QUERY_STRING, HTTP_HOST, the body) for each request it served, and the status of the answer it gave itself if it
refused one; llhttp's side is the requests it completed and the error it raised, if any. Both must agree on every
request both accept: the same count, methods, targets, hosts and bodies (a front end that frames requests as one
does and a back end that frames them as the other must never see different requests: that is request smuggling).
Where one accepts what the other refuses, the disagreement gets a kind, and every kind is a named test below that
says which side is right and why.

``test_seeded_mutations_find_only_known_disagreements`` sends a few hundred seeded mutations of valid requests
(``RUNCHERRYPY_DIFFERENTIAL_CASES=5000`` for more; ``RUNCHERRYPY_DIFFERENTIAL_SEED`` for another seed) and fails on
any disagreement of the dangerous kind, and on any that is not among the known kinds.
"""

import base64
import json
import os
import random
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import httptools
import pytest

from .wsgi import serving

CASES = int(os.environ.get("RUNCHERRYPY_DIFFERENTIAL_CASES", "500"))
SEED = int(os.environ.get("RUNCHERRYPY_DIFFERENTIAL_SEED", "20"))
DEADLINE = 3.0  # seconds for one case's exchange with the server, all told
MAX_ANSWER = 1024 * 1024  # bytes read back from the server for one case, at most


# The server's side ---------------------------------------------------------------------------------------------------


def echo(environ, start_response):
    """What the application saw, as JSON in the body and, base64, in an ``X-Echo`` header (a response to HEAD has
    no body; the header also says which responses came from the application)."""
    seen = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ.get("QUERY_STRING", ""),
        "host": environ.get("HTTP_HOST"),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "body": environ["wsgi.input"].read().decode("latin-1"),
    }
    data = json.dumps(seen).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("X-Echo", base64.b64encode(data).decode()),
        ],
    )
    return [data]


@pytest.fixture(scope="module")
def port():
    """A server running ``echo`` on loopback, with the application seeing forwarding headers as sent."""
    with serving(
        echo,
        forwarded_allow_ips=None,
        access_log=None,
        timeout=2,
        header_timeout=2,
        max_request_body_size=1024 * 1024,
    ) as server:
        yield server.bind_addr[1]


@dataclass
class ServerSide:
    """What the server did with a case's bytes: ``served``, what the application saw for each request it was given,
    in order; ``refused``, the status of the server's own answer after those (None if it gave none); ``after``,
    the statuses of anything it answered after refusing; ``ended``: ``closed``, ``reset`` or ``timeout``; ``rest``,
    bytes of the answer that were not a response."""

    served: list = field(default_factory=list)
    refused: int | None = None
    refusal: bytes = b""
    after: list = field(default_factory=list)
    ended: str = "closed"
    rest: bytes = b""


def exchange_with_server(port, raw, deadline=DEADLINE):
    """Send ``raw`` on a new connection, shut it for writing (the client has nothing more to say) and read the
    answer until the server closes it, the deadline passes or ``MAX_ANSWER`` bytes have come."""
    until = time.monotonic() + deadline
    data = b""
    ended = "closed"
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as client:
        try:
            client.sendall(raw)
            client.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed early (it refused the start of a long case): read what it said
            pass
        while len(data) < MAX_ANSWER:
            left = until - time.monotonic()
            if left <= 0:
                ended = "timeout"
                break
            client.settimeout(left)
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                ended = "timeout"
                break
            except OSError:
                ended = "reset"
                break
            if not chunk:
                break
            data += chunk
    return read_answer(data, ended)


STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?")


def read_answer(data, ended):
    """Split the server's answer into responses (each framed by its Content-Length: the server's own and the echo
    application's always have one)."""
    side = ServerSide(ended=ended)
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status_line = STATUS_LINE.fullmatch(lines[0])
        if not separator or status_line is None:
            side.rest = data
            break
        status = int(status_line[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        seen = json.loads(base64.b64decode(headers[b"x-echo"])) if b"x-echo" in headers else None
        if 100 <= status < 200 or seen is not None and seen["method"] == "HEAD":
            length = 0
        else:
            length = int(headers.get(b"content-length", len(rest)))
        body, data = rest[:length], rest[length:]
        if 100 <= status < 200:
            continue
        if side.refused is not None:
            side.after.append(status)
        elif status == 200 and seen is not None:
            side.served.append(seen)
        else:
            side.refused, side.refusal = status, body
    return side


# llhttp's side -------------------------------------------------------------------------------------------------------


@dataclass
class LlhttpSide:
    """What llhttp made of a case's bytes: ``requests``, those it completed (see ``Callbacks``); ``error``, the
    reason it gave for refusing (None if it did not), at offset ``error_at``; ``upgrade``: it stopped after a
    request that takes the connection over (CONNECT, or ``Connection: upgrade`` with ``Upgrade``); ``pending``: a
    request was begun and not complete when the bytes ended."""

    requests: list = field(default_factory=list)
    error: str | None = None
    error_at: int | None = None
    upgrade: bool = False
    pending: bool = False


class Callbacks:
    """Collects each request llhttp completes as a dict: ``method``, ``url``, ``version``, ``headers`` (pairs, the
    trailer fields after the header fields), ``body`` (decoded), and the offsets in the case's bytes of its first
    byte (``start``), of the end of its head (``head_end``), of the end of each chunk-size line (``chunk_headers``)
    and of each chunk's data (``chunk_ends``), and of its last byte (``end``); ``after`` is the offset just past
    the request before it (what lies between was skipped as empty lines)."""

    def __init__(self):
        self.parser = None
        self.offset = 0
        self.requests = []
        self.current = None

    def on_message_begin(self):
        after = self.requests[-1]["end"] + 1 if self.requests else 0
        self.current = {
            "url": b"",
            "headers": [],
            "body": b"",
            "after": after,
            "start": self.offset,
            "chunk_headers": [],
            "chunk_ends": [],
        }

    def on_url(self, url):
        self.current["url"] += url

    def on_header(self, name, value):
        self.current["headers"].append((name, value))

    def on_headers_complete(self):
        self.current["method"] = self.parser.get_method()
        self.current["version"] = self.parser.get_http_version()
        self.current["head_end"] = self.offset

    def on_body(self, body):
        self.current["body"] += body

    def on_chunk_header(self):
        self.current["chunk_headers"].append(self.offset)

    def on_chunk_complete(self):
        self.current["chunk_ends"].append(self.offset)

    def on_message_complete(self):
        self.current["end"] = self.offset
        self.requests.append(self.current)
        self.current = None


def parse_with_llhttp(raw):
    """Feed ``raw`` to llhttp a byte at a time (its state machine takes bytes as they come; this tells where each
    request begins and ends, and where an error is found)."""
    callbacks = Callbacks()
    parser = callbacks.parser = httptools.HttpRequestParser(callbacks)
    side = LlhttpSide(requests=callbacks.requests)
    for offset in range(len(raw)):
        callbacks.offset = offset
        try:
            parser.feed_data(raw[offset : offset + 1])
        except httptools.HttpParserUpgrade:
            side.upgrade = True
            break
        except httptools.HttpParserCallbackError:
            raise
        except httptools.HttpParserError as error:
            side.error, side.error_at = str(error), offset
            break
    side.pending = callbacks.current is not None and side.error is None and not side.upgrade
    return side


@dataclass
class Anatomy:
    """The parts of a request as llhttp delimited it, in the case's bytes."""

    skipped: bytes  # before the request line (after the request before it)
    line: bytes  # the request line, without its line end
    fields: list  # the field lines, without their line ends
    size_lines: list  # a chunked body's chunk-size lines, without their line ends
    trailer: bytes  # a chunked body's trailer section, with its final line end

    @classmethod
    def of(cls, raw, request):
        head = raw[request["start"] : request["head_end"] + 1]
        lines = re.split(rb"\r?\n", head)
        starts = [request["head_end"] + 1] + [end + 1 for end in request["chunk_ends"]]
        size_lines = [
            raw[start : end + 1].rstrip(b"\n").removesuffix(b"\r")
            for start, end in zip(starts, request["chunk_headers"], strict=False)
        ]
        trailer = raw[request["chunk_headers"][-1] + 1 : request["end"] + 1] if request["chunk_headers"] else b""
        return cls(
            raw[request["after"] : request["start"]],
            lines[0],
            [line for line in lines[1:] if line],
            size_lines,
            trailer,
        )

    def values(self, name):
        """The values of the field lines named ``name``, as llhttp took them apart."""
        found = []
        for line in self.fields:
            field_name, colon, value = line.partition(b":")
            if colon and field_name.lower() == name.lower():
                found.append(value.strip(b" \t"))
        return found


# What each side should have seen -------------------------------------------------------------------------------------

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
QUOTED_STRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version; a target is visible ASCII (RFC 3986).
REQUEST_LINE = re.compile(rb"(%s) ([^ ]+) HTTP/([0-9])\.([0-9])" % TOKEN)
TARGET = re.compile(rb"[\x21-\x7e]+")
ABSOLUTE_FORM = re.compile(rb"(?i)(https?)://([^/?#]*)([^?#]*)(?:\?([^#]*))?")
# RFC 3986 §3.2.2 and §3.2.3, for a Host value: an IP literal or a reg-name, and an optional port.
HOST = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
# RFC 9110 §5.5, RFC 9112 §5: field-line = field-name ":" OWS field-value OWS; no control characters but HTAB.
FIELD_LINE = re.compile(
    rb"%s:[ \t]*(?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?[ \t]*" % TOKEN
)
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ], chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ).
SIZE_LINE = re.compile(rb"[0-9A-Fa-f]+(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*" % (TOKEN, TOKEN, QUOTED_STRING))
# RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ), then the final CRLF.
TRAILER = re.compile(rb"(?:%s\r\n)*\r\n" % FIELD_LINE.pattern)


def path_info(path):
    """PATH_INFO for a target's path, both ways a server may decode it: all of it, or all but ``%2F`` (cheroot's)."""
    whole = unquote_to_bytes(path).decode("latin-1")
    kept = b"%2F".join(unquote_to_bytes(part) for part in re.split(rb"(?i)%2f", path)).decode("latin-1")
    return {whole or "/", kept or "/"}


def expected_from_llhttp(request):
    """What an application should see of a request llhttp completed: its method, the PATH_INFO it may see, the
    QUERY_STRING, the host (an absolute-form target's, RFC 9112 §3.2.2, else the Host field's) and the body."""
    url = request["url"]
    hosts = [value.strip(b" \t") for name, value in request["headers"] if name.lower() == b"host"]
    host = hosts[0] if len(hosts) == 1 else None
    absolute = ABSOLUTE_FORM.fullmatch(url)
    if absolute:
        host, path, query = absolute[2], absolute[3], absolute[4] or b""
    elif url == b"*":
        path, query = url, b""
    else:
        path, _, query = url.partition(b"?")
    return {
        "method": request["method"].decode("latin-1"),
        "paths": {"*"} if path == b"*" else path_info(path),
        "query": query.decode("latin-1"),
        "host": None if host is None else host.decode("latin-1").lower(),
        "body": request["body"].decode("latin-1"),
    }


def differences(served, request):
    """The fields on which what the application saw differs from what llhttp saw (empty if none)."""
    expected = expected_from_llhttp(request)
    found = []
    if served["method"] != expected["method"]:
        found.append("method")
    if (served["path"] or "/") not in expected["paths"]:
        found.append("path")
    if served["query"] != expected["query"]:
        found.append("query")
    if (served["host"] or "").strip(" \t").lower() != (expected["host"] or ""):
        found.append("host")
    if served["body"] != expected["body"]:
        found.append("body")
    return found


# Comparing -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A kind of disagreement: ``name`` says what differs, ``right`` which side is right ("server", "llhttp" or
    "both", where the RFC leaves the choice), ``test`` the test that pins it. A disagreement of a kind whose
    ``right`` is "llhttp" is a defect of the server's, as are those of no known kind."""

    name: str
    right: str
    test: str

    def __str__(self):
        return f"{self.name} ({self.right} right; {self.test})"


@dataclass
class Disagreement:
    kind: Kind | str  # a Kind, or a description of a disagreement of no known kind
    raw: bytes
    index: int  # the request (counted from 0) where the sides part
    detail: str

    @property
    def known(self):
        return isinstance(self.kind, Kind) and self.kind.right != "llhttp"

    def __str__(self):
        return f"{self.kind}: request {self.index}: {self.detail}\n    {self.raw!r}"


DIFFERENT_REQUEST = "DANGEROUS: both accept but see a different method, target or host"
DIFFERENT_BODY = "DANGEROUS: both accept but see different bodies or boundaries"
SERVER_ENDS_EARLIER = "DANGEROUS: the server served a request where llhttp waits for more of it"
SERVER_SILENT = "the server closed without answering a request llhttp completed"


def compare(raw, server, llhttp):
    """None if the sides agree on ``raw``, else the ``Disagreement``, with its kind."""
    both = min(len(server.served), len(llhttp.requests))
    for index in range(both):
        found = differences(server.served[index], llhttp.requests[index])
        if found and index == len(llhttp.requests) - 1 and llhttp.upgrade and found == ["body"]:
            return Disagreement(UPGRADE, raw, index, "llhttp stopped before the body, at the upgrade")
        if found:
            detail = f"{', '.join(found)}: server {server.served[index]}, llhttp {llhttp.requests[index]}"
            return Disagreement(DIFFERENT_BODY if found == ["body"] else DIFFERENT_REQUEST, raw, index, detail)
    if len(server.served) > both:
        if llhttp.error is not None:
            detail = f"llhttp: {llhttp.error} at {llhttp.error_at}"
            return Disagreement(llhttp_stricter(raw, llhttp, server.served[both]), raw, both, detail)
        if llhttp.upgrade:
            return Disagreement(UPGRADE, raw, both, "llhttp stopped at the upgrade")
        return Disagreement(SERVER_ENDS_EARLIER, raw, both, f"server served {server.served[both]}")
    if len(llhttp.requests) > both:
        request = llhttp.requests[both]
        detail = f"server {server.refused} {server.refusal[:80]!r} ({server.ended}), llhttp {request}"
        if server.refused is None:
            return Disagreement(SERVER_SILENT, raw, both, detail)
        upgraded = llhttp.upgrade and both == len(llhttp.requests) - 1
        return Disagreement(server_stricter(raw, request, server, upgraded), raw, both, detail)
    return None


# The kinds, each pinned by a named test below ------------------------------------------------------------------------

# Where the server is stricter: it refuses what llhttp takes.
LIMITS = Kind("the server's size limits (413, 414, 431)", "server", "test_the_servers_limits")
EMPTY_LINES = Kind(
    "more than one empty line, or a bare CR or LF, before the request line",
    "server",
    "test_empty_lines_before_the_request_line",
)
REQUEST_LINE_SHAPE = Kind(
    "a request line that is not method SP target SP HTTP/D.D", "server", "test_a_request_line_of_another_shape"
)
VERSION = Kind("a version other than HTTP/1.0 and 1.1 (505)", "server", "test_versions_other_than_1_0_and_1_1")
CONNECT = Kind("CONNECT (this is not a proxy)", "server", "test_connect")
FRAGMENT = Kind("a #fragment in the target", "server", "test_a_fragment_in_the_target")
ASTERISK = Kind("asterisk-form for a method other than OPTIONS", "server", "test_asterisk_form")
TARGET_FORM = Kind(
    "a target neither origin-form, nor an http(s) absolute-form, nor * for OPTIONS", "server", "test_targets_of_no_form"
)
EMPTY_AUTHORITY = Kind(
    "an absolute-form target with an empty host or userinfo", "server", "test_absolute_form_without_a_host"
)
MISSING_HOST = Kind("no Host on HTTP/1.1", "server", "test_one_host_on_http_1_1")
REPEATED_HOST = Kind("Host more than once", "server", "test_one_host_on_http_1_1")
INVALID_HOST = Kind("a Host that is not host[:port]", "server", "test_a_host_that_is_not_host_port")
TE_IN_HTTP10 = Kind("Transfer-Encoding in HTTP/1.0", "server", "test_transfer_encoding_in_http_1_0")
TE_CODINGS = Kind("transfer codings other than chunked (501)", "server", "test_codings_other_than_chunked")
SIZE_LINE_GRAMMAR = Kind(
    "a chunk-size line outside RFC 9112 §7.1.1's grammar", "server", "test_chunk_extensions_outside_the_grammar"
)
# These two are not seen with httptools 0.9.0, whose llhttp refuses such lines too; kept for another llhttp.
TRAILER_GRAMMAR = Kind("a trailer line that is not a field line", "server", "test_where_both_refuse")
FIELD_GRAMMAR = Kind("a field line outside RFC 9110 §5.5's grammar", "server", "test_where_both_refuse")
# Where the server refuses what it must accept (these are defects of the server's).
ABSOLUTE = Kind("an absolute-form target refused", "llhttp", "test_absolute_form_is_served_with_its_host")
DOUBLE_SLASH = Kind("a //path target refused", "llhttp", "test_a_double_slash_path_is_origin_form")
EMPTY_ELEMENTS_REFUSED = Kind(
    "a Transfer-Encoding with empty list elements refused", "llhttp", "test_empty_transfer_encoding_elements"
)
# Where llhttp is stricter: the server serves what llhttp refuses.
UNKNOWN_METHOD = Kind("a method llhttp does not know", "server", "test_methods_llhttp_does_not_know")
EMPTY_ELEMENTS = Kind("a Transfer-Encoding with empty list elements", "server", "test_empty_transfer_encoding_elements")
REPEATED_LENGTH = Kind("Content-Length repeated, the same each time", "both", "test_a_repeated_content_length")
FRAMING_TRAILER = Kind("Content-Length in the trailer section", "both", "test_content_length_as_a_trailer")
SIZE_LINE_BWS = Kind("whitespace (BWS) in chunk extensions", "server", "test_whitespace_in_chunk_extensions")
TARGET_FORM_SERVED = Kind(
    "a target of no form RFC 9112 §3.2 allows, served", "llhttp", "test_options_targets_are_read_like_others"
)
UPGRADE = Kind("llhttp stops at an upgrade; the server serves the request", "server", "test_upgrade")


def server_stricter(raw, request, server, upgraded=False):
    """The kind of a request llhttp completed and the server refused."""
    if server.refused in (413, 414, 431):
        return LIMITS
    anatomy = Anatomy.of(raw, request)
    if anatomy.skipped not in (b"", b"\r\n"):
        return EMPTY_LINES
    line = REQUEST_LINE.fullmatch(anatomy.line)
    if line is None:
        return REQUEST_LINE_SHAPE
    method, target, major, minor = line.groups()
    if major != b"1" or minor not in b"01":
        return VERSION
    if method == b"CONNECT":
        return CONNECT
    if not TARGET.fullmatch(target):
        return REQUEST_LINE_SHAPE
    if b"#" in target:
        return FRAGMENT
    absolute = ABSOLUTE_FORM.fullmatch(target)
    if absolute and (not absolute[2] or b"@" in absolute[2] or not HOST.fullmatch(absolute[2])):
        return EMPTY_AUTHORITY
    if target == b"*" and method != b"OPTIONS":
        return ASTERISK
    if not absolute and not target.startswith(b"/") and target != b"*":
        return TARGET_FORM
    for field_line in anatomy.fields:
        if not FIELD_LINE.fullmatch(field_line):
            return FIELD_GRAMMAR
    hosts = anatomy.values(b"Host")
    if len(hosts) > 1:
        return REPEATED_HOST
    if not hosts and minor == b"1":
        return MISSING_HOST
    if hosts and not HOST.fullmatch(hosts[0]):
        return INVALID_HOST
    codings = [
        coding.strip(b" \t").lower() for value in anatomy.values(b"Transfer-Encoding") for coding in value.split(b",")
    ]
    if codings and minor == b"0":
        return TE_IN_HTTP10
    elements = [coding for coding in codings if coding]
    if elements != codings and elements == [b"chunked"]:
        return EMPTY_ELEMENTS_REFUSED
    if server.refused == 501 and codings and codings[-1] == b"chunked":
        return TE_CODINGS
    refused_form = ABSOLUTE if absolute else DOUBLE_SLASH if target.startswith(b"//") else None
    if upgraded:
        return UPGRADE  # llhttp read no further than the head: the server may have refused the body
    for size_line in anatomy.size_lines:
        if not SIZE_LINE.fullmatch(size_line):
            return SIZE_LINE_GRAMMAR
    if anatomy.size_lines and not TRAILER.fullmatch(anatomy.trailer):
        return TRAILER_GRAMMAR
    return refused_form or f"server stricter, of no known kind: {server.refused} {server.refusal[:60]!r}"


def llhttp_stricter(raw, llhttp, served):
    """The kind of a request the server served (``served``: what the application saw) and llhttp refused."""
    start = llhttp.requests[-1]["end"] + 1 if llhttp.requests else 0
    rest = raw[start:].lstrip(b"\r\n")
    head = rest.partition(b"\r\n\r\n")[0]
    line = REQUEST_LINE.match(head)
    unknown_method = llhttp.error in ("Invalid method encountered", "Expected space after method")
    if unknown_method and line and line[1].decode("latin-1") == served["method"]:
        return UNKNOWN_METHOD
    if line and line[2] != b"*" and not line[2].startswith(b"/") and not ABSOLUTE_FORM.fullmatch(line[2]):
        return TARGET_FORM_SERVED
    lengths = [value.strip(b" \t") for value in re.findall(rb"(?im)^content-length:(.*?)\r?$", head)]
    if llhttp.error == "Duplicate Content-Length" and len(set(lengths)) == 1:
        return REPEATED_LENGTH
    codings = [
        coding.strip(b" \t").lower()
        for value in re.findall(rb"(?im)^transfer-encoding:(.*?)\r?$", head)
        for coding in value.split(b",")
    ]
    empty_elements = llhttp.error in ("Empty Transfer-Encoding", "Invalid `Transfer-Encoding` header value")
    if empty_elements and [coding for coding in codings if coding] == [b"chunked"]:
        return EMPTY_ELEMENTS
    if llhttp.error == "Content-Length can't be present with Transfer-Encoding" and not lengths:
        return FRAMING_TRAILER  # the Content-Length llhttp refused came after the head
    if llhttp.error.startswith("Invalid character in chunk"):
        line_start = raw.rfind(b"\n", 0, llhttp.error_at) + 1
        line_end = raw.find(b"\r\n", llhttp.error_at)
        if SIZE_LINE.fullmatch(raw[line_start : line_end if line_end >= 0 else len(raw)]):
            return SIZE_LINE_BWS  # a line of the grammar: what llhttp refused is its BWS
    return f"llhttp stricter, of no known kind: {llhttp.error}"


# The generator -------------------------------------------------------------------------------------------------------

# Each part of a request: its usual forms first (picked most of the time), then the unusual ones.
METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD"]
ODD_METHODS = [b"PURGE", b"get", b"FOO", b"M-SEARCH", b"G\x00T", b"GET\x0b", b"G(T", b"\xffGET", b"CONNECT"]
TARGETS = [
    b"/",
    b"/a?q=1",
    b"/a/b.txt",
    b"/a%20b",
    b"/%C3%A9t%C3%A9",
    b"/a%2Fb",
    b"//path",
    b"//path?q=//x",
    b"/a//b",
    b"/a?q=http://x/y",
    b"http://example.com/path?q=1",
    b"http://example.com:8080/",
    b"HTTP://EXAMPLE.COM/p",
]
ODD_TARGETS = [
    b"/a b",
    b"/a#frag",
    b"/\xff",
    b"*",
    b"example.com:443",
    b"/a%zz",
    b"/a\x00",
    b"",
    b"http://",
    b"http://a b/",
    b"http://example.com",
    b"http:///p",
    b"http://user@example.com/",
    b"ftp://example.com/p",
    b"/a\tb",
    b"/a\x7f",
    b"?q",
    b"a",
    b"/" + b"x" * 9000,
]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0"]
ODD_VERSIONS = [
    b"HTTP/1.00",
    b"HTTP/01.1",
    b"HTTP/1.01",
    b"HTTP/1.2",
    b"HTTP/2.0",
    b"HTTP/0.9",
    b"HTTP/2",
    b"http/1.1",
    b"HTTP/ 1.1",
    b"HTTP/+1.1",
    b"HTTP/1.x",
    b"HTTP/9.9",
    b"HTTP/1.1 ",
    b"HTTP/1.1\t",
    b"HTTP/1.1\x0c",
    b"HTTP/1.1\r",
    b"",
]
ODD_SPACES = [b"  ", b"\t", b" \t", b"\x0b", b"\x00"]
ODD_LINE_STARTS = [b" ", b"\t", b"\r\n", b"\n", b"\r\n\r\n", b"\x0b", b"\r"]
ODD_LINE_ENDS = [b"\n", b"\r", b"\r\r\n", b"\n\r"]
HOSTS = [b"h", b"example.com:8080", b"127.0.0.1", b"[::1]:8000", b"xn--bcher-kva.example", b"a-b.c"]
ODD_HOSTS = [b"", b"a b/c@d", b"h:port", b"h/x", b"user@h", b"h\x00", b"h,i", b"\xff", b"h:", b"[::1", b"h\\x"]
FIELDS = [b"Accept: */*", b"X-A: b", b"X-Empty:", b"X-Tab:\tv\t", b'X-Quoted: "a, b"', b"User-Agent: t/1.0"]
ODD_FIELDS = [
    b"X-A : b",
    b"X-A:\x00b",
    b"X-A: a\rb",
    b"X-A: a\r\n b",
    b"X-A: a\r\n\tb",
    b" X-A: b",
    b"X_A: b",
    b": b",
    b"X(A): b",
    b"X-A",
    b"X-A: \x7f",
    b"X-A: \xff",
    b"X-A:\x0bb",
    b"X-A: a\nb",
    b"X-A: " + b"v" * 9000,
    b"Connection: Upgrade\r\nUpgrade: websocket",
    b"X-A:\x01b",
]
CONNECTIONS = [b"", b"Connection: keep-alive", b"Connection: close", b"Expect: 100-continue"]


VALID_EXTENSIONS = [b"", b"", b"", b";a", b";a=b", b';a="q"', b';a="q\\"x;y"', b";a;b=c"]
ODD_SIZE_LINES = [
    b"0{}",
    b"{} ",
    b"{}\t",
    b" {}",
    b"+{}",
    b"-{}",
    b"0x{}",
    b"{};",
    b"{};\x00",
    b'{};ext=1"',
    b"{};a\rX",
    b"{};a b",
    b"{} ; a = b",
    b"{};=b",
    b"{};a=",
    b'{};a="',
    b"{}\x00",
    b"fffffffffffffffff",
]
ODD_TRAILERS = [
    b"no colon\r\n",
    b"T: a\r\n folded\r\n",
    b"T: t\x00\r\n",
    b"T: t\r\r\n",
    b"T : t\r\n",
    b"\rGET /smuggled HTTP/1.1\r\n",
    b"GET /smuggled HTTP/1.1\r\nX: y\r\n",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
]


def chunked_body(rng, body, odd):
    """``body`` in the chunked coding: valid (sizes in either case, extensions, trailer fields), or, if ``odd``,
    with one thing wrong: a size line, a chunk's length or its line end, the last chunk, the trailer section or its
    end."""
    sizes = []
    rest = len(body)
    while rest:
        sizes.append(rng.randint(1, rest))
        rest -= sizes[-1]
    wrong = rng.choice(["size", "length", "after", "last", "trailer", "end"]) if odd else None
    odd_chunk = rng.randrange(len(sizes)) if sizes else None
    pieces = []
    start = 0
    for index, size in enumerate(sizes):
        data = body[start : start + size]
        start += size
        hex_size = (b"%x" if rng.random() < 0.7 else b"%X") % size
        size_line = hex_size + rng.choice(VALID_EXTENSIONS)
        after = b"\r\n"
        if index == odd_chunk and wrong == "size":
            size_line = rng.choice(ODD_SIZE_LINES).replace(b"{}", hex_size)
        elif index == odd_chunk and wrong == "length":
            data = data[:-1] if rng.random() < 0.5 else data + b"!"
        elif index == odd_chunk and wrong == "after":
            after = rng.choice([b"\n", b"\r", b"", b"XX", b"\r\r\n"])
        pieces.append(size_line + b"\r\n" + data + after)
    last = rng.choice([b"0", b"0", b"0;e=x", b"000"])
    if wrong == "last":
        last = rng.choice([b"0 ", b"0;e=\x00", b"0x0", b"0\r"])
    trailers = rng.choice([b"", b"", b"T: t\r\n", b"T: t\r\nU: u\r\n"])
    if wrong == "trailer":
        trailers = rng.choice(ODD_TRAILERS)
    end = rng.choice([b"", b"\n", b"\r"]) if wrong == "end" else b"\r\n"
    return b"".join(pieces) + last + b"\r\n" + trailers + end


CONTENT_LENGTHS = [b"05", b"+5", b"-5", b"5,5", b"5, 5", b"5,6", b"0x5", b"5.0", b"", b"9" * 20, b"4", b"6", b" 5 "]
TRANSFER_ENCODINGS = [
    b",chunked",
    b"chunked,",
    b", chunked",
    b"chunked, chunked",
    b"gzip, chunked",
    b"chunked, gzip",
    b"identity",
    b"identity, chunked",
    b"xchunked",
    b"chunked\x00",
    b" chunked",
    b"chunked ",
    b"\tchunked",
    b"cHuNkEd",
    b"chunked;q=1",
    b'"chunked"',
]


def framing(rng, body, version, odd, odd_chunks):
    """Framing fields and the body bytes that follow the head, for ``body``: Content-Length or chunked, or, if
    ``odd``, unusual framing fields; ``odd_chunks``: a chunked body with something wrong in it."""
    if not body and not odd and not odd_chunks:
        return [], b""
    if not odd:
        if odd_chunks or (version == b"HTTP/1.1" and rng.random() < 0.5):
            return [b"Transfer-Encoding: chunked"], chunked_body(rng, body, odd_chunks)
        return [b"Content-Length: %d" % len(body)], body
    chunks = chunked_body(rng, body, odd_chunks)
    choice = rng.randrange(7)
    if choice == 0:
        return [b"Content-Length: " + rng.choice(CONTENT_LENGTHS)], body
    if choice == 1:
        return [b"Content-Length: %d" % len(body), b"Content-Length: " + rng.choice([b"5", b"6", b"05"])], body
    if choice == 2:
        return [b"Transfer-Encoding: " + rng.choice(TRANSFER_ENCODINGS)], chunks
    if choice == 3:  # both framings, in either order
        fields = [b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(body)]
        rng.shuffle(fields)
        return fields, chunks
    if choice == 4:  # an empty Transfer-Encoding line beside a chunked one
        fields = [b"Transfer-Encoding:", b"Transfer-Encoding: chunked"]
        rng.shuffle(fields)
        return fields, chunks
    if choice == 5:
        return [b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"], chunks
    return [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], chunks


def pick(rng, usual, odd, odd_now):
    return rng.choice(odd) if odd_now else rng.choice(usual)


def make_request(rng, odd_parts):
    """One request; the parts named in ``odd_parts`` take unusual forms."""
    method = pick(rng, METHODS, ODD_METHODS, "method" in odd_parts)
    target = pick(rng, TARGETS, ODD_TARGETS, "target" in odd_parts)
    version = pick(rng, VERSIONS, ODD_VERSIONS, "version" in odd_parts)
    space = rng.choice(ODD_SPACES) if "space" in odd_parts else b" "
    line = method + space + target + (rng.choice(ODD_SPACES) if "space" in odd_parts else b" ") + version
    if "line" in odd_parts:
        if rng.random() < 0.5:
            line = rng.choice(ODD_LINE_STARTS) + line
        else:
            line += rng.choice([b" ", b"\t", b"\r", b"\x0c", b"\x00"])
    hosts = [b"Host: " + pick(rng, HOSTS, ODD_HOSTS, "host" in odd_parts)]
    if "host" in odd_parts and rng.random() < 0.4:
        hosts = rng.choice([[], hosts * 2, hosts + [b"Host: other"], [b"host: h"], [b"HOST : h"], [b"Host:h"]])
    fields = rng.sample(FIELDS, rng.randint(0, 2))
    if "field" in odd_parts:
        fields.insert(rng.randint(0, len(fields)), rng.choice(ODD_FIELDS))
    body = b"" if method in (b"GET", b"HEAD") and rng.random() < 0.7 else rng.choice(BODIES)
    if "framing" in odd_parts or "chunks" in odd_parts:
        body = body or b"hello"
    framing_fields, data = framing(rng, body, version, "framing" in odd_parts, "chunks" in odd_parts)
    connection = rng.choice(CONNECTIONS)
    lines = [line, *hosts, *fields, *framing_fields]
    if connection:
        lines.insert(rng.randint(1, len(lines)), connection)
    if rng.random() < 0.2:
        fields = lines[1:]
        rng.shuffle(fields)
        lines[1:] = fields
    end = b"\r\n"
    head = b""
    for index, text in enumerate(lines):
        head += text + (rng.choice(ODD_LINE_ENDS) if "eol" in odd_parts and index == 1 else end)
    return head + b"\r\n" + data


PARTS = ["method", "target", "version", "space", "line", "host", "field", "framing", "chunks", "chunks", "eol"]
# Bodies, some of them like the framing or a request around them.
BODIES = [
    b"",
    b"hello",
    b"hi\r\nGET",
    b"0\r\n\r\n",
    b"5\r\nhello\r\n",
    b"GET /in-body HTTP/1.1\r\nHost: h\r\n\r\n",
    b"x" * 300,
]
PIECES = [b"\r\n", b"\n", b"\r", b"\x00", b" ", b"\t", b":", b";", b",", b"0", b"Transfer-Encoding: chunked\r\n"]


def mutate_bytes(rng, raw):
    """A byte-level change, as tests/test_fuzz.py makes them."""
    at = rng.randrange(len(raw) + 1)
    action = rng.randrange(4)
    if action == 0:
        return raw[:at] + rng.choice(PIECES) + raw[at:]
    if action == 1:
        return raw[:at] + raw[at + rng.randint(1, 8) :]
    if action == 2:
        return raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
    return raw[:at] + raw[at : at + 12].swapcase() + raw[at + 12 :]


def make_case(rng):
    """One case: one to three requests on a connection, one of them (most often) with an unusual part or two,
    and now and then a byte changed at random."""
    count = rng.choice([1, 2, 2, 3, 3])
    odd_one = rng.randrange(count)
    requests = []
    for index in range(count):
        odd_parts = set(rng.sample(PARTS, rng.choice([1, 1, 2]))) if index == odd_one and rng.random() < 0.8 else set()
        requests.append(make_request(rng, odd_parts))
    raw = b"".join(requests)
    if rng.random() < 0.2:
        raw = mutate_bytes(rng, raw)
    return raw


def cases(seed, count):
    """``count`` cases, the same for the same seed."""
    rng = random.Random(seed)
    return [make_case(rng) for _ in range(count)]


# The seeded run ------------------------------------------------------------------------------------------------------


def sides(port, raw):
    """``(server, llhttp, disagreement)`` for ``raw``."""
    server, llhttp = exchange_with_server(port, raw), parse_with_llhttp(raw)
    return server, llhttp, compare(raw, server, llhttp)


def test_seeded_mutations_find_only_known_disagreements(port):
    """``CASES`` seeded cases (a few hundred; ``RUNCHERRYPY_DIFFERENTIAL_CASES`` for more): no disagreement of the
    dangerous kinds, none of no known kind, none where llhttp is right; and the server answers each case as HTTP,
    nothing after a refusal, and closes once the client has said all it will."""
    found = Counter()
    failures = []
    for number, raw in enumerate(cases(SEED, CASES)):
        server, llhttp, disagreement = sides(port, raw)
        if server.ended == "timeout" or server.after or server.rest:
            failures.append(f"case {number}: the server's answer: {server}\n    {raw!r}")
        found[disagreement.kind if disagreement else "agreed"] += 1
        if disagreement is not None and not disagreement.known:
            failures.append(f"case {number}: {disagreement}")
    summary = "\n".join(f"{count:6} {kind}" for kind, count in found.most_common())
    print(f"{CASES} cases, seed {SEED}:\n{summary}")
    assert not failures, "\n".join(failures[:15]) + f"\n{len(failures)} failures in {CASES} cases; all:\n{summary}"


def test_the_comparison_tells_a_desync_from_a_refusal():
    """The comparison itself: the same bytes framed two ways is a dangerous disagreement; a refusal is not."""
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: h\r\n\r\n"
    llhttp = parse_with_llhttp(raw)
    assert [request["url"] for request in llhttp.requests] == [b"/", b"/next"] and llhttp.error is None

    def seen(method, path, body=""):
        return {"method": method, "path": path, "query": "", "host": "h", "protocol": "HTTP/1.1", "body": body}

    assert compare(raw, ServerSide(served=[seen("POST", "/", "hello"), seen("GET", "/next")]), llhttp) is None
    longer = ServerSide(served=[seen("POST", "/", "helloGET /next")])
    assert compare(raw, longer, llhttp).kind == DIFFERENT_BODY
    smuggled = ServerSide(served=[seen("POST", "/", "hello"), seen("GET", "/smuggled")])
    assert compare(raw, smuggled, llhttp).kind == DIFFERENT_REQUEST
    cut = raw[:50]  # the body's first three bytes: llhttp waits for the rest
    early = parse_with_llhttp(cut)
    assert early.pending and not early.requests
    assert compare(cut, ServerSide(served=[seen("POST", "/", "hel")]), early).kind == SERVER_ENDS_EARLIER
    assert compare(raw, ServerSide(served=[seen("POST", "/", "hello")]), llhttp).kind == SERVER_SILENT
    refused = compare(raw, ServerSide(served=[seen("POST", "/", "hello")], refused=400), llhttp)
    assert refused.kind.startswith("server stricter, of no known kind") and not refused.known
    # Fed at once, llhttp sees what it sees fed a byte at a time.
    callbacks = Callbacks()
    callbacks.parser = httptools.HttpRequestParser(callbacks)
    callbacks.parser.feed_data(raw)
    assert [(r["method"], r["url"], r["body"]) for r in callbacks.requests] == [
        (r["method"], r["url"], r["body"]) for r in llhttp.requests
    ]


# Where the server must change: llhttp is right ----------------------------------------------------------------------


def served_one(server):
    assert server.refused is None and len(server.served) == 1, server
    return server.served[0]


def test_absolute_form_is_served_with_its_host(port):
    """RFC 9112 §3.2.2: "a server MUST accept the absolute-form in requests", and an origin server "MUST ignore the
    received Host header field (if any) and instead use the host information of the request-target". llhttp takes
    it (its url is the whole target); the application sees the path, the query and the target's host (an empty path
    is "/": RFC 9110 §4.2.3)."""
    raw = b"GET http://example.com/path?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
    server, llhttp, disagreement = sides(port, raw)
    seen = served_one(server)
    assert (seen["method"], seen["path"], seen["query"], seen["host"]) == ("GET", "/path", "q=1", "example.com")
    assert [request["url"] for request in llhttp.requests] == [b"http://example.com/path?q=1"]
    assert disagreement is None
    seen = served_one(exchange_with_server(port, b"GET HTTP://Example.COM:8080 HTTP/1.1\r\nHost: other\r\n\r\n"))
    assert (seen["path"], seen["host"].lower()) == ("/", "example.com:8080")


@pytest.mark.parametrize("target, path, query", [(b"//path", "//path", ""), (b"//path?q=//x", "//path", "q=//x")])
def test_a_double_slash_path_is_origin_form(port, target, path, query):
    """RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ], and absolute-path = 1*( "/" segment ) with
    segments that may be empty: ``//path`` is a path whose first segment is empty, not a network-path reference
    (that is a relative-reference, which no request-target form allows). cheroot parsed it with ``urlsplit`` and
    refused it as an authority; llhttp takes it as the path it is."""
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    server, llhttp, disagreement = sides(port, raw)
    seen = served_one(server)
    assert (seen["path"], seen["query"], seen["host"]) == (path, query, "h")
    assert disagreement is None


def test_options_targets_are_read_like_others(port):
    """Found by this run on cheroot's request line: for OPTIONS it skipped the target's checks and decoding, so
    the application saw ``/a%20b`` where a GET sees ``/a b``, ``/*`` for ``*`` (an application cannot tell it from
    ``OPTIONS /*``), ``/`` for ``//path`` (read as an authority), and a target of no form at all (``a``, ``?q``)
    was served. RFC 9112 §3.2: the target forms are
    the same for every method but CONNECT, and ``*`` (asterisk-form, §3.2.4) is OPTIONS' alone; PEP 3333 and RFC
    3875 §4.1.5: PATH_INFO is decoded. llhttp is right on each."""
    seen = served_one(exchange_with_server(port, b"OPTIONS /a%20b?q=%20 HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert (seen["method"], seen["path"], seen["query"]) == ("OPTIONS", "/a b", "q=%20")
    server, llhttp, disagreement = sides(port, b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert served_one(server)["path"] == "*" and disagreement is None
    server, llhttp, disagreement = sides(port, b"OPTIONS //path?q=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (served_one(server)["path"], served_one(server)["host"]) == ("//path", "h") and disagreement is None
    for target in (b"a", b"?q"):
        server, llhttp, disagreement = sides(port, b"OPTIONS " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        assert server.refused == 400 and not server.served and llhttp.error and disagreement is None


@pytest.mark.parametrize(
    "fields, llhttp_error",
    [
        (b"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n", "Empty Transfer-Encoding"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n", "Empty Transfer-Encoding"),
        (b"Transfer-Encoding: ,chunked\r\n", None),
        (b"Transfer-Encoding: , chunked\r\n", None),
        (b"Transfer-Encoding: chunked,\r\n", "Invalid `Transfer-Encoding` header value"),
    ],
)
def test_empty_transfer_encoding_elements(port, fields, llhttp_error):
    """RFC 9110 §5.6.1.2: "a recipient MUST parse and ignore a reasonable number of empty list elements", and
    §5.3: field lines of the same name are one list. An empty ``Transfer-Encoding:`` line beside ``chunked``, and
    ``,chunked``, are ``chunked``: framed, decoded and answered like it (issue 20, item 5: the server once read the
    first as chunked in one place and not in another, and refused the second). llhttp refuses an empty line and a
    trailing comma (stricter, and safe: it refuses rather than frames otherwise) but takes a leading comma; here the
    server is right."""
    raw = (
        b"POST /a HTTP/1.1\r\nHost: h\r\n"
        + fields
        + b"\r\n5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    server, llhttp, disagreement = sides(port, raw)
    assert server.refused is None, server
    assert [(seen["path"], seen["body"]) for seen in server.served] == [("/a", "hello"), ("/next", "")]
    plain = exchange_with_server(port, raw.replace(fields, b"Transfer-Encoding: chunked\r\n"))
    assert server.served == plain.served  # answered alike
    assert llhttp.error == llhttp_error
    assert (disagreement.kind if disagreement else None) == (EMPTY_ELEMENTS if llhttp_error else None)


# Where the server is stricter, and right ----------------------------------------------------------------------------


def assert_refused(port, raw, kind, status=400):
    """The server answers ``raw`` with its own ``status`` (no application saw it) where llhttp takes it; the
    disagreement is of ``kind``."""
    server, llhttp, disagreement = sides(port, raw)
    assert (server.refused, server.served) == (status, []), server
    assert llhttp.error is None and llhttp.requests, llhttp
    assert disagreement is not None and disagreement.kind == kind, disagreement
    return server, llhttp


@pytest.mark.parametrize("host", [b"a b/c@d", b"h/x", b"user@h", b"\xff", b"[::1", b"h:port", b"h\\x", b"a:1:2"])
def test_a_host_that_is_not_host_port(port, host):
    """RFC 9112 §3.2: a server "MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
    message that lacks a Host header field and to any request message that contains more than one Host header field
    line or a Host header field with an invalid field value"; Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986
    §3.2.2). The 400 is the server's own, as nginx answers, not Django's DisallowedHost page (issue 17). llhttp does
    not look at Host."""
    assert_refused(port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", INVALID_HOST)


@pytest.mark.parametrize("host", [b"h", b"example.com:8080", b"127.0.0.1:80", b"[::1]:8000", b"h:", b"", b"a-b.c"])
def test_a_host_of_host_port_is_served(port, host):
    """The other side of the rule above: ``host[:port]`` (an empty port, and an empty host, RFC 9112 §3.2: "a client
    MUST send a Host header field with an empty field value" when the URI has no authority) reach the application."""
    server, _, disagreement = sides(port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert served_one(server)["host"] == host.decode() and disagreement is None


def test_one_host_on_http_1_1(port):
    """RFC 9112 §3.2 (quoted above): no Host on HTTP/1.1, or Host more than once (even the same value), is a 400.
    On HTTP/1.0 Host is optional. llhttp does not look at Host."""
    assert_refused(port, b"GET / HTTP/1.1\r\nX: y\r\n\r\n", MISSING_HOST)
    assert_refused(port, b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", REPEATED_HOST)
    assert_refused(port, b"GET / HTTP/1.0\r\nHost: h\r\nHost: i\r\n\r\n", REPEATED_HOST)
    assert served_one(exchange_with_server(port, b"GET / HTTP/1.0\r\n\r\n"))["host"] is None


@pytest.mark.parametrize("before", [b"\r\n\r\n", b"\n", b"\r", b"\n\n"])
def test_empty_lines_before_the_request_line(port, before):
    """RFC 9112 §2.2: a server "SHOULD ignore at least one empty line (CRLF) received prior to the request-line";
    one CRLF is ignored, more is refused, as nginx refuses it. A bare CR is not a line end (§2.2: "a bare CR ...
    MUST [be] consider[ed] invalid or replace[d] with SP"), and a bare LF is recognized only by choice (a MAY).
    llhttp skips any run of CR and LF there. Leading whitespace that is not a line end is refused by both (see
    ``test_where_both_refuse``)."""
    assert_refused(port, before + b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", EMPTY_LINES)
    assert served_one(exchange_with_server(port, b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"))["path"] == "/"


@pytest.mark.parametrize(
    "line",
    [
        b"GET  /x HTTP/1.1",  # two spaces
        b"GET /x  HTTP/1.1",
        b"GET /x",  # no version: llhttp reads HTTP/0.9, with header fields after it
        b"CONNECT  HTTP/1.1",  # no target: llhttp takes HTTP/1.1 for the target, and HTTP/0.9
    ],
)
def test_a_request_line_of_another_shape(port, line):
    """RFC 9112 §3: request-line = method SP request-target SP HTTP-version, and "recipients SHOULD NOT attempt to
    autocorrect and then process the request without a redirect, since the invalid request-line might be
    deliberately crafted to bypass security filters"; a lenient parse on whitespace is allowed, not required. llhttp
    takes runs of spaces, and a line without a version as HTTP/0.9 (which has no header fields: RFC 1945 §4.1);
    the server refuses both, as nginx does the first."""
    assert_refused(port, line + b"\r\nHost: h\r\n\r\n", REQUEST_LINE_SHAPE)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9"])
def test_versions_other_than_1_0_and_1_1(port, version):
    """RFC 9110 §15.6.6: 505 for a major version the server does not support; HTTP/2 is not spoken in HTTP/1.1's
    syntax (RFC 9113 §3), and HTTP/0.9 has no version in its request line (RFC 1945 §4.1). llhttp takes both."""
    assert_refused(port, b"GET / " + version + b"\r\nHost: h\r\n\r\n", VERSION, status=505)


def test_connect(port):
    """RFC 9110 §9.3.6: CONNECT asks for a tunnel, a proxy's work; the server answers 405. llhttp completes the
    request and hands the connection over (an upgrade)."""
    server, llhttp = assert_refused(
        port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", CONNECT, status=405
    )
    assert llhttp.upgrade


def test_a_fragment_in_the_target(port):
    """RFC 9112 §3.2: no request-target form has a fragment, and RFC 9110 §4.2.5: a fragment is not sent; an
    invalid request-line is a 400 (§3). llhttp passes ``#frag`` in the url."""
    assert_refused(port, b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", FRAGMENT)


def test_asterisk_form(port):
    """RFC 9112 §3.2.4: asterisk-form "is only used for a server-wide OPTIONS request". llhttp takes ``*`` for any
    method."""
    assert_refused(port, b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", ASTERISK)


def test_targets_of_no_form(port):
    """An absolute-form target of another scheme than http(s): RFC 9110 §4.2 defines what an origin server serves
    for http and https URIs only, and §7.4: a server need not serve a target it is not authoritative for (400 or
    421). llhttp takes any scheme."""
    assert_refused(port, b"GET ftp://example.com/p HTTP/1.1\r\nHost: h\r\n\r\n", TARGET_FORM)


@pytest.mark.parametrize("target", [b"http://", b"http:///p", b"http://user@example.com/"])
def test_absolute_form_without_a_host(port, target):
    """RFC 9110 §4.2.1: "A sender MUST NOT generate an "http" URI with an empty host identifier. A recipient that
    processes such a URI reference MUST reject it as invalid"; §4.2.4: a recipient "SHOULD parse for userinfo and
    treat its presence as an error". llhttp takes both."""
    assert_refused(port, b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n", EMPTY_AUTHORITY)


def test_transfer_encoding_in_http_1_0(port):
    """RFC 9112 §6.1: "A server or client that receives an HTTP/1.0 message containing a Transfer-Encoding header
    field MUST treat the message as if the framing is faulty ... and close the connection after processing the
    message" (HTTP/1.0 has no chunked coding: a front end of 1.0 would frame it otherwise). llhttp decodes it."""
    raw = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    server, _ = assert_refused(port, raw, TE_IN_HTTP10)
    assert server.ended == "closed"


@pytest.mark.parametrize(
    "fields", [b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"]
)
def test_codings_other_than_chunked(port, fields):
    """RFC 9112 §6.1: "A server that receives a request message with a transfer coding it does not understand
    SHOULD respond with 501 (Not Implemented)"; WSGI has no way to hand a gzip-coded body over. llhttp passes the
    coded bytes on as the body."""
    raw = b"POST / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert_refused(port, raw, TE_CODINGS, status=501)


@pytest.mark.parametrize("size_line", [b"5;=b", b"5;a=", b"5;a=;b"])
def test_chunk_extensions_outside_the_grammar(port, size_line):
    """RFC 9112 §7.1.1: chunk-ext-name is a token (one character at least) and chunk-ext-val a token or a
    quoted-string; an empty name or value is outside the grammar, and a parser that reads it one way while a front
    end reads it another is where chunked smuggling begins. llhttp takes these."""
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\nhello\r\n0\r\n\r\n"
    assert_refused(port, raw, SIZE_LINE_GRAMMAR)


# Where llhttp is stricter, and the server right (or both) ----------------------------------------------------------


def assert_served(port, raw, kind, llhttp_error):
    """The server serves ``raw`` (and the request after it) where llhttp refuses it with ``llhttp_error``."""
    server, llhttp, disagreement = sides(port, raw + b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert server.refused is None and [seen["path"] for seen in server.served][-1] == "/next", server
    assert llhttp.error == llhttp_error, llhttp
    assert disagreement is not None and disagreement.kind == kind, disagreement
    return server.served


@pytest.mark.parametrize("method", [b"FOO", b"BREW", b"POST0", b"X-Y.Z"])
def test_methods_llhttp_does_not_know(port, method):
    """RFC 9110 §9.1: a method is a token, and the set is extensible ("additional methods ... registered"); a
    server that does not implement one answers 501 or 405, which is the application's call (Django's views answer
    405). llhttp knows a fixed list (it is also an RTSP and ICE parser) and refuses the rest."""
    raw = method + b" /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    error = "Expected space after method" if method == b"POST0" else "Invalid method encountered"
    served = assert_served(port, raw, UNKNOWN_METHOD, error)
    assert (served[0]["method"], served[0]["body"]) == (method.decode(), "hello")


def test_a_repeated_content_length(port):
    """RFC 9112 §6.3 (5) and RFC 9110 §8.6: Content-Length repeated with the same value, as an upstream may combine
    it, "the recipient MUST either reject the message as invalid or replace the duplicated field-values with a
    single valid Content-Length field": the server does the second, llhttp the first. Different values are refused
    by both."""
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    assert assert_served(port, raw, REPEATED_LENGTH, "Duplicate Content-Length")[0]["body"] == "hello"
    server, llhttp, disagreement = sides(port, raw.replace(b"Length: 5\r\n\r\n", b"Length: 6\r\n\r\n"))
    assert (server.refused, llhttp.error is not None, disagreement) == (400, True, None)


def test_content_length_as_a_trailer(port):
    """RFC 9110 §6.5.1: framing fields are not allowed as trailers, and §6.5.2: a recipient "MUST NOT merge a
    received trailer field into the header section" unless its definition allows it. The server drops trailer
    fields (WSGI has no place for them), so a Content-Length there frames nothing; llhttp refuses the request.
    Both are safe."""
    raw = (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"
    )
    served = assert_served(port, raw, FRAMING_TRAILER, "Content-Length can't be present with Transfer-Encoding")
    assert served[0]["body"] == "hello"


@pytest.mark.parametrize(
    "size_line, llhttp_error",
    [
        (b"5 ; a = b", "Invalid character in chunk size"),
        (b"5 ;a", "Invalid character in chunk size"),
        (b"5;a = b", "Invalid character in chunk extensions name"),
        (b"5;a= b", "Invalid character in chunk extensions value"),
    ],
)
def test_whitespace_in_chunk_extensions(port, size_line, llhttp_error):
    """RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), and RFC 9110
    §5.6.3: a recipient "MUST parse for such bad whitespace and remove it". llhttp refuses it; the server is right.
    (Whitespace after a size with no extension, ``5 ``, is outside the grammar: both refuse it.)"""
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\nhello\r\n0\r\n\r\n"
    assert assert_served(port, raw, SIZE_LINE_BWS, llhttp_error)[0]["body"] == "hello"


def test_upgrade(port):
    """RFC 9110 §7.8: "A server MAY ignore a received Upgrade header field if it wishes to continue using the
    current protocol on that connection"; WSGI cannot switch protocols, so the server answers an ordinary response
    (no 101), reads the body by its Content-Length and the next request after it. llhttp (for a server that may
    switch) stops at the end of the head and reads no body. A front end switches only once it sees the 101."""
    raw = (
        b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello"
    )
    server, llhttp, disagreement = sides(port, raw + b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert [(seen["path"], seen["body"]) for seen in server.served] == [("/chat", "hello"), ("/next", "")]
    assert llhttp.upgrade and [request["body"] for request in llhttp.requests] == [b""]
    assert disagreement.kind == UPGRADE


def test_the_servers_limits(port):
    """The server's limits, which llhttp does not have (Node sets its own elsewhere): a request line over
    ``max_request_line`` is a 414 (RFC 9112 §3: "A server that receives a request-target longer than any URI it
    wishes to parse MUST respond with a 414"), more than ``max_headers`` fields a 431 (RFC 6585 §5)."""
    assert_refused(port, b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", LIMITS, status=414)
    assert_refused(port, b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 101 + b"\r\n", LIMITS, status=431)


# Where both refuse ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        # Whitespace around the request line (RFC 9112 §3), a version of other than one digit each side (§2.3).
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\tGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\x0bGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\x0c\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.00\r\nHost: h\r\n\r\n",
        b"GET / HTTP/01.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/+1.1\r\nHost: h\r\n\r\n",
        b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
        # Field lines (RFC 9110 §5.5, RFC 9112 §5): whitespace before the colon, obs-fold, NUL, bare CR.
        b"GET / HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\nHost: h\n\n",
        # Framing (RFC 9112 §6): both framings, chunked twice or not last, a Content-Length not digits.
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
        # Chunk-size lines (RFC 9112 §7.1.1) and bare CR in them (§2.2).
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;\x00\r\nhello\r\n0\r\n\r\n",
        b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1"\r\nhello\r\n0\r\n\r\n',
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rX\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        # Trailer lines that are not field lines (RFC 9112 §7.1.2): a request where a front end may see one.
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rGET /smuggled HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n folded\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: t\r\r\n\r\n",
    ],
)
def test_where_both_refuse(port, raw):
    """What issue 20 found the server laxer on (cheroot took several of these), and other smuggling classics: the
    llhttp of ``httptools`` 0.9.0 refuses each of them too, so they are no disagreement. RFC 9112 §2.2, §2.3, §3,
    §5, §6 and §7.1 as noted in the table; each is a 400 and the request after it is not read."""
    server, llhttp, disagreement = sides(port, raw + b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert server.refused == 400 and not server.served, server
    assert llhttp.error is not None and not llhttp.requests, llhttp
    assert disagreement is None
