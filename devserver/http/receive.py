"""The selector's side of a connection: a request is received whole (head and body) before a worker takes it, as
under waitress, and the server's own short answers are sent from here.

cheroot hands every connection that has a byte to read to a worker, which then waits for the rest of the request
with a timeout per ``recv`` and no overall deadline: 150 clients sending a byte every 2 s held all 100 workers,
and a client sending its body a byte at a time held one each. Here ``receive`` reads what has arrived without
blocking, on the selector's thread, and feeds it to the connection's ``devserver.http.parser.Parser``: until the
parser has a whole request the connection goes back to the selector and holds no thread. A worker then gets the
parsed ``Message`` (``conn.message``) and reads nothing itself. A request the parser refuses is answered here
(``answer``) and the connection closed; no worker wakes for it.

Deadlines: a head must be whole ``server.header_timeout`` seconds after its first byte (or after the connection
was accepted), and each read of a body must bring bytes within ``server.timeout`` seconds of the last (nginx's
``client_body_timeout``). ``conn.read_deadline`` holds the time; ``Server.put_conn`` turns it into cheroot's
``last_used``, so that cheroot's expiry of idle connections closes the connection then, and
``devserver.http.request.Connection.close`` answers 408 when part of a request had come.
"""

import contextlib
import os
import ssl
import time

from .. import gil_io
from ..streams import shut
from .parser import Refusal
from .response import plain_response
from .tls import handshake

__all__ = [
    "CLOSED",
    "READ_AT_ONCE",
    "READY",
    "WAIT",
    "answer",
    "answer_busy",
    "answer_full",
    "receive",
    "send_now",
]

READY, WAIT, CLOSED = "ready", "wait", "closed"

READ_AT_ONCE = 16
"""How many 64 KiB reads ``receive`` makes for one connection before it lets the selector serve others."""

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def receive(server, conn):
    """Read what has arrived on ``conn`` (a ``devserver.http.request.Connection``) without blocking and feed it to
    its parser: ``READY`` (a whole request is in ``conn.message``: queue it for a worker), ``WAIT`` (not yet: the
    connection goes back to the selector until more arrives) or ``CLOSED`` (the client closed, the socket failed, or
    the request was refused and answered: close it). Called by ``Server.process_conn`` on the selector's thread for
    every connection that has bytes to read, and on the worker that answered a request for the pipelined one behind
    it in the parser's buffer (cheroot's ``put_conn`` hands the connection straight back).

    Over TLS (``devserver.http.tls.TLSAdapter``) the handshake is made here first, in the same way and within the
    same deadline, and reads go through the ``SSLSocket`` made non-blocking for the call. ``100 Continue`` is sent
    once the head is whole if the client asked for it and has sent no body yet (RFC 9110 §10.1.1)."""
    if not conn.tls:
        return _receive(server, conn)
    conn.socket.settimeout(0.0)  # SSLSocket.recv waits out the socket's timeout when a record is not whole
    try:
        if conn.handshake_pending:
            done = handshake(server, conn)
            if not done:
                return WAIT if done is False else CLOSED
        return _receive(server, conn)
    finally:
        conn.socket.settimeout(server.timeout)


def _receive(server, conn):
    parser = conn.parser
    result = parser.feed(b"") if parser.buffer and parser.message is None else None  # a pipelined request
    if result is None:
        try:
            for _ in range(READ_AT_ONCE):
                data = _read(conn)
                if not data:  # the client stopped sending; mid-body, it may still read: answer 400
                    result = parser.end_of_input()
                    if result is None:
                        return CLOSED
                    break
                result = parser.feed(data)
                if result is not None or len(data) < 65536 or parser.message is not None and parser.message.chunked:
                    break  # decoding a chunked body costs more than copying: one read a turn
        except BlockingIOError:
            pass
        except OSError:
            parser.close()
            return CLOSED
    if result is None:
        if parser.expects_continue and conn.continued is not parser.message:
            conn.continued = parser.message
            send_now(conn, _CONTINUE)
        conn.incomplete = parser.receiving
        if parser.message is not None:
            conn.read_deadline = time.time() + server.timeout
        elif conn.read_deadline is None:
            conn.read_deadline = time.time() + server.header_timeout
        return WAIT
    conn.incomplete = False
    conn.read_deadline = None
    if type(result) is Refusal:
        answer(server, conn, result.status, result.reason, result.request_line)
        return CLOSED
    conn.message = result
    return READY


def _read(conn):
    """Up to 64 KiB of what has arrived on ``conn``, without blocking: ``b""`` once the client has closed;
    ``BlockingIOError`` when nothing is there (over TLS: no whole record). Without giving up the GIL
    (``devserver.gil_io``) where it can: ``socket.recv`` polls for the socket's timeout first, even with
    ``MSG_DONTWAIT``."""
    if conn.tls:
        try:
            return conn.socket.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None
    if gil_io.AVAILABLE:
        return gil_io.recv(conn.socket.fileno())
    return os.read(conn.socket.fileno(), 65536)


def send_now(conn, data):
    """Send a few bytes (``100 Continue``, a 408) without blocking, over TLS too, or give up: a socket whose send
    buffer is full belongs to a client that does not read."""
    with contextlib.suppress(OSError):  # ssl.SSLError is one
        if conn.tls:
            conn.socket.settimeout(0.0)
            conn.socket.send(data)
        else:
            os.write(conn.socket.fileno(), data)


def answer(server, conn, status, reason, request_line=None, extra=()):
    """Answer ``conn`` with the server's own response, ``status`` (``"400 Bad Request"``) with ``reason`` as its
    plain-text body and ``extra`` header lines, closing the connection (the caller closes it), without waiting on a
    client that may not read; and log it. The access log gets the peer's address (no proxy's headers were read) and
    ``request_line``, what was parsed of the request line (``(method, target, version)``), or ``-``."""
    body = reason.encode("latin-1", "replace") if isinstance(reason, str) else reason
    send_now(conn, plain_response(status, body, protocol=server.protocol, extra=extra))
    if server.access_log is not None:
        line = b" ".join(part or b"-" for part in request_line).decode("latin-1") if request_line else "-"
        server.access_log.log(conn.remote_addr, line, int(status[:3]), len(body), 0.0)


def answer_busy(server, conn):
    """Answer ``conn``, queued for a worker that has not come, with a 503 and close it, unless a worker took it
    meanwhile (``server.queued``: whoever pops the connection from it has it). Called from the ``PoolSizer``'s
    thread."""
    conn.busy_answered = True  # before the pop: a worker that finds the entry gone must find this set
    if server.queued.pop(conn, None) is None:
        conn.busy_answered = False
        return
    message = conn.message
    request_line = (message.method, message.uri, message.request_protocol) if message is not None else None
    answer(
        server,
        conn,
        "503 Service Unavailable",
        "Every worker thread is busy: retry later.\n",
        request_line,
        extra=(("Retry-After", "1"),),
    )
    shut(conn.socket)


def answer_full(server, conn):
    """Answer ``conn``, just accepted past ``server.max_connections``, with a 503 and ``Retry-After: 1`` (over TLS,
    where nothing can be said before a handshake, it is only closed); the caller closes it. The client's request is
    not read."""
    if not conn.tls:
        answer(
            server,
            conn,
            "503 Service Unavailable",
            "Too many connections: retry later.\n",
            None,
            extra=(("Retry-After", "1"),),
        )
