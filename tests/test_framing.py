"""The chunked decoder of ``devserver.http.parser`` and the body the parser receives, over plain calls: the same body
however the bytes come, bad framing refused, a large body spooled to disk, and what follows a body kept for the
next request."""

import io

import pytest

from devserver.http.parser import (
    FRAMING_ALLOWANCE,
    MAX_TRAILER_LINES,
    BodyTooLarge,
    ChunkedDecoder,
    Limits,
    MalformedBody,
    Message,
    Parser,
)

_BodyTooLarge, _MalformedBody = BodyTooLarge, MalformedBody

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


@pytest.mark.parametrize("chunked", [False, True])
def test_a_large_body_spools_past_memory_and_keeps_what_follows(chunked):
    parser = Parser(Limits())
    size = 3 * 1024 * 1024
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    assert parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\n" + framing + b"\r\n\r\n") is None
    block = b"x" * 1024 * 1024
    for _ in range(2):
        assert parser.feed(b"100000\r\n" + block + b"\r\n" if chunked else block) is None
    last = b"100000\r\n" + block + b"\r\n0\r\n\r\n" if chunked else block
    message = parser.feed(last + NEXT)
    assert type(message) is Message and parser.buffer == NEXT
    assert message.body._rolled  # on disk, not in memory
    assert message.length == size and len(message.body.read()) == size
    assert message.headers[b"Content-Length"] == str(size).encode() and b"Transfer-Encoding" not in message.headers
    message.close()


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
