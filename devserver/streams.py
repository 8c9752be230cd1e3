"""Open streams: responses whose body is an iterator that may go on yielding for as long as the client listens
(server-sent events, a long poll written as a ``StreamingHttpResponse``, django-browser-reload's event stream).

A stream is not a request in flight. When the server stops or reloads, waiting for it would wait for ever (an SSE
view never returns) or for its whole poll (30 s), and the user would see Ctrl-C hang. So ``OpenStreams.end_all``
ends each one at once, from the thread that stops the server, whatever its worker thread is doing:

- no more reads from its iterator: the worker, when its iterator yields next, finds the stream ended, stops there
  and calls the response's ``close()`` (Django's ``request_finished``);
- an event stream (``text/event-stream``) finished as its framing allows (RFC 9112 §7.1: the last chunk of a
  chunked body, after its status line and headers if none was sent yet), so that ``EventSource`` and curl see a
  complete response, and reconnect; another stream that has sent nothing yet (a long poll) answered ``503`` with
  ``Retry-After: 1``, which its client retries; another stream under way (a CSV export) cut short without a last
  chunk, so that its client sees it incomplete rather than take a short file for a whole one
  (``devserver.http.gateway.Gateway.end``);
- the connection closed (``Connection: close`` and a shutdown of the socket), so that the client reconnects, to
  the next process under the reloader.

Worker threads still inside an ended stream's iterator are not waited for (``Server.settled``); a process that
exits with them ends them (``os._exit``). Requests in flight still get ``--shutdown-timeout`` to finish.
"""

import socket
import threading
import types

__all__ = ["END_WAIT", "OpenStreams", "is_stream"]

END_WAIT = 0.05
"""Seconds ``end`` waits for a stream's worker to finish a write (to a client that reads slowly) before it shuts
the connection down under it."""


def is_stream(body):
    """Whether a WSGI response ``body`` is a stream: a Django ``StreamingHttpResponse`` (``streaming``; a
    ``FileResponse`` reaches the server as ``wsgi.file_wrapper``, a file, not as a stream) or a generator. A list,
    a file or an ``HttpResponse`` is not: it ends by itself."""
    return isinstance(body, types.GeneratorType) or getattr(body, "streaming", False) is True


class OpenStreams:
    """The streams a server is sending (``devserver.http.gateway.Gateway`` objects), for ending them when it
    stops. ``add``/``discard`` are called by the gateway's worker; ``end_all`` and ``running_ended`` by the thread
    that stops the server."""

    def __init__(self):
        self._open = set()
        self._ended = set()  # ended, their worker still inside the iterator
        self._lock = threading.Lock()
        self.ending = False  # set by end_all: a stream that opens after it is ended at once
        self.ended_count = 0  # how many were ended, those opened after end_all included

    def add(self, stream):
        with self._lock:
            self._open.add(stream)
            ending = self.ending
        if ending:
            self._end(stream)

    def discard(self, stream):
        with self._lock:
            self._open.discard(stream)
            self._ended.discard(stream)

    def __len__(self):
        with self._lock:
            return len(self._open)

    def end_all(self):
        """End every open stream, and any opened from now on (``ended_count`` counts them all)."""
        with self._lock:
            self.ending = True
            streams = list(self._open)
        for stream in streams:
            self._end(stream)

    def _end(self, stream):
        with self._lock:
            if stream not in self._open:
                return  # finished meanwhile
            self._ended.add(stream)
            self.ended_count += 1
        stream.end()

    def running_ended(self):
        """How many ended streams' worker threads are still inside their iterator."""
        with self._lock:
            return len(self._ended)


def shut(sock):
    """Shut ``sock`` down both ways (the client sees the end at once, the worker's next write fails); errors of a
    socket already closed are ignored."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
