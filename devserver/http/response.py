"""A response's status line and header block, with no I/O: ``start_response``'s checks (``check_response``), the
headers completed as cheroot completes them (``header_block``), a ``Date`` formatted once a second, and the
server's own short answers (``plain_response``).
"""

import re
import time

from django.utils.http import http_date

from .parser import BAD_VALUE_BYTE, TOKEN

__all__ = ["check_response", "current_date", "header_block", "plain_response"]

_STATUS = re.compile(rb"[0-9]{3}(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
_RESPONSE_NAMES = {}  # response header name (str) -> (name, lower-case name), both bytes; checked to be a token


def _response_name(name):
    """``(name, name.lower())`` as bytes for a response header name (a ``str``), remembered for the next response
    (at most 512 names: the application may make them from input); ``TypeError`` or ``ValueError`` if it is not a
    ``str`` holding a token."""
    if not isinstance(name, str):
        raise TypeError(f"WSGI response header key {name!r} is not of type str.")
    encoded = name.encode("ISO-8859-1")
    if TOKEN.fullmatch(encoded) is None:
        raise ValueError(f"WSGI response header name {name!r} is not a token.")
    known = (encoded, encoded.lower())
    if len(_RESPONSE_NAMES) < 512:
        _RESPONSE_NAMES[name] = known
    return known


def check_response(status, headers):
    """PEP 3333's ``start_response`` arguments, checked and encoded: ``(status, headers, names, content_length)``,
    the status as bytes, the headers as ``(name, value)`` byte pairs, the set of their names in lower case (bytes)
    and the Content-Length as an ``int`` or ``None``.

    ``status`` is three digits, then a space and a reason phrase, or nothing more; a header name is a token (RFC
    9110 §5.1), a value holds no control character but HTAB (§5.5): otherwise ``ValueError`` (the client gets a
    500; cheroot sent a CR or LF as given, and a value made from user input could split the response in two:
    CWE-113). ``TypeError`` for a status, name or value that is not a ``str``; ``UnicodeEncodeError`` for one that
    is not Latin-1.
    """
    if not isinstance(status, str):
        raise TypeError("WSGI response status is not of type str.")
    encoded_status = status.encode("ISO-8859-1")
    if _STATUS.fullmatch(encoded_status) is None:
        raise ValueError(f"Malformed WSGI response status {status!r}.")
    outheaders, names, length = [], set(), None
    checked = _CHECKED.get
    for header in headers:
        try:
            known = checked(header)
        except TypeError:  # a list, not a tuple: not hashable
            known = None
        if known is None:
            known = _check_header(*header)
        outheaders.append(known[0])
        names.add(known[1])
        if known[1] == b"content-length":
            length = int(known[0][1])
    return encoded_status, outheaders, names, length


_CHECKED = {}  # (name, value) str pair -> ((name, value), lower-case name), as bytes, checked; bounded


def _check_header(name, value):
    """``((name, value), name.lower())`` as bytes for a response header, checked (``check_response``); remembered
    for the next response when short, up to a bound (headers repeat from one response to the next: Content-Type,
    X-Frame-Options; the application may make others from input)."""
    known = _RESPONSE_NAMES.get(name)
    if known is None:
        known = _response_name(name)
    if not isinstance(value, str):
        raise TypeError(f"WSGI response header value {value!r} is not of type str.")
    encoded = value.encode("ISO-8859-1")
    if BAD_VALUE_BYTE.search(encoded):
        raise ValueError("A WSGI response header value holds a control character (CR, LF, NUL...).")
    checked = ((known[0], encoded), known[1])
    if len(_CHECKED) < 1024 and len(value) <= 256:
        _CHECKED[(name, value)] = checked
    return checked


_date = (0, b"")


def current_date():
    """The ``Date`` header value for now, formatted once per second (cheroot formats it on every response)."""
    global _date
    now = int(time.time())
    second, value = _date
    if second != now:
        value = http_date(now).encode("ascii")
        _date = (now, value)
    return value


def header_block(req):
    """The status line and header block (bytes) of the response of ``req`` (a ``devserver.http.request.Request``:
    its ``status``, ``outheaders`` and their lower-case names ``outnames`` (or ``None``), ``method``,
    ``response_protocol`` and ``close_connection``), completed as
    cheroot's ``send_headers`` completes them, which this replaces:

    - a body of unknown length is sent with the chunked coding to an HTTP/1.1 client (``req.chunked_write`` is set),
      or ended by closing the connection; no body for 1xx, 204, 205, 304 and HEAD (RFC 9110 §6.4.1);
    - ``Connection: close`` when the connection will close; ``Connection: Keep-Alive`` and ``Keep-Alive`` for an
      HTTP/1.0 client it stays open for; a 413 closes it; so does every response while the server stops
      (``server.draining``);
    - ``Date`` (formatted once a second: ``current_date``) and ``Server``, unless the application gave them.
    """
    server = req.server
    headers = req.outheaders
    names = req.outnames
    if names is None:
        names = {name.lower() for name, _ in headers}
    if server.draining:  # stopping: this is the connection's last response
        req.close_connection = True
    status = req.status
    if status.startswith(b"413"):
        req.close_connection = True
    elif b"content-length" not in names and status[:1] != b"1" and status[:3] not in (b"204", b"205", b"304"):
        if req.response_protocol == "HTTP/1.1" and req.method != b"HEAD":
            req.chunked_write = True
            headers.append((b"Transfer-Encoding", b"chunked"))
        else:  # closing the connection is the only way to tell where the body ends
            req.close_connection = True
    if not server.keep_alive:
        req.close_connection = True  # --keep-alive 0
    elif not req.close_connection and server.keep_alive_conn_limit is not None:
        req.close_connection = not server.can_add_keepalive_connection  # cheroot's limit, when one is set
    if b"connection" not in names:
        if req.response_protocol == "HTTP/1.1":
            if req.close_connection:
                headers.append((b"Connection", b"close"))
        elif not req.close_connection:
            headers.append((b"Connection", b"Keep-Alive"))
    if (b"Connection", b"Keep-Alive") in headers:
        headers.append((b"Keep-Alive", b"timeout=%d" % server.keep_alive))
    if b"date" not in names:
        headers.append((b"Date", current_date()))
    if b"server" not in names:
        headers.append((b"Server", server.server_name.encode("ISO-8859-1")))
    lines = [server.protocol.encode("ascii") + b" " + status]
    lines += [name + b": " + value for name, value in headers]
    lines += (b"", b"")
    return b"\r\n".join(lines)


def plain_response(status, body, *, protocol="HTTP/1.1", extra=()):
    """A whole response the server makes itself, closing the connection: ``status`` (``"408 Request Timeout"``),
    ``body`` (text, sent as ``text/plain``), ``extra`` header lines (``(name, value)`` str pairs). Bytes."""
    body = body.encode("latin-1") if isinstance(body, str) else body
    lines = [f"{protocol} {status}", "Content-Type: text/plain", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in extra]
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body
