"""SCGI (https://python.ca/scgi/protocol.txt): one request per connection from a front server (nginx ``scgi_pass``,
Apache ``mod_proxy_scgi``), answered with the application tree of ``runcherrypy``.

The request is parsed by ``sioscgi`` (its sans-I/O ``SCGIReader``); the response is a CGI response (a ``Status:``
line, the header fields, the body), written by ``devserver.gateway.SCGIHandler``, which is wsgiref's.
``serve_connection`` answers one connection (the long-running server's workers, ``devserver.server.SCGIServer``);
``serve_inetd`` answers the connection a super-server passed as standard input (``runscgi --inetd``).

What bad input gets: a malformed netstring or header block, a missing or bad ``CONTENT_LENGTH``, a body shorter than
announced (the front server closed or went silent for ``timeout`` seconds): the connection is closed without a
response, and the reason is logged (``devserver.scgi``, at WARNING). A body longer than ``max_body_size`` is answered
413 before it is read. The request body is received whole before the application runs: in memory up to
``SPOOL_MEMORY`` bytes, in a temporary file past that.
"""

import logging
import os
import socket
import sys
import tempfile
import wsgiref.handlers
from urllib.parse import unquote_to_bytes

from . import gil_io
from .gateway import GatewayHandler

__all__ = [
    "SPOOL_MEMORY",
    "SCGIError",
    "SCGIHandler",
    "read_request",
    "serve_connection",
    "serve_inetd",
    "wsgi_environ",
]

logger = logging.getLogger("devserver.scgi")

SPOOL_MEMORY = 64 * 1024
"""Bytes of a request body held in memory; more goes to a temporary file."""

RECEIVE_SIZE = 64 * 1024

DEFAULT_MAX_HEADER_SIZE = 64 * 1024
"""Bytes of the netstring of variables (nginx sends about 500 plus the request's header fields)."""

_CONTENT_TOO_LARGE = (
    b"Status: 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n\r\n"
    b"Request body is too large"
)


class SCGIError(Exception):
    """The request is not valid SCGI, or did not all arrive; the connection is to be closed unanswered."""


class ContentTooLarge(SCGIError):
    """CONTENT_LENGTH is more than the server takes; it is answered 413."""


def read_request(recv, *, max_header_size=DEFAULT_MAX_HEADER_SIZE, max_body_size=0):
    """Read one request with ``recv(n)`` (bytes; ``b""`` at the end of the stream).

    Returns ``(variables, body)``: the request's variables (name → bytes, as sent) and its body, a file positioned
    at its start (``SPOOL_MEMORY`` bytes in memory, the rest in a temporary file; the caller closes it).
    ``max_header_size``: the most bytes of variables; ``max_body_size``: the most bytes of body (0: no limit).
    Raises ``SCGIError`` (``ContentTooLarge`` for a body over the limit) for what the module's docstring lists;
    ``TimeoutError`` or ``OSError`` from ``recv`` pass through.
    """
    from sioscgi import request as scgi_request  # the optional dependency (the "scgi" extra)

    reader = scgi_request.SCGIReader(rx_buffer_limit=max_header_size)
    variables = None
    body = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    try:
        while True:
            try:
                event = reader.next_event()
                if event is None:
                    reader.receive_data(recv(RECEIVE_SIZE))
                    continue
            except scgi_request.RemotePrematureEOFError:
                raise SCGIError("the connection closed before the request was whole") from None
            except scgi_request.Error as error:
                raise SCGIError(str(error) or type(error).__name__) from None
            if isinstance(event, scgi_request.Headers):
                variables = event.environment
                length = int(variables["CONTENT_LENGTH"])  # sioscgi checked that it is a number
                if max_body_size and length > max_body_size:
                    raise ContentTooLarge(f"CONTENT_LENGTH {length} is over the limit of {max_body_size} bytes")
            elif isinstance(event, scgi_request.Body):
                body.write(event.data)
            else:  # End
                body.seek(0)
                return variables, body
    except BaseException:
        body.close()
        raise


def wsgi_environ(variables):
    """The WSGI environ (PEP 3333: values are ``str`` holding bytes as latin-1) of a request's SCGI ``variables``.

    A front server that sends no ``PATH_INFO`` gets one made from ``REQUEST_URI``'s path, percent-decoded: nginx's
    ``scgi_params`` send no ``PATH_INFO`` (and a ``SCRIPT_NAME`` only where one is set, which is then taken off the
    path); Apache's ``mod_proxy_scgi`` sends the whole path as ``SCRIPT_NAME`` (RFC 3875 §4.1.13 lets it), which is
    then the ``PATH_INFO`` and ``SCRIPT_NAME`` is empty. ``SERVER_PROTOCOL`` defaults to ``HTTP/1.0``,
    ``QUERY_STRING`` to ``""``.
    """
    environ = {name: value.decode("latin-1") for name, value in variables.items()}
    environ.setdefault("SCRIPT_NAME", "")
    environ.setdefault("QUERY_STRING", "")
    environ.setdefault("SERVER_PROTOCOL", "HTTP/1.0")
    if "PATH_INFO" not in environ:
        path = unquote_to_bytes(environ.get("REQUEST_URI", "/").split("?", 1)[0]).decode("latin-1")
        script_name = environ["SCRIPT_NAME"].rstrip("/")
        if script_name and path.startswith(script_name + "/") and environ["SCRIPT_NAME"] != path:
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = script_name, path[len(script_name) :]
        else:
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = "", path
    return environ


class SCGIHandler(GatewayHandler, wsgiref.handlers.BaseCGIHandler):
    """wsgiref's ``BaseCGIHandler`` writing the response to ``sock`` (a connected socket; files with
    ``sendfile``) or to ``stream`` (a binary file: a pipe from a super-server), with ``GatewayHandler``'s
    additions. Writes are gathered until wsgiref flushes (after each body chunk), so that the status line, the
    header block and a small body leave in one send, made without giving up the GIL when the socket takes it at once
    (``devserver.gil_io``: under load the GIL's convoy effect made each give-up cost milliseconds)."""

    def __init__(self, body, environ, *, sock=None, stream=None, multithread=True, multiprocess=False):
        super().__init__(body, stream, sys.stderr, environ, multithread=multithread, multiprocess=multiprocess)
        self.socket = sock
        self._pending = []

    def _write(self, data):
        self._pending.append(data)

    def _flush(self):
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        if self.socket is None:
            self.stdout.write(data)
            self.stdout.flush()
            return
        sent = gil_io.send(self.socket.fileno(), data) if gil_io.AVAILABLE else 0
        if sent < len(data):
            self.socket.sendall(memoryview(data)[sent:])

    def finish_content(self):
        super().finish_content()
        self._flush()  # a response without a body: wsgiref sent only its headers, which wait in _pending


def _answer(recv, application, *, sock=None, stream=None, max_header_size, max_body_size, multithread, on_read=None):
    try:
        variables, body = read_request(recv, max_header_size=max_header_size, max_body_size=max_body_size)
        if on_read is not None:
            on_read()
    except ContentTooLarge as error:
        logger.warning("SCGI request refused with 413: %s", error)
        if sock is not None:
            sock.sendall(_CONTENT_TOO_LARGE)
        else:
            stream.write(_CONTENT_TOO_LARGE)
            stream.flush()
        return False
    except SCGIError as error:
        logger.warning("SCGI connection closed unanswered: %s", error)
        return False
    with body:
        handler = SCGIHandler(body, wsgi_environ(variables), sock=sock, stream=stream, multithread=multithread)
        handler.run(application)
    return True


def serve_connection(
    sock,
    application,
    *,
    read_timeout=None,
    write_timeout=None,
    max_header_size=DEFAULT_MAX_HEADER_SIZE,
    max_body_size=0,
):
    """Answer the one request on ``sock`` (a connected socket) with ``application``; the caller closes ``sock``.
    ``read_timeout``: seconds each read of the request may take, ``write_timeout``: each write of the response
    (``None``: the socket's own). Returns whether a response was sent. A read that times out is logged and the
    connection closed unanswered, like a malformed request."""

    if read_timeout is not None:
        sock.settimeout(read_timeout)
    fd = sock.fileno()

    def recv(size):
        # What has arrived, without giving up the GIL (devserver.gil_io); a blocking read only when nothing has.
        if gil_io.AVAILABLE:
            try:
                return gil_io.recv(fd)
            except BlockingIOError:
                pass
        return sock.recv(size)

    try:
        return _answer(
            recv,
            application,
            sock=sock,
            max_header_size=max_header_size,
            max_body_size=max_body_size,
            multithread=True,
            on_read=None if write_timeout is None else (lambda: sock.settimeout(write_timeout)),
        )
    except TimeoutError:
        logger.warning("SCGI connection closed unanswered: the front server sent nothing for %s s", sock.gettimeout())
        return False
    except ConnectionError as error:
        logger.info("SCGI connection lost: %s", error)
        return False


def serve_inetd(
    application, *, read_timeout=10.0, write_timeout=10.0, max_header_size=DEFAULT_MAX_HEADER_SIZE, max_body_size=0
):
    """Answer the one request on standard input, as a super-server passes it (inetd, xinetd, systemd's
    ``Accept=yes``, ``systemd-socket-activate --inetd``): a connected socket (read and written there) or a pipe
    (the response then goes to standard output). Standard output is pointed at standard error first, so that a
    stray ``print()`` cannot corrupt the response. ``read_timeout`` and ``write_timeout``: seconds each read of
    the request and each write of the response on a socket may take. Returns whether a response was sent;
    raises ``SCGIError`` when standard input is a listening socket."""
    descriptor = os.dup(0)
    try:
        sock = socket.socket(fileno=descriptor)
    except OSError:  # not a socket: a pipe or a file
        os.close(descriptor)
        sock = None
    if sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.close()
        raise SCGIError(
            "standard input is a listening socket, not a connection: the super-server must accept each connection "
            "(systemd: Accept=yes; systemd-socket-activate --accept --inetd)"
        )
    if sock is not None:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        try:
            return serve_connection(
                sock,
                application,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                max_header_size=max_header_size,
                max_body_size=max_body_size,
            )
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sock.close()
    output = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    with output:
        try:
            return _answer(
                stdin.read1,
                application,
                stream=output,
                max_header_size=max_header_size,
                max_body_size=max_body_size,
                multithread=False,
            )
        except (BrokenPipeError, ConnectionError) as error:
            logger.info("SCGI connection lost: %s", error)
            return False
