"""Requests nobody listed: valid requests mutated at random (a fixed seed, so that a failure can be replayed), sent
over raw sockets. Whatever arrives, the server answers with a status it means (never a 500, never a traceback),
closes or waits no longer than the client does, and keeps serving everyone else. ``FUZZ_SEEDS=150`` runs more
(22,500 requests, 90 s: all passed when this was written)."""

import os
import random
import re

import pytest

from .http import raw_request
from .wsgi import serving

SEEDS = int(os.environ.get("FUZZ_SEEDS", "4"))
BASES = [
    b"GET /a?q=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
    b"POST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /read HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;e=x\r\nabc\r\n0\r\nT: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\nPOST /read HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokGET /z HTTP/1.1\r\n"
    b"Host: h\r\nConnection: close\r\n\r\n",
    b"POST /read HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
]
PIECES = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"0",
    b"f" * 20,
    b"9" * 25,
    b"-1",
    b"+5",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 7\r\n",
    b"Content-Length: 0\r\n",
    b"Host: other\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"\xff\xfe",
    b"%00",
    b"/../../etc/passwd",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"x" * 9000,
]
# A status this server means to send for a request: 2xx from the application, 100, the 4xx of bad input, 501 and
# 505. A 500 would be an exception somewhere.
MEANT = re.compile(rb"HTTP/1\.[01] (100|200|400|404|405|408|413|414|431|501|505) ")


def app(environ, start_response):
    body = (
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) if environ["PATH_INFO"] == "/read" else b""
    )
    data = b"seen " + environ["PATH_INFO"].encode("latin-1") + b" " + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def mutate(rng, raw):
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(raw) + 1)
        action = rng.randrange(5)
        if action == 0:  # insert a piece
            raw = raw[:at] + rng.choice(PIECES) + raw[at:]
        elif action == 1:  # delete a span
            raw = raw[:at] + raw[at + rng.randint(1, 8) :]
        elif action == 2:  # a random byte
            raw = raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
        elif action == 3:  # change case
            raw = raw[:at] + raw[at : at + 12].swapcase() + raw[at + 12 :]
        else:  # repeat a line
            lines = raw.split(b"\r\n")
            index = rng.randrange(len(lines))
            lines.insert(index, lines[index])
            raw = b"\r\n".join(lines)
    return raw


@pytest.mark.parametrize("seed", range(SEEDS))
def test_mutated_requests_get_meant_answers_and_the_server_goes_on(seed):
    rng = random.Random(seed)
    with serving(app, max_request_body_size=1024 * 1024, timeout=2, header_timeout=2) as server:
        port = server.bind_addr[1]
        for case in range(150):
            raw = mutate(rng, rng.choice(BASES))
            data = raw_request(port, raw, timeout=10, end_of_input=True)
            for status_line in re.findall(rb"HTTP/1\.[01] [0-9]{3} ", data):
                assert MEANT.match(status_line), (case, raw, data)
            assert b"Traceback" not in data and b"/work" not in data, (case, raw, data)
        assert raw_request(port, BASES[0].replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")).startswith(
            b"HTTP/1.1 200 OK"
        )
