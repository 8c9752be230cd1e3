"""``send`` and ``recv`` that never wait, made without releasing the GIL: the cure for the tail latency of a
threaded server under load.

Python releases the GIL around every socket call, and a thread that released it must then win it back. Under
load, other worker threads are running Django, and the one that has just sent a response waits while the GIL goes
from one of them to the next, in no fair order: the "convoy effect" (CPython's bpo-7946, "Convoy effect with I/O
bound threads and New GIL", https://bugs.python.org/issue7946).
Measured on runcherrypy with 10 connections and a 300 µs view, the send of a response took 0.03 ms at the median
and 24.7 ms at the 99th percentile, all of it waiting for the GIL after the system call had returned; the
connection went back to the selector only then, so its next request waited too (p99 48 ms, against 10 ms for
granian, whose I/O is not Python's).

A call that cannot block (``MSG_DONTWAIT`` on a socket whose send buffer has room, or a read of what has already
arrived) takes a few microseconds: holding the GIL through it costs the other threads less than the convoy does.
``ctypes.PyDLL`` calls the C library's ``send``/``recv`` without releasing the GIL. Where that is not available
(no C library found: Windows), ``AVAILABLE`` is ``False`` and callers use Python's socket calls.
"""

import ctypes
import errno
import os
import socket
import threading

__all__ = ["AVAILABLE", "recv", "send"]

_FLAGS = socket.MSG_DONTWAIT | getattr(socket, "MSG_NOSIGNAL", 0) if hasattr(socket, "MSG_DONTWAIT") else 0
_BUFFER = 65536
_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


def _load():
    try:
        libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL is held during the call
        c_send, c_recv = libc.send, libc.recv
    except (OSError, AttributeError, TypeError):
        return None, None
    c_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    c_send.restype = ctypes.c_ssize_t
    c_recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    c_recv.restype = ctypes.c_ssize_t
    return c_send, c_recv


_send, _recv = _load() if _FLAGS else (None, None)
AVAILABLE = _send is not None
"""Whether ``send`` and ``recv`` can be used here."""

_buffers = threading.local()


def send(fd, data):
    """Send what of ``data`` (bytes) the socket ``fd`` takes at once; return the count (0 when its buffer is
    full). ``OSError`` for another error (the peer closed: ``EPIPE``, ``ECONNRESET``)."""
    sent = _send(fd, data, len(data), _FLAGS)
    if sent >= 0:
        return sent
    code = ctypes.get_errno()
    if code in _WOULD_BLOCK:
        return 0
    raise OSError(code, os.strerror(code))


def recv(fd):
    """Up to 64 KiB of what has arrived on the socket ``fd``: ``b""`` once the peer has closed;
    ``BlockingIOError`` when nothing is there; ``OSError`` for another error."""
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = ctypes.create_string_buffer(_BUFFER)
    count = _recv(fd, buffer, _BUFFER, _FLAGS)
    if count >= 0:
        return ctypes.string_at(buffer, count)
    code = ctypes.get_errno()
    if code in _WOULD_BLOCK:
        raise BlockingIOError(code, os.strerror(code))
    raise OSError(code, os.strerror(code))
