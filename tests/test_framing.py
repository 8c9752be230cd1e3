"""The request framing that ``read_head`` works out on the selector's thread, over plain calls: the chunked
decoder fed bytes as they come (one parser for the selector and for a blocking reader), and ``body_framing``,
which must never see no body where the parser sees one (a worker would then wait for it)."""

import io
from types import SimpleNamespace

import pytest

from devserver.cheroot_overrides import (
    FRAMING_ALLOWANCE,
    MAX_TRAILER_LINES,
    BodyBuffer,
    ChunkedDecoder,
    _BodyTooLarge,
    _MalformedBody,
    body_framing,
    read_chunked_body,
)

CHUNKED = b"5\r\nhello\r\n6;name=value\r\n, you!\r\n0\r\nX-Trailer: dropped\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\n"


def decode_in_pieces(data, size, limit=0):
    out = io.BytesIO()
    decoder = ChunkedDecoder(out, limit)
    used = 0
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        taken = decoder.feed(piece)
        used += taken
        if decoder.done:
            break
        assert taken == len(piece)  # all of a piece belongs to the body until it ends
    return out.getvalue(), decoder, used


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000])
def test_the_decoder_gives_the_same_body_however_the_bytes_come(size):
    body, decoder, used = decode_in_pieces(CHUNKED + NEXT, size)
    assert body == b"hello, you!" and decoder.done and decoder.length == 11
    assert used == len(CHUNKED)  # what follows is the next request's


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", _MalformedBody),
        (b"f" * 17 + b"\r\n", _MalformedBody),
        (b"5\r\nhelloXX0\r\n\r\n", _MalformedBody),
        (b"5\r\nhello\n0\r\n\r\n", _MalformedBody),  # a bare LF after the data
        (b"5\nhello\r\n0\r\n\r\n", _MalformedBody),  # a bare LF after the size
        (b"0x5\r\nhello\r\n0\r\n\r\n", _MalformedBody),
        (b"+5\r\nhello\r\n0\r\n\r\n", _MalformedBody),
        (b"0_5\r\nhello\r\n0\r\n\r\n", _MalformedBody),
        (b"1" + b" " * 5000, _MalformedBody),  # a size line that never ends
        (b"0\r\n" + b"T: t\r\n" * (MAX_TRAILER_LINES + 1) + b"\r\n", _MalformedBody),
        (b"0\r\n" + b"T" * 9000, _MalformedBody),
        (b"b\r\nhello, you!\r\n", _BodyTooLarge),
    ],
)
@pytest.mark.parametrize("size", [1, 4096])
def test_the_decoder_refuses_bad_framing_however_the_bytes_come(data, error, size):
    with pytest.raises(error):
        decode_in_pieces(data, size, limit=10)


def test_a_blocking_reader_reads_nothing_past_the_body():
    rfile = io.BufferedReader(io.BytesIO(CHUNKED + NEXT))
    file, length = read_chunked_body(rfile, 0)
    with file:
        assert (file.read(), length) == (b"hello, you!", 11)
    assert rfile.read() == NEXT
    with pytest.raises(_MalformedBody, match="ended early"):
        read_chunked_body(io.BufferedReader(io.BytesIO(b"5\r\nhel")), 0)


def test_a_body_buffer_spools_past_memory_and_keeps_what_follows():
    buffer = BodyBuffer(b"POST / HTTP/1.1\r\n\r\n", 3 * 1024 * 1024, 0, expect_continue=False)
    for _ in range(2):
        assert buffer.feed(b"x" * 1024 * 1024) is None and not buffer.done
    assert buffer.feed(b"x" * 1024 * 1024 + NEXT) == NEXT and buffer.done
    assert buffer.file._rolled  # on disk, not in memory
    assert len(buffer.file.read()) == 3 * 1024 * 1024
    buffer.close()


SERVER = SimpleNamespace(max_request_body_size=100)


def head(*lines, request_line=b"POST / HTTP/1.1"):
    return b"\r\n".join((request_line, b"Host: h", *lines)) + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "framing"),
    [
        (head(), None),
        (head(b"Content-Length: 5"), (5, False)),
        (head(b"content-LENGTH:5  "), (5, False)),
        (head(b"Content-Length: 5", b"Content-Length: 5"), (5, False)),
        (head(b"Content-Length: 0"), None),
        (head(b"Transfer-Encoding: chunked"), (None, False)),
        (head(b"Transfer-Encoding: Chunked", b"Expect: 100-continue"), (None, True)),
        (head(b"Content-Length: 5", b"expect: 100-Continue"), (5, True)),
        # What the parser refuses before any body: the worker answers it at once.
        (head(b"Content-Length: 101"), None),  # 413
        (head(b"Content-Length: +5"), None),
        (head(b"Content-Length: 5", b"Content-Length: 6"), None),
        (head(b"Transfer-Encoding: chunked", b"Content-Length: 5"), None),
        (head(b"Transfer-Encoding: gzip, chunked"), None),  # 501
        (head(b"Transfer-Encoding: chunked, chunked"), None),
        (head(b"Transfer-Encoding: chunked", request_line=b"POST / HTTP/1.0"), None),
        # Lines the parser refuses are not read for framing: whatever is seen, the parser answers 400 first.
        (head(b"Transfer-Encoding : chunked", b"Content-Length: 5"), (5, False)),
        (head(b"Content-Length : 5"), None),
        (head(b"X: y", b" Content-Length: 5"), None),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", None),
        # The request line is not a field line.
        (b"POST /\r\nContent-Length: 5 HTTP/1.1\r\nHost: h\r\n\r\n", None),
    ],
)
def test_body_framing(raw, framing):
    assert body_framing(raw, SERVER) == framing


def test_chunks_too_small_for_their_framing_are_refused_early():
    # One-byte chunks cost about 4 µs each to decode: refused once the framing passes FRAMING_ALLOWANCE.
    tiny = b"1\r\nx\r\n" * 100_000
    out = io.BytesIO()
    with pytest.raises(_MalformedBody, match="too small"):
        ChunkedDecoder(out, 0).feed(tiny)
    assert len(out.getvalue()) < FRAMING_ALLOWANCE
    with pytest.raises(_MalformedBody, match="too small"):
        decode_in_pieces(b"5;" + b"e" * 4000 + b"\r\nhello\r\n" + b"5;x\r\nhello\r\n" * 100, 4096)
    # Chunks of 64 bytes, like those of a client that streams small writes, are not.
    body, decoder, _ = decode_in_pieces(
        b"40\r\n" + b"x" * 64 + b"\r\n" * 1 + (b"40\r\n" + b"x" * 64 + b"\r\n") * 999 + b"0\r\n\r\n", 65536
    )
    assert decoder.done and len(body) == 64_000
